"""Training data from the logs: intent examples and reply pairs, scrubbed and deduplicated.

- An **intent example** is a live customer message with a label a person stands behind: the
  agent's correction (``Message.corrected_intent``), or the model's intent when an agent approved
  or edited the reply suggested for it. Messages the bot answered on its own are not examples:
  training on its own guesses would only entrench its mistakes.
- A **reply pair** is a customer message (with up to ``context_turns`` earlier customer turns)
  and the final text an agent stood behind: an approved or edited suggestion, or what an agent
  wrote in a handed-off conversation (consecutive agent messages are joined).

Every text goes through :class:`bot.scrub.Scrubber` first. Imported conversations are not
exported (they are the base data, not the logs).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bot.importer import IMPORT_CHANNEL, pair_hash
from bot.scrub import Scrubber
from bot.storage.db import Database
from bot.storage.models import Message, Role, Suggestion, SuggestionStatus

log = logging.getLogger("deskbot.learning")

INTENT_FILE = "intent_examples.csv"
PAIRS_FILE = "reply_pairs.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, slots=True)
class IntentExample:
    text: str
    intent: str
    message_id: int
    source: str  # "corrected" or "confirmed"


@dataclass(frozen=True, slots=True)
class ReplyPair:
    question: str
    answer: str
    context: tuple[str, ...]
    intent: str | None
    message_id: int  # the customer's message
    source: str  # "approved", "edited" or "agent"


@dataclass(frozen=True)
class TrainingExport:
    since: datetime
    intent_examples: tuple[IntentExample, ...]
    reply_pairs: tuple[ReplyPair, ...]
    scrubbed: dict[str, int] = field(default_factory=dict)  # placeholder -> replacements
    duplicates: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "intent_examples": len(self.intent_examples),
            "reply_pairs": len(self.reply_pairs),
            "intents": dict(sorted(Counter(e.intent for e in self.intent_examples).items())),
            "scrubbed": dict(sorted(self.scrubbed.items())),
            "duplicates_dropped": self.duplicates,
        }


def parse_since(value: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO timestamp; naive values are UTC."""
    from bot.errors import InputError

    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"--since {value!r}: expected a date like 2026-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def collect_training_data(
    db: Database, since: datetime, scrubber: Scrubber, *, context_turns: int = 3
) -> TrainingExport:
    """Everything learnable from live conversations since ``since`` (see the module doc)."""
    since = _aware(since)
    found: Counter[str] = Counter()

    def clean(text: str) -> str:
        out = scrubber.scrub(text)
        found.update(out.found)
        return out.text

    async with db.session() as s:
        customers = (
            await s.exec(
                select(Message)
                .where(Message.role == Role.CUSTOMER, Message.channel != IMPORT_CHANNEL)
                .where(col(Message.created_at) >= since)
                .order_by(col(Message.id))
            )
        ).all()
        reviewed = (
            await s.exec(
                select(Suggestion).where(
                    col(Suggestion.status).in_([SuggestionStatus.APPROVED, SuggestionStatus.EDITED])
                )
            )
        ).all()
        agent_msgs = (
            await s.exec(
                select(Message)
                .where(Message.role == Role.AGENT, Message.decision == "agent")
                .where(col(Message.created_at) >= since)
                .order_by(col(Message.id))
            )
        ).all()
        by_id = {m.id: m for m in customers}
        conv_ids = {m.conversation_id for m in customers}
        history: dict[int, list[Message]] = {}
        for m in customers:
            history.setdefault(m.conversation_id, []).append(m)

    confirmed = {x.message_id: x for x in reviewed if x.message_id in by_id}

    # Intent examples: one per distinct (scrubbed) text, the latest label winning.
    examples: dict[str, IntentExample] = {}
    raw_examples = 0
    for m in customers:
        assert m.id is not None
        if m.corrected_intent:
            label, source = m.corrected_intent, "corrected"
        elif m.id in confirmed and m.intent and m.verdict != "out_of_scope":
            label, source = m.intent, "confirmed"
        else:
            continue
        raw_examples += 1
        text = clean(m.text)
        examples[_norm(text)] = IntentExample(text, label, m.id, source)

    def label_of(m: Message) -> str | None:
        if m.corrected_intent:
            return m.corrected_intent
        return m.intent if m.id in confirmed and m.verdict != "out_of_scope" else None

    def context_of(m: Message) -> tuple[str, ...]:
        if context_turns <= 0:
            return ()
        earlier = [h for h in history.get(m.conversation_id, []) if (h.id or 0) < (m.id or 0)]
        return tuple(clean(h.text) for h in earlier[-context_turns:])

    # Reply pairs: approved/edited suggestions, then agents' own replies.
    answers: list[tuple[Message, str, str]] = []
    for sug in reviewed:
        customer = by_id.get(sug.message_id)
        if customer is not None and sug.final_text:
            answers.append((customer, sug.final_text, str(sug.status)))
    joined: dict[int, list[str]] = {}
    for a in agent_msgs:
        reply_to = (a.details or {}).get("reply_to")
        if isinstance(reply_to, int) and reply_to in by_id and a.conversation_id in conv_ids:
            joined.setdefault(reply_to, []).append(a.text)
    for reply_to, texts in joined.items():
        answers.append((by_id[reply_to], "\n\n".join(texts), "agent"))

    pairs: dict[str, ReplyPair] = {}
    for customer, answer, source in answers:
        question, final = clean(customer.text), clean(answer)
        pairs[pair_hash(_norm(question), _norm(final))] = ReplyPair(
            question=question,
            answer=final,
            context=context_of(customer),
            intent=label_of(customer),
            message_id=customer.id or 0,
            source=source,
        )
    duplicates = (raw_examples - len(examples)) + (len(answers) - len(pairs))
    export = TrainingExport(
        since=since,
        intent_examples=tuple(examples.values()),
        reply_pairs=tuple(pairs.values()),
        scrubbed=dict(found),
        duplicates=duplicates,
    )
    log.info("collected %s", export.summary())
    return export


def write_export(export: TrainingExport, out_dir: str | Path) -> Path:
    """Write ``intent_examples.csv`` (text,intent), ``reply_pairs.jsonl`` and a manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / INTENT_FILE, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "intent", "source"])
        for e in export.intent_examples:
            writer.writerow([e.text, e.intent, e.source])
    with open(out / PAIRS_FILE, "w", encoding="utf-8") as fh:
        for p in export.reply_pairs:
            row = asdict(p)
            row["context"] = list(p.context)
            del row["message_id"]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    manifest = {**export.summary(), "files": [INTENT_FILE, PAIRS_FILE]}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def default_export_dir(home: Path) -> Path:
    return home / "exports" / f"export-{datetime.now(UTC):%Y%m%d-%H%M%S}"
