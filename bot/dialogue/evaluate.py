"""``deskbot eval conversations``: play scripted conversations through the real reply path.

Each conversation is a list of customer turns with what must happen: the reply's status and
dialogue action, its intent, text it must or must not contain. The conversations run through
the widget API of an in-process server (the same code ``deskbot serve`` runs), on a scratch
copy of the database's model registry, so the evaluation adds nothing to the deployment's
conversations, metrics or training data.

The data file is JSONL, one conversation a line::

    {"id": "dev-0001", "split": "dev", "turns": [
        {"type": "greeting", "text": "hi", "expect": {"status": ["sent"], "action": ["smalltalk"]}},
        {"type": "question", "text": "I want to cancel my order",
         "expect": {"status": ["sent"], "intent": "cancel_order"}}, ...]}

The same questions can also be sent one per conversation (``single``), as the single-question
benchmark does, to check that conversations cost no single-question quality.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import InputError
from retrieval.data_files import read_text

EXPECT_KEYS = frozenset({"status", "action", "intent", "contains", "not_contains"})
# Dialogue acts that answer as if the message were in scope.
IN_SCOPE_ACTS = frozenset({"answer", "fill", "ask"})


@dataclass(frozen=True)
class Turn:
    type: str
    text: str
    expect: dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    id: str
    split: str
    turns: tuple[Turn, ...]


@dataclass
class TurnResult:
    turn: Turn
    reply: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_conversations(path: Path) -> list[Conversation]:
    """Read and validate a conversations file; a bad line is named with what is wrong."""
    out: list[Conversation] = []
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}: not JSON ({exc.msg})") from None
        out.append(_conversation(raw, f"{path}:{n}"))
    if not out:
        raise InputError(f"{path}: no conversations")
    return out


def _conversation(raw: Any, where: str) -> Conversation:
    if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list) or not raw["turns"]:
        raise InputError(f"{where}: expected an object with a non-empty 'turns' list")
    turns = []
    for i, t in enumerate(raw["turns"]):
        if not isinstance(t, dict) or not isinstance(t.get("text"), str) or not t["text"].strip():
            raise InputError(f"{where}: turn {i} needs a non-empty 'text'")
        expect = t.get("expect") or {}
        if not isinstance(expect, dict) or set(expect) - EXPECT_KEYS:
            raise InputError(
                f"{where}: turn {i} 'expect' may only have {sorted(EXPECT_KEYS)}, got {expect!r}"
            )
        turns.append(Turn(str(t.get("type", "turn")), t["text"], expect))
    return Conversation(str(raw.get("id", where)), str(raw.get("split", "all")), tuple(turns))


def check(turn: Turn, reply: dict[str, Any]) -> list[str]:
    """What in ``reply`` breaks the turn's expectations (empty: it passed)."""
    e, failures = turn.expect, []
    text = reply.get("text") or ""
    if "status" in e and reply.get("status") not in _list(e["status"]):
        failures.append(f"status {reply.get('status')!r} not in {_list(e['status'])}")
    if "action" in e and reply.get("action") not in _list(e["action"]):
        failures.append(f"action {reply.get('action')!r} not in {_list(e['action'])}")
    if "intent" in e and reply.get("intent") != e["intent"]:
        failures.append(f"intent {reply.get('intent')!r} != {e['intent']!r}")
    for needle in _list(e.get("contains", [])):
        if needle.lower() not in text.lower():
            failures.append(f"reply lacks {needle!r}")
    for needle in _list(e.get("not_contains", [])):
        if needle.lower() in text.lower():
            failures.append(f"reply has {needle!r}")
    return failures


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def summarise(results: dict[str, list[TurnResult]], splits: dict[str, str]) -> dict[str, Any]:
    """Pass rates per split: per turn type, whole conversations, and the issue's targets."""
    report: dict[str, Any] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    for cid, split in splits.items():
        groups[split].append(cid)
        groups["all"].append(cid)
    for split, ids in sorted(groups.items()):
        by_type: dict[str, list[bool]] = defaultdict(list)
        whole = 0
        ood = ood_in_scope = 0
        for cid in ids:
            turns = results[cid]
            whole += all(t.passed for t in turns)
            for t in turns:
                by_type[t.turn.type].append(t.passed)
                if t.turn.type == "out_of_domain":
                    ood += 1
                    ood_in_scope += t.reply.get("action") in IN_SCOPE_ACTS or (
                        t.reply.get("status") == "pending_review"
                    )
        rate = {k: _rate(v) for k, v in sorted(by_type.items())}
        smalltalk = by_type.get("greeting", []) + by_type.get("thanks", [])
        report[split] = {
            "conversations": len(ids),
            "conversations_passed": _rate([all(t.passed for t in results[c]) for c in ids]),
            "turn_pass_rate": rate,
            "turns": {k: len(v) for k, v in sorted(by_type.items())},
            "targets": {
                "conversations_passed": _rate([all(t.passed for t in results[c]) for c in ids]),
                "greetings_and_thanks_answered": _rate(smalltalk),
                "slot_value_continues": rate.get("slot_value"),
                "topic_switch_right_intent": rate.get("topic_switch"),
                "out_of_domain_answered_in_scope": round(ood_in_scope / ood, 4) if ood else None,
                "human_handed_off": rate.get("human"),
            },
        }
    return report


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def single_questions(convs: Iterable[Conversation]) -> list[tuple[str, Turn]]:
    """The questions and out-of-domain lines of ``convs``, each to be sent on its own."""
    kinds = ("question", "topic_switch", "out_of_domain")
    return [(c.split, t) for c in convs for t in c.turns if t.type in kinds]


def summarise_single(results: list[tuple[str, Turn, dict[str, Any]]]) -> dict[str, Any]:
    """Single questions: answered automatically, right intent when answered, out-of-domain
    lines answered as if in scope."""
    out: dict[str, Any] = {}
    groups: dict[str, list[tuple[Turn, dict[str, Any]]]] = defaultdict(list)
    for split, turn, reply in results:
        groups[split].append((turn, reply))
        groups["all"].append((turn, reply))
    for split, rows in sorted(groups.items()):
        questions = [(t, r) for t, r in rows if t.type != "out_of_domain"]
        ood = [r for t, r in rows if t.type == "out_of_domain"]
        answered = [(t, r) for t, r in questions if _answered(r)]
        right = [1 for t, r in answered if r.get("intent") == t.expect.get("intent")]
        out[split] = {
            "questions": len(questions),
            "answered_automatically": round(len(answered) / len(questions), 4)
            if questions
            else None,
            "right_intent_when_answered": round(len(right) / len(answered), 4)
            if answered
            else None,
            "out_of_domain": len(ood),
            "out_of_domain_answered": round(
                sum(r.get("status") == "sent" and r.get("action") in IN_SCOPE_ACTS for r in ood)
                / len(ood),
                4,
            )
            if ood
            else None,
            "statuses": dict(Counter(f"{r.get('status')}/{r.get('action')}" for _, r in rows)),
        }
    return out


def _answered(reply: dict[str, Any]) -> bool:
    """Sent as an answer; a server without dialogue acts (older versions) only answers."""
    return reply.get("status") == "sent" and reply.get("action", "answer") in IN_SCOPE_ACTS


# -- playing through a real server ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _scratch_registry(settings: Any, url: str) -> None:
    """A scratch database that serves the deployment's active model versions."""
    from bot.storage.db import Database
    from bot.storage.model_versions import (
        activate_model_version,
        active_model_version,
        register_model_version,
    )

    source = Database(settings.sqlalchemy_url)
    scratch = Database(url)
    try:
        await scratch.upgrade()
        for kind in ("index", "intent", "generator"):
            row = await active_model_version(source, kind)
            if row is not None:
                await register_model_version(
                    scratch, kind, row.version, Path(row.path), row.metrics
                )
                await activate_model_version(scratch, kind, row.version)
    finally:
        await source.dispose()
        await scratch.dispose()


async def play(
    settings: Any,
    convs: Sequence[Conversation],
    *,
    concurrency: int = 8,
    single: bool = False,
    progress: Any = None,
    url: str | None = None,
    create_app: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Run ``convs`` through the running server at ``url``, or through an in-process one made
    by ``create_app`` (``bot.app.create_app``, passed in: the app is built on this package);
    return the summary (and timings)."""
    if url is not None:
        return await _play(url.rstrip("/") + "/api/v1", convs, concurrency, single, progress)
    if create_app is None:
        raise ValueError("play() needs the url of a running server or create_app")
    from aiohttp import web

    from bot.storage.db import Database

    with tempfile.TemporaryDirectory(prefix="deskbot-eval-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'eval.db'}"
        await _scratch_registry(settings, url)
        server = settings.server.model_copy(
            update={"rate_limit_per_ip": 1e6, "rate_limit_per_conversation": 1e6,
                    "rate_limit_burst": 10_000, "run_jobs": False}
        )  # fmt: skip
        run_settings = settings.model_copy(update={"server": server})
        scratch = Database(url)
        app = create_app(run_settings, db=scratch, run_jobs=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            return await _play(
                f"http://127.0.0.1:{port}/api/v1", convs, concurrency, single, progress
            )
        finally:
            await runner.cleanup()
            await scratch.dispose()


async def _play(
    base: str,
    convs: Sequence[Conversation],
    concurrency: int,
    single: bool,
    progress: Any,
) -> dict[str, Any]:
    import aiohttp

    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as http:

        async def say(texts: Sequence[str]) -> list[dict[str, Any]]:
            async with gate:
                async with http.post(f"{base}/conversations", json={}) as r:
                    conv = await r.json()
                auth = {"Authorization": f"Bearer {conv['token']}"}
                replies = []
                for text in texts:
                    async with http.post(
                        f"{base}/conversations/{conv['id']}/messages",
                        json={"text": text},
                        headers=auth,
                    ) as r:
                        body = await r.json()
                    if r.status != 200:
                        raise InputError(f"the server refused a turn: {body}")
                    replies.append(body["reply"] or {})
                if progress is not None:
                    progress()
                return replies

        if single:
            items = single_questions(convs)
            got = await asyncio.gather(*(say([t.text]) for _, t in items))
            summary = summarise_single([(s, t, r[0]) for (s, t), r in zip(items, got, strict=True)])
            return {"single": summary, "seconds": round(time.perf_counter() - started, 1)}
        got = await asyncio.gather(*(say([t.text for t in c.turns]) for c in convs))
    results = {
        c.id: [TurnResult(t, r, check(t, r)) for t, r in zip(c.turns, replies, strict=True)]
        for c, replies in zip(convs, got, strict=True)
    }
    report = summarise(results, {c.id: c.split for c in convs})
    failures = [
        {"id": c.id, "turn": i, "type": tr.turn.type, "text": tr.turn.text,
         "failures": tr.failures, "reply": tr.reply.get("text")}
        for c in convs
        for i, tr in enumerate(results[c.id])
        if tr.failures
    ]  # fmt: skip
    return {
        "conversations": report,
        "failures": failures,
        "seconds": round(time.perf_counter() - started, 1),
    }
