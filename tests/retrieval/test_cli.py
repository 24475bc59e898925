"""``deskbot index build|search|stats`` and ``deskbot eval retrieval`` end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli, main
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version

from .conftest import PAIRS


@pytest.fixture
def env(tmp_path, tiny_model_dir, monkeypatch) -> dict[str, str]:
    values = {
        "DESKBOT_HOME": str(tmp_path / "home"),
        "DESKBOT_RETRIEVAL__EMBEDDER": str(tiny_model_dir),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["instruction", "intent", "response"])
        for p in PAIRS:
            w.writerow([p.question, p.intent, p.answer])
    return path


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_build_search_stats_eval(tmp_path, env, pairs_csv):
    out = tmp_path / "idx"
    built = json.loads(
        _run(
            [
                "index",
                "build",
                "--data",
                str(pairs_csv),
                "--out",
                str(out),
                "--version",
                "v1",
                "--json",
            ]
        )
    )
    assert built["count"] == len(PAIRS) and built["active"] is True
    assert (out / "ACTIVE").read_text().strip() == "v1"

    found = json.loads(
        _run(["index", "search", "where is my package", "--index", str(out), "-k", "2", "--json"])
    )
    assert found[0]["hits"][0]["pair_id"] == 3  # CSV row number
    assert found[0]["hits"][0]["intent"] == "track_order"
    assert "#3 [track_order] where is my package" in _run(
        ["index", "search", "where is my package", "--index", str(out)]
    )

    stats = json.loads(_run(["index", "stats", "--index", str(out)]))
    assert stats["active"] == "v1"
    assert stats["index"]["active_pairs"] == len(PAIRS)
    assert stats["index"]["intents"]["cancel_order"] == 2

    queries = tmp_path / "queries.csv"
    with open(queries, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["utterance", "label"])
        for p in PAIRS:
            w.writerow([p.question, p.intent])
    report = json.loads(
        _run(
            [
                "eval",
                "retrieval",
                "--index",
                str(out),
                "--data",
                str(queries),
                "--text-col",
                "utterance",
                "--label-col",
                "label",
                "--json",
            ]
        )
    )
    assert report["queries"] == len(PAIRS)
    # a random tiny encoder: the figures' exact values are tested in test_evaluate.py
    assert 0 < report["hit_at_1"] <= report["mrr"] <= report["hit_at_5"] <= 1
    assert 0 < report["p50_ms"] <= report["p99_ms"]


def test_build_without_out_registers_and_activates(tmp_path, env, pairs_csv):
    _run(["index", "build", "--data", str(pairs_csv), "--version", "reg1"])
    home = Path(env["DESKBOT_HOME"])
    assert (home / "indexes" / "ACTIVE").read_text().strip() == "reg1"

    async def active() -> str | None:
        db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
        try:
            row = await active_model_version(db, "index")
            return row.version if row else None
        finally:
            await db.dispose()

    import asyncio

    assert asyncio.run(active()) == "reg1"


def test_bad_input_is_a_one_line_error(tmp_path, env, pairs_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "index",
                "build",
                "--data",
                str(pairs_csv),
                "--question-col",
                "question",
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing column 'question'" in err and "\n" not in err

    with pytest.raises(SystemExit):
        main(["eval", "retrieval", "--index", str(tmp_path / "nothing"), "--data", str(pairs_csv)])
    assert "missing column 'text'" in capsys.readouterr().err
