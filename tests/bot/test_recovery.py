"""No message without an outcome: undecided customer messages are answered exactly once,
by however many processes look for them, and after a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.api.common import SERVICES
from bot.recovery import recover_once
from bot.storage.db import Database
from bot.storage.messages import store_message
from bot.storage.models import Conversation, Message, Role, Suggestion, utcnow
from tests.conftest import REPO_ROOT

QUESTIONS = [
    "How can I cancel my order?",
    "where is my package",
    "I want a refund",
    "how do I change my delivery address",
    "can I pay with paypal",
]


async def outcomes(db: Database) -> dict[int, list[str]]:
    """For each widget customer message: the replies, suggestions and handoffs answering it
    (imported history has none, and is not what is tested)."""
    async with db.session() as s:
        customers = (
            await s.exec(
                select(Message).where(Message.role == Role.CUSTOMER, Message.channel == "widget")
            )
        ).all()
        answers = (await s.exec(select(Message).where(Message.role != Role.CUSTOMER))).all()
        suggestions = (await s.exec(select(Suggestion))).all()
    found: dict[int, list[str]] = {m.id: [] for m in customers}  # type: ignore[misc]
    for m in answers:
        reply_to = (m.details or {}).get("reply_to")
        if reply_to in found:
            found[reply_to].append(m.role)
    for sug in suggestions:
        if sug.message_id in found:
            found[sug.message_id].append("suggestion")
    return found


async def _undecided(db: Database, count: int, age_s: float, tag: str) -> list[int]:
    ids = []
    async with db.session() as s:
        for i in range(count):
            conv = Conversation(channel="widget", external_id=f"{tag}-{i}")
            s.add(conv)
            await s.flush()
            msg, _ = await store_message(
                s,
                conv.id,  # type: ignore[arg-type]
                "widget",
                Role.CUSTOMER,
                QUESTIONS[i % len(QUESTIONS)],
            )
            ids.append(msg.id)
        await s.flush()
        for row in (await s.exec(select(Message).where(Message.id.in_(ids)))).all():  # type: ignore[union-attr]
            row.created_at = utcnow() - timedelta(seconds=age_s)
            s.add(row)
    return ids  # type: ignore[return-value]


async def test_two_processes_answer_each_undecided_message_once(
    aiohttp_client: Any, make_settings: Any, embedder: Any
) -> None:
    from bot.app import create_app

    settings = make_settings(recovery_grace_s=60, recovery_interval_s=0)
    clients = [
        await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
        for _ in range(2)
    ]
    services = [c.app[SERVICES] for c in clients]
    db = services[0].db
    lost = await _undecided(db, 12, age_s=61, tag="lost")
    young = await _undecided(
        db, 2, age_s=30, tag="young"
    )  # maybe still being answered elsewhere: left
    answered = await asyncio.gather(*(recover_once(svc) for svc in services))
    assert sum(answered) == 12
    found = await outcomes(db)
    assert all(len(found[m]) == 1 for m in lost), found
    assert all(found[m] == [] for m in young)
    assert await asyncio.gather(*(recover_once(svc) for svc in services)) == [0, 0]
    async with db.session() as s:
        rows = (await s.exec(select(Message).where(Message.id.in_(lost)))).all()  # type: ignore[union-attr]
    assert all(r.decision for r in rows)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DESKBOT_HOME": str(home),
        "DESKBOT_SERVER__PORT": str(port),
        "DESKBOT_SERVER__POLICY": "hybrid",
        "DESKBOT_SERVER__RATE_LIMIT_PER_IP": "1000",
        "DESKBOT_SERVER__RUN_JOBS": "false",
        # One process: nothing is being answered elsewhere, so no claim needs to be waited for.
        "DESKBOT_SERVER__RECOVERY_GRACE_S": "0",
        "DESKBOT_SERVER__RECOVERY_LEASE_S": "0",
        "DESKBOT_SERVER__MODEL_POLL_S": "0",
        "DESKBOT_GENERATION__BACKEND": "off",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=home,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"deskbot serve exited: {log.read_text()[-3000:]}")
            try:
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"deskbot serve did not become ready: {log.read_text()[-3000:]}")


@pytest.mark.slow
async def test_kill_9_mid_reply_then_restart_answers_every_message_once(
    home: Path, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = _serve(home, port, log)
    try:
        await _wait_ready(base, proc, log)
        async with aiohttp.ClientSession(base) as http:

            async def customer(i: int) -> None:
                try:  # answered, or cut off by the kill
                    async with http.post("/api/v1/conversations", json={}) as resp:
                        conv = await resp.json()
                    auth = {"Authorization": f"Bearer {conv['token']}"}
                    url = f"/api/v1/conversations/{conv['id']}/messages"
                    text = QUESTIONS[i % len(QUESTIONS)]
                    async with http.post(url, json={"text": text}, headers=auth) as resp:
                        await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    pass

            db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
            tasks = [asyncio.create_task(customer(i)) for i in range(20)]
            # Kill once most messages are stored and some are still without a decision.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = await outcomes(db)
                if len(found) >= 10 and any(not v for v in found.values()):
                    break
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*tasks)
        before = await outcomes(db)
        assert len(before) >= 10
        unanswered = [m for m, v in before.items() if not v]
        assert unanswered, "the kill came after every reply: nothing to recover"

        proc = _serve(home, port, log)
        await _wait_ready(base, proc, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = await outcomes(db)
            if all(after.values()):
                break
            await asyncio.sleep(0.2)
        assert len(after) == len(before)
        assert all(len(v) == 1 for v in after.values()), after
        assert {m: v for m, v in after.items() if m not in unanswered} == {
            m: v for m, v in before.items() if m not in unanswered
        }
        await db.dispose()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_claims_and_stream_tickets_are_won_once_on_both_databases(db: Database) -> None:
    """The two conditional updates the limits rely on, raced on SQLite and PostgreSQL."""
    from bot.api.tickets import issue_ticket, redeem_ticket
    from bot.errors import AuthError
    from bot.recovery import claim

    [message_id] = await _undecided(db, 1, age_s=61, tag="race")
    won = await asyncio.gather(*(claim(db, message_id, 60) for _ in range(6)))
    assert sorted(won) == [False] * 5 + [True]

    ticket = await issue_ticket(db, 60, conversation_id=None)
    results = await asyncio.gather(
        *(redeem_ticket(db, ticket) for _ in range(6)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, AuthError) for r in results if isinstance(r, BaseException))


async def test_a_slow_reply_of_a_live_process_is_not_taken_but_a_dead_ones_is(
    aiohttp_client: Any, make_settings: Any, embedder: Any
) -> None:
    from bot.app import create_app
    from bot.recovery import renew_claims

    settings = make_settings(recovery_grace_s=60, recovery_lease_s=90, recovery_interval_s=0)
    a, b = [
        (await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))).app[
            SERVICES
        ]
        for _ in range(2)
    ]
    [slow] = await _undecided(a.db, 1, age_s=600, tag="slow")  # long past the grace

    async def claimed(age_s: float) -> None:
        async with a.db.session() as s:
            row = await s.get(Message, slow)
            row.reply_claimed_at = utcnow() - timedelta(seconds=age_s)
            s.add(row)

    await claimed(89)  # A claimed it when storing it and is still replying
    a.replying.add(slow)
    assert await recover_once(b) == 0
    await renew_claims(a.db, a.replying)  # A's next pass renews its claim
    async with a.db.session() as s:
        renewed = (await s.get(Message, slow)).reply_claimed_at
    assert utcnow() - renewed.replace(tzinfo=renewed.tzinfo or utcnow().tzinfo) < timedelta(
        seconds=5
    )
    await claimed(91)  # A died: its claim lapsed one second ago
    assert await recover_once(b) == 1
    assert [len(v) for m, v in (await outcomes(a.db)).items() if m == slow] == [1]
