"""``deskbot train intent`` / ``deskbot eval intent`` on a tiny random encoder."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.errors import InputError
from bot.settings import load_settings
from bot.storage.db import Database
from bot.storage.model_versions import list_model_versions
from bot.storage.models import Conversation, Message, ModelStatus
from finetune.intent.artifact import read_metrics
from finetune.intent.data import Examples
from tests.finetune.intent.helpers import write_csv


@pytest.fixture
def home(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DESKBOT_INTENT__BASE_ENCODER", str(tiny_encoder_dir))
    return tmp_path / "home"


def _json(output: str) -> dict:
    return json.loads(output[output.index("{") :])


async def _versions(home: Path) -> list:
    db = Database(load_settings(home=home).sqlalchemy_url)
    try:
        return await list_model_versions(db, "intent")
    finally:
        await db.dispose()


def test_train_registers_and_activates_only_the_first(
    home: Path, banking_train: Examples, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "train.csv", banking_train, label_col="category")
    args = [
        "train",
        "intent",
        "--data",
        str(data),
        "--label-col",
        "category",
        "--epochs",
        "1",
        "--json",
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    first_out = _json(first.output)
    assert first_out["active"] is True
    assert Path(first_out["path"]).parent == home / "models" / "intent"
    second = CliRunner().invoke(cli, [*args, "--seed", "7"])
    assert second.exit_code == 0, second.output
    assert _json(second.output)["active"] is False
    rows = {r.version: r for r in asyncio.run(_versions(home))}
    assert rows[first_out["version"]].status == ModelStatus.ACTIVE
    assert rows[_json(second.output)["version"]].status == ModelStatus.CANDIDATE
    # The registry carries the model's own dev figures (metrics.json), per-intent rows aside.
    saved = read_metrics(Path(first_out["path"]))["dev"]
    registered = rows[first_out["version"]].metrics["dev"]
    assert registered == {k: v for k, v in saved.items() if k != "per_intent"}
    assert registered["n"] > 0 and "per_intent" in saved


async def _seed_messages(home: Path) -> None:
    db = Database(load_settings(home=home).sqlalchemy_url)
    await db.upgrade()
    async with db.session() as s:
        conv = Conversation(channel="widget")
        s.add(conv)
        await s.flush()
        for i in range(12):
            s.add(
                Message(
                    conversation_id=conv.id,
                    channel="widget",
                    role="customer",
                    text=f"where is my card {i}",
                    intent="card_arrival",
                )
            )
            # The model said card_arrival; an agent corrected it to exchange_rate.
            s.add(
                Message(
                    conversation_id=conv.id,
                    channel="widget",
                    role="customer",
                    text=f"what rate do you give for euros {i}",
                    intent="card_arrival",
                    corrected_intent="exchange_rate",
                )
            )
            s.add(
                Message(
                    conversation_id=conv.id,
                    channel="widget",
                    role="bot",
                    text=f"bot reply {i}",
                    intent="ignored_bot_label",
                )
            )
    await db.dispose()


def test_train_from_database_uses_corrections(home: Path) -> None:
    asyncio.run(_seed_messages(home))
    result = CliRunner().invoke(cli, ["train", "intent", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    labels = json.loads((Path(_json(result.output)["path"]) / "labels.json").read_text())
    assert labels == ["card_arrival", "exchange_rate"]


def test_train_from_an_empty_database_says_what_to_do(home: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "intent", "--epochs", "1"])
    assert isinstance(result.exception, InputError)
    assert "no labelled customer messages" in str(result.exception)


def test_train_with_a_missing_column_names_it(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("question,label\nhi,a\nho,b\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", "intent", "--data", str(data)])
    assert isinstance(result.exception, InputError)
    assert "missing column 'text', 'intent'" in str(result.exception)


def test_eval_json_on_tiny_model(tiny_model: Path, banking_test: Examples, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "test.csv", banking_test)
    result = CliRunner().invoke(
        cli, ["eval", "intent", "--model", str(tiny_model), "--data", str(data), "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = _json(result.output)
    for key in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "ece", "predict_ms_p50"):
        assert key in figures
    assert figures["n"] == len(banking_test)
