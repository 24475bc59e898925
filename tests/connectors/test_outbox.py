"""The outbox: exclusive claims, order per conversation, leases, retries and giving up."""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.errors import ConflictError, InputError
from bot.storage.db import Database
from bot.storage.deliveries import (
    OutboxTable,
    dead_letters,
    enqueue,
    outbound_for,
    retry_dead_letter,
)
from bot.storage.models import Conversation, Outbox, OutboxStatus, utcnow
from connectors.base import OutboundMessage
from connectors.config import DeliverySettings
from connectors.connector_set import ConnectorSet
from connectors.outbox import DeliveryWorker, backoff_delay
from connectors.registration import build_channel_config
from tests.connectors.fakes import CASES, FakePlatform, eventually
from tests.connectors.harness import FAST_DELIVERY, outbox_rows

WEBHOOK = next(c for c in CASES if c.connector == "webhook")


@pytest.fixture
async def platform(aiohttp_server: Any) -> Any:
    fake = FakePlatform(WEBHOOK.ok)
    server = await aiohttp_server(fake.app)
    fake.base = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    return fake


@pytest.fixture
async def connectors(platform: Any) -> Any:
    config = build_channel_config("webhook", WEBHOOK.options(platform.base))
    found = ConnectorSet.from_configs({"main": ("webhook", config)})
    yield found
    await found.close()


async def _enqueue(db: Database, conversations: int, per_conversation: int) -> None:
    async with db.session() as s:
        for c in range(conversations):
            conv = Conversation(channel="webhook:main", external_id=f"conv-{c}")
            s.add(conv)
            await s.flush()
            for i in range(per_conversation):
                await enqueue(s, conv, None, outbound_for(conv, f"reply {i}"))


async def test_two_workers_send_every_row_once_and_in_order(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    await _enqueue(db, conversations=8, per_conversation=4)
    settings = FAST_DELIVERY.model_copy(update={"batch_size": 5})
    workers = [DeliveryWorker(OutboxTable(db), connectors, settings) for _ in range(2)]
    for w in workers:
        await w.start()
    try:
        await eventually(lambda: len(platform.requests) >= 32)
        await eventually(lambda: _all(db, OutboxStatus.SENT))
    finally:
        for w in workers:
            await w.stop()
    delivery_ids = [r.headers["X-Deskbot-Delivery"] for r in platform.requests]
    assert len(delivery_ids) == 32 == len(set(delivery_ids))
    for c in range(8):
        texts = [
            r.json()["text"]
            for r in platform.requests
            if r.json()["conversation_id"] == f"conv-{c}"
        ]
        assert texts == [f"reply {i}" for i in range(4)]


async def _all(db: Database, status: str) -> Any:
    rows = await outbox_rows(db)
    return rows if rows and all(r.status == status for r in rows) else None


async def test_a_row_left_sending_by_a_dead_worker_is_resent_after_its_lease(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    await _enqueue(db, conversations=2, per_conversation=1)
    async with db.session() as s:
        rows = (await s.exec(Outbox.__table__.select())).all()  # type: ignore[attr-defined]
        expired, live = rows[0].id, rows[1].id
        for row_id, until in (
            (expired, utcnow() - timedelta(seconds=1)),
            (live, utcnow() + timedelta(hours=1)),
        ):
            row = await s.get(Outbox, row_id)
            row.status, row.attempts, row.next_try_at = OutboxStatus.SENDING, 1, until
    worker = DeliveryWorker(OutboxTable(db), connectors, FAST_DELIVERY)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    rows = {r.id: r for r in await outbox_rows(db)}
    assert rows[expired].status == OutboxStatus.SENT and rows[expired].attempts == 2
    assert rows[live].status == OutboxStatus.SENDING  # another worker still holds it
    assert len(platform.requests) == 1


async def test_gives_up_after_max_attempts(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    for _ in range(10):
        platform.fail_next(500, {"error": "down"})
    await _enqueue(db, conversations=1, per_conversation=1)
    settings = FAST_DELIVERY.model_copy(update={"max_attempts": 3})
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    await worker.start()
    try:
        rows = await eventually(lambda: _all(db, OutboxStatus.FAILED))
    finally:
        await worker.stop()
    assert rows[0].attempts == 3 and "HTTP 500" in rows[0].last_error
    assert len(platform.requests) == 3


async def test_a_row_for_an_unconfigured_channel_fails_without_sending(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    async with db.session() as s:
        conv = Conversation(channel="slack:gone", external_id="C1")
        s.add(conv)
        await s.flush()
        await enqueue(s, conv, None, outbound_for(conv, "hello"))
    worker = DeliveryWorker(OutboxTable(db), connectors, FAST_DELIVERY)
    assert await worker.run_once() == 1
    [row] = await outbox_rows(db)
    assert row.status == OutboxStatus.FAILED and "slack:gone" in row.last_error
    assert platform.requests == []


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    settings = DeliverySettings(backoff_base_s=1.0, backoff_max_s=30.0)
    rng = random.Random(7)
    for attempt, ceiling in ((1, 1.0), (3, 4.0), (5, 16.0), (9, 30.0)):
        delays = [backoff_delay(attempt, settings, rng, None) for _ in range(400)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling  # spread, not fixed
    assert backoff_delay(9, settings, rng, 120.0) == 120.0  # Retry-After wins, even above max


async def test_enqueue_refuses_a_reply_on_another_channel(db: Database) -> None:
    async with db.session() as s:
        conv = Conversation(channel="webhook:main", external_id="c1")
        s.add(conv)
        await s.flush()
        wrong = OutboundMessage(channel="slack:main", conversation_external_id="c1", text="x")
        with pytest.raises(InputError, match="differs"):
            await enqueue(s, conv, None, wrong)
    with pytest.raises(InputError, match="no external id"):
        outbound_for(Conversation(id=5, channel="widget"), "hello")


@pytest.mark.parametrize("given", [1e30, float("inf"), float("nan"), 3601.0])
def test_a_platforms_retry_after_is_capped(given: float) -> None:
    settings = FAST_DELIVERY.model_copy(update={"retry_after_max_s": 3600.0})
    assert backoff_delay(1, settings, random.Random(0), given) == 3600.0
    assert backoff_delay(1, settings, random.Random(0), 3600.0) == 3600.0  # at the cap: kept


async def test_a_huge_retry_after_leaves_the_row_due_within_the_cap(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    platform.fail_next(429, {"error": "slow down"}, {"Retry-After": "9" * 40})
    await _enqueue(db, conversations=1, per_conversation=1)
    settings = FAST_DELIVERY.model_copy(update={"retry_after_max_s": 60.0})
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    before = utcnow()
    assert await worker.run_once() == 1
    [row] = await outbox_rows(db)
    assert row.status == OutboxStatus.PENDING
    due = row.next_try_at if row.next_try_at.tzinfo else row.next_try_at.replace(tzinfo=UTC)
    assert before + timedelta(seconds=59) <= due <= utcnow() + timedelta(seconds=60)


async def test_a_delivery_past_its_deadline_is_a_dead_letter_and_can_be_retried(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    settings = FAST_DELIVERY.model_copy(update={"deadline_s": 60.0})
    await _enqueue(db, conversations=3, per_conversation=1)
    async with db.session() as s:
        rows = (await s.exec(select(Outbox).order_by(Outbox.id))).all()
        for row, age in zip(rows, (59, 59, 61), strict=True):  # the last is one past it
            row.created_at = utcnow() - timedelta(seconds=age)
            s.add(row)
        late_id = rows[-1].id
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    assert await worker.run_once() == 2
    assert len(platform.requests) == 2  # the late one was never sent
    [dead] = await dead_letters(db)
    assert dead.id == late_id and "deadline" in dead.last_error

    retried = await retry_dead_letter(db, dead.id)
    assert retried.status == OutboxStatus.PENDING and retried.attempts == 0
    assert await worker.run_once() == 1
    assert len(platform.requests) == 3
    assert await dead_letters(db) == []
    with pytest.raises(ConflictError):
        await retry_dead_letter(db, dead.id)  # sent now: nothing to retry


async def test_a_retry_that_would_land_past_the_deadline_gives_up_at_once(
    db: Database, platform: FakePlatform, connectors: ConnectorSet
) -> None:
    platform.fail_next(503, {"error": "busy"}, {"Retry-After": "120"})
    settings = FAST_DELIVERY.model_copy(update={"deadline_s": 60.0})
    await _enqueue(db, conversations=1, per_conversation=1)
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    assert await worker.run_once() == 1
    [row] = await outbox_rows(db)
    assert row.status == OutboxStatus.FAILED and row.attempts == 1
