"""The retrain job: learn from the logs, then promote only what is proven better.

1. Collect the scrubbed log data (:mod:`bot.export`): intent examples and reply pairs.
2. **Intent.** Training data = the base data (``learning.base_data`` or the imported
   conversations' labelled messages) + the log examples. The held-out set = a fixed evaluation
   set (``learning.eval_data``, or a hash-chosen share of the base data) + a hash-chosen slice of
   the log examples; neither is ever trained on, and the hash keeps each text on the same side
   on every retrain. The candidate is trained, registered, and evaluated beside the active
   model on that same set; :func:`gate` decides. The decision and its reasons are stored in
   ``ModelVersion.report`` (and ``gate.json`` beside the artifact).
3. **Index.** Reply pairs not yet known become knowledge pairs (``source="agent"``) and a new
   index version is built and activated; it only adds answers agents stood behind.

Servers pick up promoted versions when the job ends (``bot/model_sync.py``); the swap is atomic.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bot.errors import InputError
from bot.export import TrainingExport, collect_training_data
from bot.importer import IMPORT_CHANNEL, pair_hash
from bot.scrub import Scrubber
from bot.settings import LearningSettings, Settings
from bot.storage.db import Database
from bot.storage.model_versions import (
    activate_model_version,
    active_model_version,
    register_model_version,
)
from bot.storage.models import KnowledgePair, Message, ModelVersion, Role
from finetune.held_out import split_held_out
from finetune.intent.data import Examples, read_csv
from finetune.intent.hparams import IntentHyperParams

log = logging.getLogger("deskbot.learning")

HEADLINE = "accuracy"  # out-of-scope verdicts count as wrong answers
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def split_by_hash(examples: Examples, fraction: float, salt: str) -> tuple[Examples, Examples]:
    """(kept, held out) by :func:`finetune.held_out.is_held_out`, ``salt`` making it this
    split's own (the evaluation share of the base data, the held-out share of the logs)."""
    texts = examples.texts
    keep, out = split_held_out(range(len(texts)), lambda i: _norm(texts[i]), fraction, salt)
    return examples.subset(keep), examples.subset(out)


def merge(*parts: Examples) -> Examples:
    """Concatenate, one example per distinct text; a later part's label wins (log corrections
    override the base data)."""
    chosen: dict[str, tuple[str, str]] = {}
    for part in parts:
        for text, label in zip(part.texts, part.labels, strict=True):
            chosen[_norm(text)] = (text, label)
    return Examples.from_pairs(chosen.values())


def without(examples: Examples, texts: Examples) -> Examples:
    drop = {_norm(t) for t in texts.texts}
    return examples.subset(i for i, t in enumerate(examples.texts) if _norm(t) not in drop)


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate may replace the active model, and why."""

    promote: bool
    reasons: tuple[str, ...]
    metric: str
    candidate: float
    active: float | None
    margin: float
    max_intent_drop: float
    intent_changes: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["decision"] = "promoted" if self.promote else "kept as candidate"
        data["delta"] = None if self.active is None else round(self.candidate - self.active, 6)
        return data


def gate(
    candidate: dict[str, Any],
    active: dict[str, Any] | None,
    *,
    margin: float,
    max_intent_drop: float,
    min_support: int = 1,
    metric: str = HEADLINE,
) -> GateDecision:
    """Promote only if ``candidate[metric]`` is at least ``active[metric] - margin`` and no
    intent with ``min_support`` held-out examples loses more than ``max_intent_drop`` recall.

    Both metric dicts must come from :func:`finetune.intent.evaluate.evaluate` on the same set.
    """
    cand = float(candidate[metric])
    if active is None:
        return GateDecision(
            True, ("no active model to compare with",), metric, cand, None, margin, max_intent_drop
        )
    act = float(active[metric])
    reasons: list[str] = []
    ok = cand >= act - margin
    reasons.append(
        f"{metric} {cand:.4f} vs active {act:.4f} ({cand - act:+.4f}; allowed -{margin:.4f})"
        + ("" if ok else ": worse beyond the margin")
    )
    changes: dict[str, dict[str, float]] = {}
    cand_per, act_per = candidate.get("per_intent", {}), active.get("per_intent", {})
    for name, figures in sorted(cand_per.items()):
        support = int(figures.get("support", 0))
        if support == 0:
            continue
        before = float(act_per.get(name, {}).get("recall", 0.0))
        after = float(figures["recall"])
        changes[name] = {"active": before, "candidate": after, "support": support}
        if before - after > max_intent_drop:
            if support >= min_support:
                ok = False
                reasons.append(
                    f"intent {name!r} recall fell {before:.3f} -> {after:.3f} "
                    f"(more than {max_intent_drop:.3f})"
                )
            else:
                reasons.append(
                    f"intent {name!r} recall fell {before:.3f} -> {after:.3f}, not judged: "
                    f"{support} held-out examples < {min_support}"
                )
    return GateDecision(ok, tuple(reasons), metric, cand, act, margin, max_intent_drop, changes)


@dataclass(frozen=True)
class HeldOutPlan:
    train: Examples
    held_out: Examples
    fixed_eval: int
    log_train: int
    log_held_out: int


async def base_examples(db: Database, learning: LearningSettings) -> Examples:
    """``learning.base_data`` or the imported conversations' labelled customer messages."""
    if learning.base_data:
        return read_csv(learning.base_data)
    async with db.session() as s:
        rows = (
            await s.exec(
                select(Message.text, Message.intent, Message.corrected_intent)
                .where(Message.role == Role.CUSTOMER, Message.channel == IMPORT_CHANNEL)
                .where(
                    col(Message.intent).is_not(None) | col(Message.corrected_intent).is_not(None)
                )
                .order_by(col(Message.id))
            )
        ).all()
    # The query keeps messages with a label, so every row has one.
    return Examples.from_pairs((t, label) for t, i, c in rows if (label := c or i))


def plan_intent_data(base: Examples, logs: Examples, learning: LearningSettings) -> HeldOutPlan:
    if learning.eval_data:
        fixed = read_csv(learning.eval_data)
        base_train = without(base, fixed)
    else:
        base_train, fixed = split_by_hash(base, learning.eval_fraction, "eval")
    log_train, log_held = split_by_hash(logs, learning.holdout_fraction, "holdout")
    held = merge(fixed, log_held)
    train = without(merge(base_train, log_train), held)
    return HeldOutPlan(train, held, len(fixed), len(log_train), len(log_held))


def _hyperparams(learning: LearningSettings) -> IntentHyperParams:
    hp = {
        "default": IntentHyperParams,
        "quick": IntentHyperParams.quick,
        "few-shot": IntentHyperParams.few_shot,
    }[learning.intent_preset]()
    return hp.with_(epochs=learning.intent_epochs) if learning.intent_epochs else hp


async def _set_report(db: Database, kind: str, version: str, report: dict[str, Any]) -> None:
    async with db.session() as s:
        row = (
            await s.exec(
                select(ModelVersion).where(
                    ModelVersion.kind == kind, ModelVersion.version == version
                )
            )
        ).one()
        row.report = report
        s.add(row)


async def retrain_intent(
    settings: Settings,
    db: Database,
    export: TrainingExport,
    *,
    progress: bool = True,
    hp: IntentHyperParams | None = None,
) -> dict[str, Any]:
    """Train, evaluate and gate an intent candidate; returns the gate report."""
    import asyncio

    from finetune.intent.artifact import write_json
    from finetune.intent.classifier import IntentClassifier
    from finetune.intent.evaluate import evaluate
    from finetune.intent.train import new_version, train_intent

    learning = settings.learning
    logs = Examples.from_pairs((e.text, e.intent) for e in export.intent_examples)
    base = await base_examples(db, learning)
    plan = plan_intent_data(base, logs, learning)
    if len(plan.held_out) == 0:
        raise InputError("the held-out set is empty; set learning.eval_data or add base data")
    hp = hp or _hyperparams(learning)
    version = new_version(plan.train.digest())
    out = settings.models_dir / "intent" / version
    oos = settings.intent.oos_label
    log.info(
        "retraining intent: %d train (%d from logs), %d held out (%d fixed, %d from logs)",
        len(plan.train),
        plan.log_train,
        len(plan.held_out),
        plan.fixed_eval,
        plan.log_held_out,
    )
    path = await asyncio.to_thread(
        train_intent,
        plan.train,
        hp,
        out,
        progress,
        oos_label=oos,
        base_encoder=settings.intent.base_encoder or None,
        version=version,
    )
    texts, labels = plan.held_out.texts, plan.held_out.labels
    candidate = IntentClassifier.load(path)
    cand_metrics = await asyncio.to_thread(evaluate, candidate, texts, labels, oos)
    active_row = await active_model_version(db, "intent")
    act_metrics = None
    if active_row is not None and Path(active_row.path).exists():
        active = IntentClassifier.load(active_row.path)
        act_metrics = await asyncio.to_thread(evaluate, active, texts, labels, oos)
    decision = gate(
        cand_metrics,
        act_metrics,
        margin=learning.margin,
        max_intent_drop=learning.max_intent_drop,
        min_support=learning.min_intent_support,
    )
    report = {
        **decision.as_dict(),
        "kind": "intent",
        "version": version,
        "against": active_row.version if active_row else None,
        "held_out": {
            "n": len(plan.held_out),
            "fixed_eval": plan.fixed_eval,
            "from_logs": plan.log_held_out,
        },
        "train": {"n": len(plan.train), "from_logs": plan.log_train},
        "candidate_metrics": {k: v for k, v in cand_metrics.items() if k != "per_intent"},
        "active_metrics": (
            {k: v for k, v in act_metrics.items() if k != "per_intent"} if act_metrics else None
        ),
    }
    write_json(path / "gate.json", report)
    summary = {
        "held_out": {k: v for k, v in cand_metrics.items() if k != "per_intent"},
        "train_examples": len(plan.train),
    }
    await register_model_version(db, "intent", version, path, summary)
    await _set_report(db, "intent", version, report)
    if decision.promote:
        await activate_model_version(db, "intent", version)
    log.info("intent %s %s: %s", version, report["decision"], "; ".join(decision.reasons))
    return report


async def add_reply_pairs(db: Database, export: TrainingExport) -> int:
    """Store reply pairs not yet known as knowledge pairs; returns how many were new."""
    added = 0
    async with db.session() as s:
        for p in export.reply_pairs:
            digest = pair_hash(p.question, p.answer)
            exists = (
                await s.exec(select(KnowledgePair.id).where(KnowledgePair.content_hash == digest))
            ).first()
            if exists is not None:
                continue
            s.add(
                KnowledgePair(
                    question=p.question,
                    answer=p.answer,
                    intent=p.intent,
                    source="agent",
                    source_ref=f"message:{p.message_id}",
                    content_hash=digest,
                )
            )
            added += 1
    return added


async def refresh_index(settings: Settings, db: Database, export: TrainingExport) -> dict[str, Any]:
    """Add new reply pairs and, if anything changed, build and activate a new index version."""
    from bot.storage.pairs import StoredPairs
    from retrieval.build import build_from_source
    from retrieval.embedder import Embedder
    from retrieval.store import IndexStore

    added = await add_reply_pairs(db, export)
    store = IndexStore(settings.indexes_dir, settings.retrieval)
    if added == 0 and store.active_version() is not None:
        return {"kind": "index", "new_pairs": 0, "decision": "unchanged", "version": None}
    embedder = Embedder(settings.retrieval.embedder or None, precision=settings.retrieval.precision)
    pairs = StoredPairs(db)
    path = await build_from_source(pairs, store, embedder)
    version = path.name
    count = len(await pairs.active_pairs())
    store.activate(version)
    await register_model_version(db, "index", version, path, {"count": count})
    report = {
        "kind": "index",
        "version": version,
        "new_pairs": added,
        "pairs": count,
        "decision": "promoted",
        "reasons": [f"{added} new agent answer(s) added to {count - added} known pairs"],
    }
    await _set_report(db, "index", version, report)
    await activate_model_version(db, "index", version)
    return report


async def run_retrain(
    settings: Settings,
    *,
    intent: bool = True,
    index: bool = True,
    generator: bool = False,
    since: datetime = EPOCH,
    progress: bool = True,
    hp: IntentHyperParams | None = None,
) -> dict[str, Any]:
    """The whole job; returns one report per part."""
    if generator:
        raise InputError(
            "gated generator retraining is not wired into retrain yet; "
            "run `deskbot train generator` and promote it by hand"
        )
    if not (intent or index):
        raise InputError("nothing to retrain: pass --intent and/or --index")
    db = Database(settings.sqlalchemy_url)
    try:
        await db.upgrade()
        export = await collect_training_data(
            db,
            since,
            Scrubber.from_settings(settings.learning),
            context_turns=settings.learning.context_turns,
        )
        result: dict[str, Any] = {"export": export.summary()}
        if index:
            result["index"] = await refresh_index(settings, db, export)
        if intent:
            result["intent"] = await retrain_intent(settings, db, export, progress=progress, hp=hp)
    finally:
        await db.dispose()
    return result
