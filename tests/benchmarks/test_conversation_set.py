"""The conversation set keeps its held-out questions out of training and its turns in order."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "conversation_set", REPO_ROOT / "benchmarks" / "conversation_set.py"
)
assert spec and spec.loader
conversation_set = importlib.util.module_from_spec(spec)
# dataclasses look their module up in sys.modules.
sys.modules[spec.name] = conversation_set
spec.loader.exec_module(conversation_set)

ORDER = re.compile(
    r"(greeting question|greeting_question)( slot_value)? topic_switch( slot_value)? follow_up"
    r" out_of_domain thanks human"
)


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("convs")
    args = ["--out", str(out), "--n-dev", "40", "--n-test", "20", "--data", str(shared_data)]
    assert conversation_set.main(args) == 0
    return out


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_no_held_out_question_is_trained_on_and_parts_are_disjoint(
    built: Path, shared_data: Path
) -> None:
    rows = conversation_set.read_bitext(shared_data)
    kept = [r for r in rows if not conversation_set.is_held_out(r["instruction"])]
    train_rows = read(built / "intent_train.csv")
    assert [r["intent"] for r in train_rows] == [r["intent"] for r in kept]
    assert not any("{{Order Number}}" in r["text"] for r in train_rows)
    train = {conversation_set.normal(r["text"]) for r in train_rows}
    dev = {conversation_set.normal(r["text"]) for r in read(built / "heldout_dev.csv")}
    test = {conversation_set.normal(r["text"]) for r in read(built / "heldout_test.csv")}
    assert dev and test and not dev & test
    assert not (dev | test) & train

    convs = [json.loads(line) for line in open(built / "conversations.jsonl", encoding="utf-8")]
    for conv in convs:
        pool = dev if conv["split"] == "dev" else test
        for turn in conv["turns"]:
            assert "{{" not in turn["text"]
            if turn["type"] in ("question", "topic_switch") and turn["source"] in (
                "bitext-heldout",
                "bitext-heldout-stripped",
            ):
                assert conversation_set.normal(turn["text"]) in pool, turn


def test_turns_follow_the_script(built: Path) -> None:
    convs = [json.loads(line) for line in open(built / "conversations.jsonl", encoding="utf-8")]
    assert [c["split"] for c in convs] == ["dev"] * 40 + ["test"] * 20
    for conv in convs:
        types = [t["type"] for t in conv["turns"]]
        assert ORDER.fullmatch(" ".join(types)), types
        assert conv["turns"][-1]["expect"] == {"status": ["handoff"]}
        previous = None
        for turn in conv["turns"]:
            if turn["type"] == "slot_value":
                assert previous["expect"]["intent"] in conversation_set.ORDER_INTENTS
                assert turn["expect"]["intent"] == previous["expect"]["intent"]
                assert all(v in turn["text"] for v in turn["expect"]["contains"])
            previous = turn
        switch = next(t for t in conv["turns"] if t["type"] == "topic_switch")
        first = conv["turns"][0 if types[0] == "greeting_question" else 1]
        assert switch["expect"]["intent"] != first["expect"]["intent"]
        follow = next(t for t in conv["turns"] if t["type"] == "follow_up")
        assert follow["expect"]["intent"] == switch["expect"]["intent"]


def test_the_same_seed_builds_the_same_files(
    built: Path, shared_data: Path, tmp_path: Path
) -> None:
    args = ["--out", str(tmp_path), "--n-dev", "40", "--n-test", "20", "--data", str(shared_data)]
    assert conversation_set.main(args) == 0
    for name in ("conversations.jsonl", "intent_train.csv", "heldout_dev.csv"):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes()


def test_strip_order_slot_reads_naturally() -> None:
    strip = conversation_set.strip_order_slot
    assert strip("cancel order {{Order Number}}") == "cancel my order"
    assert strip("help me track the order {{Order Number}}?") == "help me track the order?"
    assert strip("{{Order Number}} status") == "my order status"
