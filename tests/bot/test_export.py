from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.cli import cli
from bot.export import collect_training_data, parse_since, write_export
from bot.scrub import Scrubber
from bot.storage.db import Database
from bot.storage.models import Conversation, Message, Role, Suggestion, SuggestionStatus

NOW = datetime.now(UTC)


async def fill_logs(db: Database) -> None:
    """A week of logs: corrections, an agent's answers, an approved suggestion, noise."""
    async with db.session() as s:
        live = Conversation(channel="widget", external_id="c1")
        other = Conversation(channel="widget", external_id="c2")
        imported = Conversation(channel="import", external_id="i1")
        s.add_all([live, other, imported])
        await s.flush()

        def msg(conv: Conversation, role: str, text: str, **kw: object) -> Message:
            m = Message(conversation_id=conv.id, channel=conv.channel, role=role, text=text, **kw)
            s.add(m)
            return m

        hello = msg(live, Role.CUSTOMER, "hello there", intent="greet", verdict="confident")
        ask = msg(
            live,
            Role.CUSTOMER,
            "Sign me up for the newsletter, I am jo@example.com",
            intent="create_account",
            verdict="out_of_scope",
            corrected_intent="newsletter_subscription",
        )
        await s.flush()
        msg(
            live,
            Role.AGENT,
            "Done, you are subscribed.",
            decision="agent",
            details={"reply_to": ask.id},
        )
        msg(
            live,
            Role.AGENT,
            "Call 555-123-4567 if not.",
            decision="agent",
            details={"reply_to": ask.id},
        )
        # The same question again, other spacing and case: one example, one pair.
        again = msg(
            other,
            Role.CUSTOMER,
            "sign me up for the  newsletter, I am jo@example.com",
            intent="create_account",
            verdict="out_of_scope",
            corrected_intent="newsletter_subscription",
        )
        track = msg(
            other, Role.CUSTOMER, "where is my parcel", intent="track_order", verdict="ambiguous"
        )
        msg(other, Role.CUSTOMER, "blah blah", intent="review", verdict="out_of_scope")
        msg(imported, Role.CUSTOMER, "imported question", intent="track_order")
        msg(
            live,
            Role.CUSTOMER,
            "an old message",
            corrected_intent="old",
            created_at=NOW - timedelta(days=40),
        )
        await s.flush()
        msg(
            other,
            Role.AGENT,
            "Done, you are subscribed.",
            decision="agent",
            details={"reply_to": again.id},
        )
        s.add(
            Suggestion(
                conversation_id=other.id,
                message_id=track.id,
                draft="It is on its way.",
                intent="track_order",
                status=SuggestionStatus.EDITED,
                final_text="It is on its way; tracking at {{Tracking URL}}.",
            )
        )
        s.add(
            Suggestion(
                conversation_id=live.id,
                message_id=hello.id,
                draft="Hi!",
                intent="greet",
                status=SuggestionStatus.REJECTED,
            )
        )


async def test_export_collects_confirmed_labels_and_agent_answers_scrubbed(
    sqlite_db: Database,
) -> None:
    await fill_logs(sqlite_db)
    export = await collect_training_data(sqlite_db, NOW - timedelta(days=7), Scrubber())
    examples = {e.text: (e.intent, e.source) for e in export.intent_examples}
    assert {" ".join(t.lower().split()) for t in examples} == {
        "sign me up for the newsletter, i am {{email}}",
        "where is my parcel",
    }
    assert sorted(examples.values()) == [
        ("newsletter_subscription", "corrected"),
        ("track_order", "confirmed"),
    ]
    pairs = {(p.answer, p.intent, p.source, p.context) for p in export.reply_pairs}
    assert pairs == {
        (
            "Done, you are subscribed.\n\nCall {{Phone Number}} if not.",
            "newsletter_subscription",
            "agent",
            ("hello there",),
        ),
        ("Done, you are subscribed.", "newsletter_subscription", "agent", ()),
        (
            "It is on its way; tracking at {{Tracking URL}}.",
            "track_order",
            "edited",
            ("sign me up for the  newsletter, I am {{Email}}",),
        ),
    }
    assert export.scrubbed == {"Email": 5, "Phone Number": 1}
    assert export.duplicates == 1
    # No personal data in anything exported.
    blob = json.dumps(export.summary()) + repr(export)
    assert "jo@example.com" not in blob and "555-123-4567" not in blob


async def test_since_filters_and_write_export_files(sqlite_db: Database, tmp_path: Path) -> None:
    await fill_logs(sqlite_db)
    everything = await collect_training_data(sqlite_db, parse_since("1970-01-01"), Scrubber())
    assert "old" in {e.intent for e in everything.intent_examples}
    recent = await collect_training_data(sqlite_db, NOW - timedelta(days=7), Scrubber())
    assert "old" not in {e.intent for e in recent.intent_examples}
    out = write_export(recent, tmp_path / "x")
    rows = list(csv.DictReader(io.StringIO((out / "intent_examples.csv").read_text("utf-8"))))
    assert {r["intent"] for r in rows} == {"newsletter_subscription", "track_order"}
    lines = (out / "reply_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(json.loads(x)["question"] for x in lines)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["intent_examples"] == 2 and manifest["reply_pairs"] == 3
    text = "".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    assert "jo@example.com" not in text and "{{Email}}" in text


def test_cli_export_writes_scrubbed_files(tmp_path: Path, monkeypatch: Any) -> None:
    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
        await db.upgrade()
        await fill_logs(db)
        await db.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path))
    out = tmp_path / "export"
    result = CliRunner().invoke(
        cli, ["export", "training-data", "--since", "2000-01-01", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["path"] == str(out.absolute())
    assert summary["intents"] == {"newsletter_subscription": 1, "old": 1, "track_order": 1}
    bad = CliRunner().invoke(cli, ["export", "training-data", "--since", "last week"])
    assert bad.exit_code != 0
    assert "--since 'last week': expected a date" in str(bad.exception)
