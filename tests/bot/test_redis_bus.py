"""RedisBus: events cross processes (two bus instances stand for two processes)."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from bot.events import CLOSED, Event
from bot.redis_bus import RedisBus
from tests.bot.conftest import REDIS_URL


async def _next(events: object, within: float = 5.0) -> Event:
    return await asyncio.wait_for(events.__anext__(), within)  # type: ignore[attr-defined]


async def _subscribers(channel: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]
    finally:
        await client.aclose()


async def test_event_published_in_one_process_reaches_another(redis_prefix: str) -> None:
    a, b = RedisBus(REDIS_URL, prefix=redis_prefix), RedisBus(REDIS_URL, prefix=redis_prefix)
    try:
        async with a.subscribe("agents") as on_a, a.subscribe("agents") as again_on_a:
            await b.publish("agents", Event("queue", {"reason": "handoff", "conversation_id": 7}))
            await b.publish("conversation:1", Event("message", {"text": "elsewhere"}))
            for events in (on_a, again_on_a):
                got = await _next(events)
                assert got == Event("queue", {"reason": "handoff", "conversation_id": 7})
    finally:
        await a.close()
        await b.close()


async def test_order_is_kept_and_own_events_come_back(redis_prefix: str) -> None:
    bus = RedisBus(REDIS_URL, prefix=redis_prefix)
    try:
        async with bus.subscribe("conversation:3") as events:
            for i in range(20):
                await bus.publish("conversation:3", Event("token", {"i": i}))
            assert [(await _next(events)).data["i"] for _ in range(20)] == list(range(20))
    finally:
        await bus.close()


async def test_prefixes_keep_deployments_apart(redis_prefix: str) -> None:
    ours = RedisBus(REDIS_URL, prefix=redis_prefix)
    other = RedisBus(REDIS_URL, prefix=redis_prefix + "other:")
    try:
        async with ours.subscribe("models") as events:
            await other.publish("models", Event("activated", {"kind": "index"}))
            await ours.publish("models", Event("activated", {"kind": "intent"}))
            assert (await _next(events)).data == {"kind": "intent"}
    finally:
        await ours.close()
        await other.close()


async def test_last_subscriber_leaving_unsubscribes(redis_prefix: str) -> None:
    bus = RedisBus(REDIS_URL, prefix=redis_prefix)
    channel = bus.channel("agents")
    try:
        async with bus.subscribe("agents"):
            async with bus.subscribe("agents"):
                assert await _subscribers(channel) == 1  # one Redis subscription per process
            assert await _subscribers(channel) == 1
        for _ in range(50):
            if await _subscribers(channel) == 0:
                break
            await asyncio.sleep(0.05)
        assert await _subscribers(channel) == 0
    finally:
        await bus.close()


async def test_close_ends_streams_with_closed(redis_prefix: str) -> None:
    bus = RedisBus(REDIS_URL, prefix=redis_prefix)
    async with bus.subscribe("agents") as events:
        await bus.close()
        assert (await _next(events)).type == CLOSED


async def test_malformed_messages_are_skipped(redis_prefix: str) -> None:
    bus = RedisBus(REDIS_URL, prefix=redis_prefix)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        async with bus.subscribe("agents") as events:
            await raw.publish(bus.channel("agents"), b"not json")
            await raw.publish(bus.channel("agents"), b'{"no": "type"}')
            await bus.publish("agents", Event("message", {"ok": True}))
            assert await _next(events) == Event("message", {"ok": True})
    finally:
        await raw.aclose()
        await bus.close()


async def test_unreachable_redis_does_not_fail_publishers() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        await bus.publish("agents", Event("message", {}))  # logged and dropped, not raised
    finally:
        await bus.close()
