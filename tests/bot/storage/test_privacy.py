"""Data-subject export and erasure, the retention purge and visitor minimisation, on SQLite and
PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import JSON, Text, inspect, select, text
from sqlmodel import SQLModel

from bot import privacy
from bot.errors import InputError, NotFoundError
from bot.settings import load_settings
from bot.storage.db import Database
from bot.storage.models import (
    Conversation,
    Feedback,
    KnowledgePair,
    Message,
    Outbox,
    Suggestion,
    utcnow,
)

EMAIL = "jane.doe@example.com"


async def _conversation(
    db: Database,
    *,
    channel: str = "widget",
    user: str | None = None,
    texts: tuple[str, ...] = ("hello",),
    meta: dict[str, Any] | None = None,
    age_days: float = 0,
    sources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A conversation with a customer message per text, a bot reply with a suggestion, feedback,
    an outbox row and a knowledge pair mined from the reply; returns the ids and values."""
    when = utcnow() - timedelta(days=age_days)
    async with db.session() as s:
        conv = Conversation(
            channel=channel,
            customer_external_id=user,
            meta=meta or {},
            created_at=when,
            updated_at=when,
        )
        s.add(conv)
        await s.flush()
        msgs = []
        for t in texts:
            m = Message(
                conversation_id=conv.id, channel=channel, role="customer", text=t, created_at=when
            )
            s.add(m)
            msgs.append(m)
        await s.flush()
        answer = f"Reply {conv.id}: refunded to the card ending {conv.id}242"
        reply = Message(
            conversation_id=conv.id,
            channel=channel,
            role="bot",
            text=answer,
            details={"sources": sources or [], "reply_to": msgs[-1].id},
            created_at=when,
        )
        s.add(reply)
        await s.flush()
        s.add(
            Suggestion(
                conversation_id=conv.id,
                message_id=msgs[-1].id,
                draft=answer,
                final_text=answer,
                sources=sources or [],
                status="approved",
                reply_message_id=reply.id,
            )
        )
        s.add(Feedback(message_id=reply.id, rating=1, comment=f"bad answer {conv.id}"))
        s.add(
            Outbox(
                conversation_id=conv.id,
                message_id=reply.id,
                channel=channel,
                payload={"text": answer},
            )
        )
        pair = KnowledgePair(
            question=texts[-1],
            answer=answer,
            source="agent",
            source_ref=f"message:{reply.id}",
            content_hash=f"hash-{conv.id}",
        )
        s.add(pair)
        await s.flush()
    return {"id": conv.id, "pair_id": pair.id, "texts": texts, "answer": answer}


async def _scan(db: Database, *, skip: tuple[str, ...] = ()) -> str:
    """Every text and JSON column of every table (but ``skip``), as one string."""
    parts: list[str] = []
    async with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name in skip:
                continue
            cols = [c for c in table.columns if isinstance(c.type, Text | JSON) or _is_str(c)]
            if not cols:
                continue
            for row in (await conn.execute(select(*cols))).all():
                parts.extend(json.dumps(v) if not isinstance(v, str) else v for v in row)
    return "\n".join(parts)


def _is_str(column: Any) -> bool:
    try:
        return column.type.python_type is str
    except NotImplementedError:
        return False


async def test_erasing_a_conversation_leaves_none_of_its_values(db: Database) -> None:
    secret_text = f"my email is {EMAIL} and card 4242 4242 4242 4242"
    gone = await _conversation(
        db,
        texts=("I was charged twice", secret_text),
        meta={"widget": {"page": "https://shop.example/?u=jane"}, "ip": "203.0.113.9"},
    )
    # Another customer's reply quoted the erased pair as a retrieval source.
    source = {
        "pair_id": gone["pair_id"],
        "score": 0.9,
        "question": secret_text,
        "answer": gone["answer"],
        "intent": None,
    }
    kept = await _conversation(db, texts=("where is my parcel?",), sources=[source])

    report = await privacy.erase_subject(db, privacy.Subject(conversation_id=gone["id"]))

    assert report.deleted == {
        "feedback": 1,
        "outbox": 1,
        "suggestions": 1,
        "messages": 3,
        "conversations": 1,
        "knowledge_pairs": 1,
    }
    assert report.pair_ids == [gone["pair_id"]]
    assert report.sources_cleared == 2  # the other reply's details and its suggestion
    everything = await _scan(db)
    for value in (*gone["texts"], gone["answer"], EMAIL, "shop.example", "203.0.113.9"):
        assert value not in everything, value
    assert f"bad answer {gone['id']}" not in everything
    # The other conversation is whole.
    assert kept["answer"] in everything and "where is my parcel?" in everything
    async with db.session() as s:
        assert await s.get(Conversation, kept["id"]) is not None
        assert await s.get(KnowledgePair, kept["pair_id"]) is not None


async def test_export_by_email_finds_every_conversation_and_pair_with_it(db: Database) -> None:
    one = await _conversation(db, texts=(f"I am {EMAIL.upper()}",))
    two = await _conversation(db, meta={"widget": {"email": EMAIL}})
    other = await _conversation(db, texts=(f"I am joan.{EMAIL}",))  # a longer address
    async with db.session() as s:
        s.add(
            KnowledgePair(
                question="contact?", answer=f"write to {EMAIL}.", content_hash="imported-1"
            )
        )

    data = await privacy.export_subject(db, privacy.parse_subject(email=EMAIL))

    assert [c["id"] for c in data["conversations"]] == [one["id"], two["id"]]
    first = data["conversations"][0]
    assert first["messages"][0]["text"] == f"I am {EMAIL.upper()}"
    assert len(first["suggestions"]) == len(first["feedback"]) == len(first["outbox"]) == 1
    assert "token_hash" not in first
    answers = {p["answer"] for p in data["knowledge_pairs"]}
    assert answers == {one["answer"], two["answer"], f"write to {EMAIL}."}
    assert other["id"] not in [c["id"] for c in data["conversations"]]
    json.dumps(data)  # JSON-ready as it is


async def test_erase_by_platform_user_takes_only_that_users_conversations(db: Database) -> None:
    mine = await _conversation(db, channel="telegram:main", user="12345")
    same_id_elsewhere = await _conversation(db, channel="slack:team", user="12345")
    report = await privacy.erase_subject(
        db, privacy.parse_subject(platform_user="telegram:main:12345")
    )
    assert report.deleted["conversations"] == 1
    async with db.session() as s:
        assert await s.get(Conversation, mine["id"]) is None
        assert await s.get(Conversation, same_id_elsewhere["id"]) is not None


async def test_retention_purge_removes_exactly_what_is_past_its_date(
    db: Database, tmp_path: Path
) -> None:
    old = await _conversation(db, texts=("old question",), age_days=31)
    recent = await _conversation(db, texts=("recent question",), age_days=29)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "old.csv").write_text("a,b\n")
    (uploads / "new.csv").write_text("a,b\n")
    stale = (utcnow() - timedelta(days=31)).timestamp()
    os.utime(uploads / "old.csv", (stale, stale))
    for name in ("export-old", "export-new"):
        (tmp_path / "exports" / name).mkdir(parents=True)
        (tmp_path / "exports" / name / "reply_pairs.jsonl").write_text("{}\n")
    os.utime(tmp_path / "exports" / "export-old", (stale, stale))
    settings = load_settings(home=tmp_path, privacy={"retain_days": 30})

    report = await privacy.purge_expired(db, settings)

    assert report is not None
    assert report.deleted == {
        "feedback": 1,
        "outbox": 1,
        "suggestions": 1,
        "messages": 2,
        "conversations": 1,
    }
    assert report.uploads == 2 and sorted(p.name for p in uploads.iterdir()) == ["new.csv"]
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["export-new"]
    # The team's answers mined from it stay knowledge (below); all else of it is gone.
    everything = await _scan(db, skip=("knowledge_pairs",))
    assert "old question" not in everything and "recent question" in everything
    assert old["answer"] not in everything and recent["answer"] in everything
    async with db.session() as s:
        assert await s.get(Conversation, old["id"]) is None
        assert await s.get(Conversation, recent["id"]) is not None
        assert await s.get(KnowledgePair, old["pair_id"]) is not None
    again = await privacy.purge_expired(db, settings)
    assert again is not None and sum(again.deleted.values()) == 0
    off = load_settings(home=tmp_path)
    assert await privacy.purge_expired(db, off) is None


async def test_bad_subjects_are_refused(sqlite_db: Database) -> None:
    for kwargs in (
        {},
        {"conversation": 1, "email": EMAIL},
        {"email": "not an address"},
        {"platform_user": "12345"},
        {"conversation": 0},
    ):
        with pytest.raises(InputError):
            privacy.parse_subject(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await privacy.erase_subject(sqlite_db, privacy.Subject(conversation_id=99))


def test_visitor_ip_and_page_are_kept_as_set() -> None:
    meta = {
        "ip": "203.0.113.77",
        "widget": {"page": "https://user:pw@shop.example:8443/orders/7?email=a%40b.c#x"},
    }
    default = privacy.minimise_client_meta(meta, load_settings())
    assert default == {
        "ip": "203.0.113.0",
        "widget": {"page": "https://shop.example:8443/orders/7"},
    }
    origin = load_settings(privacy={"page_url": "origin", "client_ip": "none"})
    assert privacy.minimise_client_meta(meta, origin) == {
        "widget": {"page": "https://shop.example:8443"}
    }
    full = load_settings(privacy={"page_url": "full", "client_ip": "full"})
    assert privacy.minimise_client_meta(meta, full) == meta
    v6 = privacy.minimise_client_meta({"ip": "2001:db8:1:2:3::9", "widget": {}}, load_settings())
    assert v6["ip"] == "2001:db8:1::"
    assert "ip" not in privacy.minimise_client_meta({"ip": "unknown"}, load_settings())
    assert privacy.minimise_url("http://[::1]:8080/a?b=c", "path") == "http://[::1]:8080/a"
    assert privacy.minimise_url("not a url", "path") is None


def test_cli_export_and_erase(tmp_path: Path) -> None:
    import asyncio

    home = tmp_path / "home"
    url = f"sqlite+aiosqlite:///{home / 'deskbot.db'}"

    async def prepare() -> dict[str, Any]:
        db = Database(url)
        await db.upgrade()
        made = await _conversation(db, texts=(f"mail {EMAIL}",))
        await db.dispose()
        return made

    made = asyncio.run(prepare())
    env = {"DESKBOT_HOME": str(home)}
    # A training-data export holds the scrubbed text of the message, and another person's.
    from bot.export import IntentExample, ReplyPair, TrainingExport, write_export
    from bot.scrub import Scrubber

    scrubbed = Scrubber()(f"mail {EMAIL}")
    assert EMAIL not in scrubbed
    exported = write_export(
        TrainingExport(
            since=utcnow(),
            intent_examples=(
                IntentExample(scrubbed, "contact", 1, "corrected"),
                IntentExample("where is my parcel?", "track", 2, "corrected"),
            ),
            reply_pairs=(
                ReplyPair(scrubbed, "we will write", (), None, 1, "agent"),
                ReplyPair("refund?", "done", ("where is my parcel?",), None, 2, "agent"),
            ),
        ),
        home / "exports" / "export-1",
    )
    from bot.cli import cli

    out = tmp_path / "export.json"
    result = CliRunner(env=env).invoke(cli, ["privacy", "export", "--email", EMAIL, "--out", out])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["conversations"][0]["id"] == made["id"]
    assert out.stat().st_mode & 0o077 == 0
    result = CliRunner(env=env).invoke(
        cli, ["privacy", "erase", "--conversation", str(made["id"]), "--yes"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["deleted"]["conversations"] == 1
    assert report["knowledge_pair_ids"] == [made["pair_id"]]
    assert report["deleted"]["export_rows"] == 2
    left = (exported / "intent_examples.csv").read_text() + (
        exported / "reply_pairs.jsonl"
    ).read_text()
    assert scrubbed not in left and "where is my parcel?" in left and "refund?" in left
    manifest = json.loads((exported / "manifest.json").read_text())
    assert (manifest["intent_examples"], manifest["reply_pairs"]) == (1, 1)
    result = CliRunner(env=env).invoke(cli, ["privacy", "erase", "--email", "x"])
    assert result.exit_code != 0 and "is not an e-mail address" in str(result.exception)


async def test_scan_sees_every_table(db: Database) -> None:
    """The scan above is only as good as its coverage: it must read the text columns."""
    await _conversation(db, texts=("coverage probe",))
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar() == 2
    assert {"messages", "suggestions", "feedback", "outbox", "knowledge_pairs"} <= set(names)
    assert "coverage probe" in await _scan(db)
