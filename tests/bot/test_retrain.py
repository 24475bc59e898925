"""The retrain job's bookkeeping on a tiny random encoder: registration, gate report, promotion.

The held-out figures are stubbed so the gate's outcome is known; the gate itself is tested in
test_retrain_gate.py and on real models in test_learning_demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import finetune.intent.evaluate
from bot.export import ReplyPair, TrainingExport
from bot.retrain import EPOCH, add_reply_pairs, retrain_intent
from bot.settings import Settings, load_settings
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version, list_model_versions
from bot.storage.models import Conversation, KnowledgePair, Message, Role
from finetune.intent.hparams import IntentHyperParams

TINY = IntentHyperParams(epochs=1, batch_size=8, bf16=False)
INTENTS = ("track_order", "cancel_order", "get_refund")


@pytest.fixture
async def setup(tmp_path: Path, tiny_encoder_dir: Path) -> Any:
    settings = load_settings(
        home=tmp_path,
        intent={"base_encoder": str(tiny_encoder_dir)},
        learning={"eval_fraction": 0.3},
    )
    db = Database(settings.sqlalchemy_url)
    await db.upgrade()
    async with db.session() as s:
        conv = Conversation(channel="import", external_id="base")
        s.add(conv)
        await s.flush()
        for intent in INTENTS:
            for i in range(12):
                s.add(
                    Message(
                        conversation_id=conv.id,  # type: ignore[arg-type]
                        channel="import",
                        role=Role.CUSTOMER,
                        text=f"question {i} about {intent.replace('_', ' ')}",
                        intent=intent,
                    )
                )
    yield settings, db
    await db.dispose()


def stub_accuracy(monkeypatch: Any, candidate: float, known: dict[str, float]) -> None:
    """Held-out accuracy: ``known[version]`` for those versions, ``candidate`` for a new one."""

    def fake(classifier: Any, texts: Any, labels: Any, oos: str = "oos") -> dict[str, Any]:
        acc = known.get(classifier.version, candidate)
        per = {label: {"recall": acc, "support": 10} for label in set(labels)}
        return {"accuracy": acc, "n": len(texts), "per_intent": per}

    monkeypatch.setattr(finetune.intent.evaluate, "evaluate", fake)


def empty_export() -> TrainingExport:
    return TrainingExport(EPOCH, (), ())


async def test_first_candidate_is_promoted_then_a_worse_one_is_kept_with_reasons(
    setup: tuple[Settings, Database], monkeypatch: Any
) -> None:
    settings, db = setup
    stub_accuracy(monkeypatch, 0.8, {})
    first = await retrain_intent(settings, db, empty_export(), progress=False, hp=TINY)
    assert first["decision"] == "promoted" and first["active"] is None
    assert (await active_model_version(db, "intent")).version == first["version"]  # type: ignore[union-attr]

    stub_accuracy(monkeypatch, 0.7, {first["version"]: 0.8})
    second = await retrain_intent(
        settings, db, empty_export(), progress=False, hp=TINY.with_(seed=2)
    )
    assert second["decision"] == "kept as candidate"
    assert second["against"] == first["version"]
    assert "worse beyond the margin" in second["reasons"][0]
    assert (await active_model_version(db, "intent")).version == first["version"]  # type: ignore[union-attr]
    rows = {m.version: m for m in await list_model_versions(db, "intent")}
    assert rows[second["version"]].status == "candidate"
    assert rows[second["version"]].report["reasons"] == second["reasons"]
    on_disk = json.loads((Path(rows[second["version"]].path) / "gate.json").read_text("utf-8"))
    assert on_disk["decision"] == "kept as candidate"
    assert second["held_out"]["fixed_eval"] > 0 and second["held_out"]["from_logs"] == 0


async def test_reply_pairs_become_knowledge_pairs_once(setup: tuple[Settings, Database]) -> None:
    _, db = setup
    pair = ReplyPair("how do I pay?", "By card or PayPal.", (), "check_payment_methods", 7, "agent")
    export = TrainingExport(EPOCH, (), (pair, pair))
    assert await add_reply_pairs(db, export) == 1
    assert await add_reply_pairs(db, export) == 0
    async with db.session() as s:
        from sqlmodel import select

        rows = (await s.exec(select(KnowledgePair))).all()
    assert [(r.question, r.source, r.intent, r.source_ref) for r in rows] == [
        ("how do I pay?", "agent", "check_payment_methods", "message:7")
    ]
