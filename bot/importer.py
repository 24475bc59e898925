"""Import past conversations: CSV question/answer pairs and JSONL dialogues.

An import is validated completely before anything is written, then lands in one transaction:
either the whole file is stored or nothing is. Conversations, messages and knowledge pairs carry
content-derived ids, so importing the same file twice adds nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlmodel import col
from tqdm import tqdm

from bot.errors import ImportFileError
from bot.storage.db import Database
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    KnowledgePair,
    Message,
    Role,
    utcnow,
)
from retrieval.data_files import csv_rows, read_text

log = logging.getLogger("deskbot.importer")

IMPORT_CHANNEL = "import"
CUSTOMER_ROLES = {"customer", "user", "client", "human"}
AGENT_ROLES = {"agent", "assistant", "bot", "support"}
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """CSV column names; the defaults fit the Bitext customer-support file."""

    question: str = "instruction"
    answer: str = "response"
    intent: str | None = "intent"


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Dialogue:
    """One conversation read from a file; ``key`` identifies it across imports."""

    key: str
    line: int
    turns: tuple[Turn, ...]
    intent: str | None = None


@dataclass(slots=True)
class ImportSummary:
    path: str
    format: str
    dialogues: int = 0
    conversations_added: int = 0
    messages_added: int = 0
    pairs_mined: int = 0
    pairs_added: int = 0
    duplicates_skipped: int = 0
    seconds: float = 0.0
    intents: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "dialogues": self.dialogues,
            "conversations_added": self.conversations_added,
            "messages_added": self.messages_added,
            "pairs_mined": self.pairs_mined,
            "pairs_added": self.pairs_added,
            "duplicates_skipped": self.duplicates_skipped,
            "intents": len(self.intents),
            "seconds": round(self.seconds, 2),
        }


def _digest(*parts: str | None) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update((part or "").encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def pair_hash(question: str, answer: str) -> str:
    """The dedup key of a knowledge pair (whitespace-normalised question and answer)."""
    return _digest(" ".join(question.split()), " ".join(answer.split()))


async def add_pair(
    session: Any, question: str, answer: str, intent: str | None, source: str, source_ref: str
) -> KnowledgePair | None:
    """Store one knowledge pair in ``session`` unless the same pair exists (None then)."""
    digest = pair_hash(question, answer)
    exists = (
        await session.exec(
            select(col(KnowledgePair.id)).where(col(KnowledgePair.content_hash) == digest)
        )
    ).first()
    if exists is not None:
        return None
    pair = KnowledgePair(
        question=question,
        answer=answer,
        intent=intent,
        source=source,
        source_ref=source_ref,
        content_hash=digest,
    )
    session.add(pair)
    await session.flush()
    return pair


def detect_format(path: Path) -> Literal["csv", "jsonl"]:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    raise ImportFileError(
        str(path), None, "unknown file type; expected .csv or .jsonl (optionally .gz)"
    )


def parse_csv(path: Path, text: str, columns: ColumnMap) -> Iterator[Dialogue]:
    rows = csv_rows(
        path,
        text,
        {"question": columns.question, "answer": columns.answer, "intent": columns.intent},
        required=("question", "answer"),
        hint="choose columns with --question-col, --answer-col, --intent-col",
    )
    for row in rows:
        question, answer, intent = row["question"], row["answer"], row["intent"] or None
        yield Dialogue(
            key="csv:" + _digest(question, answer, intent),
            line=row.line,
            turns=(Turn(Role.CUSTOMER, question), Turn(Role.AGENT, answer)),
            intent=intent,
        )


def _role(path: Path, line: int, raw: object) -> Role:
    name = str(raw).strip().lower() if isinstance(raw, str) else ""
    if name in CUSTOMER_ROLES:
        return Role.CUSTOMER
    if name in AGENT_ROLES:
        return Role.AGENT
    if name == "system":
        return Role.SYSTEM
    raise ImportFileError(
        str(path), line, f"unknown role {raw!r}; expected customer/user or agent/assistant"
    )


def parse_jsonl(path: Path, text: str) -> Iterator[Dialogue]:
    count = 0
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ImportFileError(str(path), line, f"invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("turns"), list):
            raise ImportFileError(str(path), line, 'expected an object with a "turns" list')
        turns = []
        for i, t in enumerate(obj["turns"]):
            if not isinstance(t, dict) or not isinstance(t.get("content"), str):
                raise ImportFileError(
                    str(path), line, f'turn {i} needs "role" and a string "content"'
                )
            if t["content"].strip():
                turns.append(Turn(_role(path, line, t.get("role")), t["content"].strip()))
        if not turns:
            raise ImportFileError(str(path), line, "a dialogue without turns")
        ident = obj.get("id")
        key = f"jsonl:{ident}" if ident is not None else "jsonl:" + _digest(raw)
        intent = obj.get("intent") if isinstance(obj.get("intent"), str) else None
        count += 1
        yield Dialogue(key=key, line=line, turns=tuple(turns), intent=intent)
    if count == 0:
        raise ImportFileError(str(path), None, "the file holds no dialogues")


def mine_pairs(dialogue: Dialogue) -> list[tuple[str, str]]:
    """Customer turn(s) → the agent turn that answers them."""
    pairs: list[tuple[str, str]] = []
    asked: list[str] = []
    for turn in dialogue.turns:
        if turn.role == Role.CUSTOMER:
            asked.append(turn.text)
        elif turn.role == Role.AGENT and asked:
            pairs.append((" ".join(asked), turn.text))
            asked = []
    return pairs


def read_dialogues(
    path: Path, fmt: str | None = None, columns: ColumnMap | None = None
) -> tuple[str, list[Dialogue]]:
    """Parse and validate a whole file; raises ImportFileError naming the bad line."""
    fmt = fmt or detect_format(path)
    text = read_text(path)
    if fmt == "csv":
        dialogues = list(parse_csv(path, text, columns or ColumnMap()))
    elif fmt == "jsonl":
        dialogues = list(parse_jsonl(path, text))
    else:
        raise ImportFileError(str(path), None, f"unknown format {fmt!r}; expected csv or jsonl")
    return fmt, dialogues


async def import_file(
    db: Database,
    path: str | Path,
    *,
    fmt: str | None = None,
    columns: ColumnMap | None = None,
    progress: bool = False,
) -> ImportSummary:
    """Import one file in one transaction and return what was added."""
    start = time.perf_counter()
    path = Path(path)
    fmt, dialogues = read_dialogues(path, fmt, columns)
    summary = ImportSummary(path=str(path), format=fmt, dialogues=len(dialogues))
    bar = tqdm(total=len(dialogues), desc=f"import {path.name}", unit="conv", disable=not progress)
    async with db.session() as s:
        conn = await s.connection()
        known_convs = set(
            (
                await conn.execute(
                    select(col(Conversation.external_id)).where(
                        col(Conversation.channel) == IMPORT_CHANNEL
                    )
                )
            ).scalars()
        )
        known_pairs = set((await conn.execute(select(col(KnowledgePair.content_hash)))).scalars())
        for offset in range(0, len(dialogues), CHUNK):
            chunk = dialogues[offset : offset + CHUNK]
            fresh = []
            for d in chunk:
                if d.key in known_convs:
                    summary.duplicates_skipped += 1
                else:
                    known_convs.add(d.key)
                    fresh.append(d)
            now = utcnow()
            if fresh:
                await conn.execute(
                    insert(Conversation),
                    [
                        {
                            "channel": IMPORT_CHANNEL,
                            "external_id": d.key,
                            "status": ConversationStatus.CLOSED,
                            "meta": {"source": path.name, "line": d.line},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for d in fresh
                    ],
                )
                ids = dict(
                    (
                        await conn.execute(
                            select(col(Conversation.external_id), col(Conversation.id)).where(
                                col(Conversation.channel) == IMPORT_CHANNEL,
                                col(Conversation.external_id).in_([d.key for d in fresh]),
                            )
                        )
                    ).all()
                )
                messages: list[dict[str, Any]] = []
                pairs: list[dict[str, Any]] = []
                for d in fresh:
                    conv_id = ids[d.key]
                    for i, turn in enumerate(d.turns):
                        messages.append(
                            {
                                "conversation_id": conv_id,
                                "channel": IMPORT_CHANNEL,
                                "external_id": f"{d.key}#{i}",
                                "role": turn.role.value,
                                "text": turn.text,
                                "intent": d.intent if turn.role == Role.CUSTOMER else None,
                                "model_versions": {},
                                "details": {},
                                "created_at": now,
                            }
                        )
                    for question, answer in mine_pairs(d):
                        summary.pairs_mined += 1
                        h = pair_hash(question, answer)
                        if h in known_pairs:
                            continue
                        known_pairs.add(h)
                        pairs.append(
                            {
                                "question": question,
                                "answer": answer,
                                "intent": d.intent,
                                "source": IMPORT_CHANNEL,
                                "source_ref": f"{path.name}:{d.line}",
                                "content_hash": h,
                                "active": True,
                                "created_at": now,
                            }
                        )
                    if d.intent:
                        summary.intents.add(d.intent)
                if messages:
                    await conn.execute(insert(Message), messages)
                if pairs:
                    await conn.execute(insert(KnowledgePair), pairs)
                summary.conversations_added += len(fresh)
                summary.messages_added += len(messages)
                summary.pairs_added += len(pairs)
            bar.update(len(chunk))
    bar.close()
    summary.seconds = time.perf_counter() - start
    log.info("imported %s: %s", path, summary.as_dict())
    return summary
