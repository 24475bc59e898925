"""Personal data: export and erase one person's data, purge what is past retention, and keep
little about widget visitors.

A person is found by one conversation, by an e-mail address (every conversation whose
messages or metadata carry it, and every knowledge pair that does), or by a platform user
(``CHANNEL:ID``, e.g. ``telegram:main:12345``). Erasure deletes their conversations with every
row that hangs off them (messages, suggestions, feedback, outbox deliveries), the knowledge
pairs mined from those messages, and the copies of those pairs' texts that other conversations'
messages and suggestions keep as retrieval sources; the pairs are masked in the live index.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import ipaddress
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Text, cast, delete, func, or_
from sqlmodel import col, select

from bot.errors import InputError, NotFoundError
from bot.events import MODELS, Event
from bot.settings import PrivacySettings, Settings
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

log = logging.getLogger("deskbot.privacy")

# Rows per IN (...) list: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500
# Bounded on both sides of the one "@": checked with fullmatch, so nothing can backtrack.
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")
ERASED = "[erased]"
# The event other processes mask erased pairs on (see bot/app.py).
PAIRS_ERASED = "pairs_erased"


# -- who --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """The person a request is about: exactly one of the three is set."""

    conversation_id: int | None = None
    email: str | None = None
    platform_user: tuple[str, str] | None = None  # (channel, customer_external_id)

    def as_json(self) -> dict[str, Any]:
        if self.conversation_id is not None:
            return {"conversation_id": self.conversation_id}
        if self.email is not None:
            return {"email": self.email}
        assert self.platform_user is not None
        return {"platform_user": ":".join(self.platform_user)}


def parse_subject(
    *, conversation: int | None = None, email: str | None = None, platform_user: str | None = None
) -> Subject:
    """Validate a request's selector; InputError naming what is wrong."""
    given = [x for x in (conversation, email, platform_user) if x is not None]
    if len(given) != 1:
        raise InputError("give exactly one of conversation_id, email or platform_user")
    if conversation is not None:
        if isinstance(conversation, bool) or not 1 <= conversation <= 2**62:
            raise InputError("conversation_id must be a positive integer")
        return Subject(conversation_id=conversation)
    if email is not None:
        email = email.strip().lower()
        if not EMAIL.fullmatch(email):
            raise InputError(f"email {email!r} is not an e-mail address")
        return Subject(email=email)
    assert platform_user is not None
    channel, sep, user = platform_user.strip().rpartition(":")
    if not sep or not channel or not user or len(channel) > 64 or len(user) > 255:
        raise InputError(
            f"platform_user {platform_user!r}: expected CHANNEL:ID, e.g. telegram:main:12345"
        )
    return Subject(platform_user=(channel, user))


def _email_in(email: str, text: str) -> bool:
    """``email`` as a whole address in ``text``, not inside a longer one (ann@ in joann@)."""
    pattern = rf"(?<![\w.+-]){re.escape(email)}(?![\w-]|\.\w)"
    return re.search(pattern, text.lower()) is not None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def _conversation_ids(s: Any, subject: Subject) -> list[int]:
    if subject.conversation_id is not None:
        if await s.get(Conversation, subject.conversation_id) is None:
            raise NotFoundError(f"no conversation {subject.conversation_id}")
        return [subject.conversation_id]
    if subject.platform_user is not None:
        channel, user = subject.platform_user
        rows = await s.exec(
            select(Conversation.id).where(
                Conversation.channel == channel, Conversation.customer_external_id == user
            )
        )
        return sorted(int(i) for i in rows.all())
    email = subject.email
    assert email is not None
    found: set[int] = set()
    # LIKE narrows the rows; the whole-address check in Python decides.
    for conv_id, text in (
        await s.exec(
            select(Message.conversation_id, Message.text).where(
                func.lower(Message.text).contains(email, autoescape=True)
            )
        )
    ).all():
        if _email_in(email, text):
            found.add(int(conv_id))
    for conv in (
        await s.exec(
            select(Conversation).where(
                or_(
                    func.lower(cast(Conversation.meta, Text)).contains(email, autoescape=True),
                    func.lower(col(Conversation.customer_external_id)) == email,
                )
            )
        )
    ).all():
        if (conv.customer_external_id or "").lower() == email or _email_in(
            email, json.dumps(conv.meta, ensure_ascii=False)
        ):
            found.add(int(conv.id))
    return sorted(found)


async def _rows(s: Any, model: Any, column: Any, ids: Sequence[int | str]) -> list[Any]:
    out: list[Any] = []
    for part in _chunks(list(ids)):
        out.extend((await s.exec(select(model).where(col(column).in_(part)))).all())
    return sorted(out, key=lambda r: r.id)


async def _subject_rows(s: Any, subject: Subject) -> dict[str, list[Any]]:
    conv_ids = await _conversation_ids(s, subject)
    convs = await _rows(s, Conversation, Conversation.id, conv_ids)
    messages = await _rows(s, Message, Message.conversation_id, conv_ids)
    msg_ids = [m.id for m in messages]
    pairs = await _rows(
        s, KnowledgePair, KnowledgePair.source_ref, [f"message:{i}" for i in msg_ids]
    )
    if subject.email is not None:
        email = subject.email
        known = {p.id for p in pairs}
        for p in (
            await s.exec(
                select(KnowledgePair).where(
                    or_(
                        func.lower(KnowledgePair.question).contains(email, autoescape=True),
                        func.lower(KnowledgePair.answer).contains(email, autoescape=True),
                    )
                )
            )
        ).all():
            if p.id not in known and _email_in(email, f"{p.question}\n{p.answer}"):
                pairs.append(p)
    return {
        "conversations": convs,
        "messages": messages,
        "suggestions": await _rows(s, Suggestion, Suggestion.conversation_id, conv_ids),
        "feedback": await _rows(s, Feedback, Feedback.message_id, msg_ids),
        "outbox": await _rows(s, Outbox, Outbox.conversation_id, conv_ids),
        "knowledge_pairs": sorted(pairs, key=lambda p: p.id),
    }


# -- export -----------------------------------------------------------------------------------


def _plain(row: Any) -> dict[str, Any]:
    data = row.model_dump(mode="json")
    data.pop("token_hash", None)  # a credential's hash, not data about the person
    return data


async def export_subject(db: Database, subject: Subject) -> dict[str, Any]:
    """Everything stored about the subject, as JSON-ready data (GDPR art. 15)."""
    async with db.session() as s:
        rows = await _subject_rows(s, subject)
    by_conv: dict[int, dict[str, Any]] = {
        c.id: {**_plain(c), "messages": [], "suggestions": [], "feedback": [], "outbox": []}
        for c in rows["conversations"]
    }
    conv_of_message = {m.id: m.conversation_id for m in rows["messages"]}
    for m in rows["messages"]:
        by_conv[m.conversation_id]["messages"].append(_plain(m))
    for x in rows["suggestions"]:
        by_conv[x.conversation_id]["suggestions"].append(_plain(x))
    for f in rows["feedback"]:
        by_conv[conv_of_message[f.message_id]]["feedback"].append(_plain(f))
    for o in rows["outbox"]:
        by_conv[o.conversation_id]["outbox"].append(_plain(o))
    return {
        "subject": subject.as_json(),
        "exported_at": utcnow().isoformat(),
        "conversations": list(by_conv.values()),
        "knowledge_pairs": [_plain(p) for p in rows["knowledge_pairs"]],
    }


# -- erase ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ErasureReport:
    subject: dict[str, Any]
    deleted: dict[str, int]
    pair_ids: list[int]
    # Other conversations' rows whose copies of an erased pair's text were blanked.
    sources_cleared: int = 0
    index_masked: int | None = None  # None: no index was loaded here
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "deleted": self.deleted,
            "knowledge_pair_ids": self.pair_ids,
            "sources_cleared": self.sources_cleared,
            "index_pairs_masked": self.index_masked,
            "notes": self.notes,
        }


def _without_pairs(sources: Any, pair_ids: set[int]) -> tuple[Any, bool]:
    """``sources`` (a list of hit dicts) with the erased pairs' texts blanked."""
    if not isinstance(sources, list):
        return sources, False
    changed = False
    out = []
    for item in sources:
        if isinstance(item, dict) and item.get("pair_id") in pair_ids:
            item = {"pair_id": item["pair_id"], "question": ERASED, "answer": ERASED}
            changed = True
        out.append(item)
    return out, changed


async def _clear_sources(s: Any, pair_ids: list[int], skip_convs: set[int]) -> int:
    """Blank the erased pairs' texts kept as retrieval sources elsewhere (message details,
    suggestion sources)."""
    if not pair_ids:
        return 0
    wanted = set(pair_ids)
    cleared = 0
    for part in _chunks(pair_ids):
        for model, column in ((Message, Message.details), (Suggestion, Suggestion.sources)):
            text = cast(column, Text)
            likes = [text.contains(f'"pair_id": {i},') for i in part]
            likes += [text.contains(f'"pair_id":{i},') for i in part]
            for row in (await s.exec(select(model).where(or_(*likes)))).all():
                if row.conversation_id in skip_convs:
                    continue
                if model is Message:
                    sources, changed = _without_pairs(row.details.get("sources"), wanted)
                    if changed:
                        row.details = {**row.details, "sources": sources}
                else:
                    sources, changed = _without_pairs(row.sources, wanted)
                    if changed:
                        row.sources = sources
                if changed:
                    s.add(row)
                    cleared += 1
    return cleared


async def _delete_conversations(s: Any, conv_ids: list[int]) -> dict[str, int]:
    """Delete conversations and every row hanging off them, children first (no reliance on
    ON DELETE CASCADE, which SQLite only honours with its foreign_keys pragma)."""
    counts = dict.fromkeys(("feedback", "outbox", "suggestions", "messages", "conversations"), 0)
    for part in _chunks(conv_ids):
        msg_ids = list(
            (await s.exec(select(Message.id).where(col(Message.conversation_id).in_(part)))).all()
        )
        for msg_part in _chunks(msg_ids):
            counts["feedback"] += (
                await s.exec(delete(Feedback).where(col(Feedback.message_id).in_(msg_part)))
            ).rowcount
        for name, model, column in (
            ("outbox", Outbox, Outbox.conversation_id),
            ("suggestions", Suggestion, Suggestion.conversation_id),
            ("messages", Message, Message.conversation_id),
            ("conversations", Conversation, Conversation.id),
        ):
            counts[name] += (await s.exec(delete(model).where(col(column).in_(part)))).rowcount
    return counts


async def erase_subject(
    db: Database, subject: Subject, settings: Settings | None = None
) -> ErasureReport:
    """Delete everything stored about the subject in one transaction (GDPR art. 17), then,
    given ``settings``, their rows in the training-data exports under ``home/exports``.

    The caller masks ``report.pair_ids`` in the index (:func:`mask_live_index` in a server,
    :func:`mask_stored_index` from the command line).
    """
    async with db.session() as s:
        rows = await _subject_rows(s, subject)
        texts = [m.text for m in rows["messages"]] + [
            t for x in rows["suggestions"] for t in (x.draft, x.final_text) if t
        ]
        conv_ids = [c.id for c in rows["conversations"]]
        pair_ids = [p.id for p in rows["knowledge_pairs"]]
        cleared = await _clear_sources(s, pair_ids, set(conv_ids))
        deleted = await _delete_conversations(s, conv_ids)
        deleted["knowledge_pairs"] = 0
        for part in _chunks(pair_ids):
            deleted["knowledge_pairs"] += (
                await s.exec(delete(KnowledgePair).where(col(KnowledgePair.id).in_(part)))
            ).rowcount
    report = ErasureReport(subject.as_json(), deleted, pair_ids, cleared)
    if settings is not None and texts:
        from bot.scrub import Scrubber

        scrubber = Scrubber.from_settings(settings.learning)
        report.deleted["export_rows"] = await asyncio.to_thread(
            erase_from_exports, settings.home / "exports", texts, scrubber
        )
    log.info(
        "erased %s: %s",
        "conversations " + ",".join(map(str, conv_ids)) if conv_ids else "no conversation",
        ", ".join(f"{v} {k}" for k, v in deleted.items()),
    )
    return report


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()  # as bot/export.py compares texts


def erase_from_exports(root: Path, texts: Sequence[str], scrubber: Any) -> int:
    """Drop the rows of every training-data export under ``root`` that hold one of ``texts``
    (exports keep scrubbed text, so the texts are scrubbed the same way before comparing; a
    row of another person with the very same scrubbed words goes too). Returns rows dropped."""
    from bot.export import INTENT_FILE, MANIFEST_FILE, PAIRS_FILE

    if not root.is_dir():
        return 0
    wanted = {_norm(scrubber(t)) for t in texts} | {_norm(t) for t in texts}
    dropped = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        counts: dict[str, int] = {}
        intents = folder / INTENT_FILE
        if intents.is_file():
            with open(intents, encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh))
            kept = rows[:1] + [r for r in rows[1:] if not r or _norm(r[0]) not in wanted]
            if len(kept) != len(rows):
                dropped += len(rows) - len(kept)
                _rewrite(intents, lambda fh, kept=kept: csv.writer(fh).writerows(kept))
            counts["intent_examples"] = max(0, len(kept) - 1)
        pairs = folder / PAIRS_FILE
        if pairs.is_file():
            lines = pairs.read_text(encoding="utf-8").splitlines()
            keep = [ln for ln in lines if ln.strip() and not _pair_mentions(ln, wanted)]
            if len(keep) != len([ln for ln in lines if ln.strip()]):
                dropped += len([ln for ln in lines if ln.strip()]) - len(keep)
                _rewrite(pairs, lambda fh, keep=keep: fh.write("".join(f"{x}\n" for x in keep)))
            counts["reply_pairs"] = len(keep)
        manifest = folder / MANIFEST_FILE
        if counts and manifest.is_file():
            with contextlib.suppress(ValueError):
                data = json.loads(manifest.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    data.update(counts)
                    _rewrite(manifest, lambda fh, data=data: fh.write(json.dumps(data, indent=2)))
    return dropped


def _pair_mentions(line: str, wanted: set[str]) -> bool:
    try:
        row = json.loads(line)
    except ValueError:
        return False
    if not isinstance(row, dict):
        return False
    texts = [row.get("question"), row.get("answer"), *(row.get("context") or [])]
    return any(isinstance(t, str) and _norm(t) in wanted for t in texts)


def _rewrite(path: Path, write: Any) -> None:
    """Replace ``path`` whole (a crash leaves the old or the new file, never half of one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        write(fh)
    os.replace(tmp, path)


async def mask_live_index(svc: Any, pair_ids: list[int]) -> int | None:
    """Stop this server's index returning the pairs (persisted in its update log) and tell
    the other processes to do the same."""
    if not pair_ids:
        return 0
    index = svc.runtime.models.index
    masked = None if index is None else await asyncio.to_thread(index.deactivate, pair_ids)
    await svc.bus.publish(MODELS, Event(PAIRS_ERASED, {"pair_ids": pair_ids}))
    return masked


async def mask_stored_index(settings: Settings, db: Database, pair_ids: list[int]) -> int | None:
    """From outside a server: mask the pairs in the active index version's update log, and
    announce it on Redis when configured so running servers mask them at once."""
    if not pair_ids:
        return 0
    from bot.storage.model_versions import active_model_version
    from retrieval.store import IndexStore

    store = IndexStore(settings.indexes_dir, settings.retrieval)
    row = await active_model_version(db, "index")
    version = row.version if row is not None else store.active_version()
    masked = None
    if version is not None and store.version_dir(version).is_dir():
        index = await asyncio.to_thread(store.load, version, None, verify=False)
        masked = await asyncio.to_thread(index.deactivate, pair_ids)
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:
        from bot.redis_bus import RedisBus

        bus = RedisBus(redis_url, prefix=settings.server.redis_prefix)
        try:
            await bus.publish(MODELS, Event(PAIRS_ERASED, {"pair_ids": pair_ids}))
        finally:
            await bus.close()
    return masked


async def forget_pairs(runtime: Any, pair_ids: Any) -> None:
    """Another process erased these pairs: stop returning them here too."""
    index = runtime.models.index
    ids = [int(i) for i in pair_ids] if isinstance(pair_ids, list) else []
    if index is not None and ids:
        await asyncio.to_thread(index.deactivate, ids)


# -- retention --------------------------------------------------------------------------------


@dataclass(slots=True)
class PurgeReport:
    cutoff: datetime
    deleted: dict[str, int]
    uploads: int  # uploaded import files and training-data exports

    def as_json(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "deleted": self.deleted, "uploads": self.uploads}


async def purge_expired(
    db: Database, settings: Settings, *, now: datetime | None = None
) -> PurgeReport | None:
    """Delete conversations idle for longer than ``privacy.retain_days`` (all their rows),
    and older uploaded import files and training-data exports. None when retention is off.

    Knowledge pairs mined from a purged conversation stay: they are the team's answers, and
    an erasure request removes them for a person who asks.
    """
    days = settings.privacy.retain_days
    if days <= 0:
        return None
    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted: dict[str, int] = {}
    while True:  # batches, so a first purge of years of logs holds no lock for long
        async with db.session() as s:
            ids = [
                conv_id
                for conv_id in (
                    await s.exec(
                        select(Conversation.id)
                        .where(col(Conversation.updated_at) < cutoff)
                        .order_by(col(Conversation.id))
                        .limit(CHUNK)
                    )
                ).all()
                if conv_id is not None
            ]
            if not ids:
                break
            for k, v in (await _delete_conversations(s, ids)).items():
                deleted[k] = deleted.get(k, 0) + v
    uploads = await asyncio.to_thread(_purge_uploads, settings.home / "uploads", cutoff)
    uploads += await asyncio.to_thread(_purge_uploads, settings.home / "exports", cutoff)
    if deleted or uploads:
        log.info("retention purge before %s: %s, %d uploads", cutoff.date(), deleted, uploads)
    return PurgeReport(cutoff, deleted, uploads)


def _purge_uploads(folder: Path, cutoff: datetime) -> int:
    if not folder.is_dir():
        return 0
    limit = cutoff.timestamp()
    gone = 0
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime >= limit:
                continue
            if path.is_dir():  # an export: a folder of files written at once
                shutil.rmtree(path)
            else:
                path.unlink()
            gone += 1
    return gone


async def purge_loop(db: Database, settings: Settings) -> None:
    """Run the purge every ``privacy.purge_every_s`` (first at once); errors are logged."""
    every = settings.privacy.purge_every_s
    while True:
        started = time.monotonic()
        try:
            await purge_expired(db, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention purge failed")
        await asyncio.sleep(max(1.0, every - (time.monotonic() - started)))


# -- what is kept about a widget visitor -------------------------------------------------------


def minimise_ip(ip: str | None, mode: str) -> str | None:
    if mode == "full" or ip is None:
        return ip
    if mode == "none":
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None  # not an address ("unknown"): nothing worth keeping
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def minimise_url(url: str | None, mode: str) -> str | None:
    if mode == "full" or not isinstance(url, str):
        return url
    if mode == "none":
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    netloc = f"{host}:{port}" if port else host  # never the user:password of a URL
    path = parts.path if mode == "path" else ""
    return urlunsplit((parts.scheme, netloc, path, "", ""))


URL_KEYS = ("page", "url", "referrer", "href")


def minimise_client_meta(
    meta: dict[str, Any], settings: Settings | PrivacySettings
) -> dict[str, Any]:
    """What a widget conversation keeps of its visitor: ``meta["ip"]`` and the page URLs of
    ``meta["widget"]``, cut down by ``privacy.client_ip`` and ``privacy.page_url``."""
    cfg = settings.privacy if isinstance(settings, Settings) else settings
    out = dict(meta)
    if "ip" in out:
        ip = minimise_ip(out["ip"], cfg.client_ip)
        if ip is None:
            out.pop("ip")
        else:
            out["ip"] = ip
    widget = out.get("widget")
    if isinstance(widget, dict):
        widget = dict(widget)
        for key in URL_KEYS:
            if key in widget:
                url = minimise_url(widget[key], cfg.page_url)
                if url is None:
                    widget.pop(key)
                else:
                    widget[key] = url
        out["widget"] = widget
    return out
