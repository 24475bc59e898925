"""The event bus across server processes: Redis pub/sub (``DESKBOT_REDIS_URL``).

Each process keeps one pub/sub connection. A topic is subscribed on Redis while at least one
local subscriber (an SSE stream, the model follower) listens to it; messages that arrive are
fanned out to the local subscribers through an :class:`~bot.events.InMemoryBus`. A process
receives its own publications the same way, so every subscriber sees one ordering per topic.

Live events are a convenience on top of the database, which stays the source of truth: if Redis
cannot be reached, a publish is logged and dropped rather than failing the request that stored
the message, and the reader reconnects (re-subscribing every topic) with backoff. Clients catch
up through the REST routes (``GET .../messages?after=``, the agent queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.events import Event, InMemoryBus

log = logging.getLogger("deskbot.events")

RECONNECT_MAX_S = 5.0


class RedisBus:
    """:class:`~bot.events.EventBus` on Redis pub/sub; channels are ``<prefix>events:<topic>``."""

    def __init__(self, url: str, *, prefix: str = "deskbot:", queue_size: int = 1000) -> None:
        self._client: redis.Redis = redis.Redis.from_url(url, health_check_interval=30)
        self._channel_prefix = f"{prefix}events:"
        self._local = InMemoryBus(queue_size)
        self._topics: Counter[str] = Counter()  # local subscribers per topic
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # serialises (un)subscribe and reconnects
        self._confirmed: dict[str, asyncio.Event] = {}
        self._closed = False
        self._failed = False  # a subscribe failed; the reader retries

    def channel(self, topic: str) -> str:
        return self._channel_prefix + topic

    async def publish(self, topic: str, event: Event) -> None:
        payload = json.dumps({"type": event.type, "data": event.data}, default=str)
        try:
            await self._client.publish(self.channel(topic), payload)
        except (RedisError, OSError) as exc:
            log.error("could not publish %s on %s: %s", event.type, topic, exc)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Listen to ``topic``; Redis has confirmed the subscription when this yields."""
        async with self._local.subscribe(topic) as events:
            await self._add(topic)
            try:
                yield events
            finally:
                await self._remove(topic)

    async def _add(self, topic: str) -> None:
        async with self._lock:
            self._topics[topic] += 1
            if self._topics[topic] > 1 or self._closed:
                return
            confirmed = self._confirmed[self.channel(topic)] = asyncio.Event()
            try:
                await self._ensure_connected()
                await self._pubsub.subscribe(self.channel(topic))
            except (RedisError, OSError) as exc:
                log.error("could not subscribe to %s (will retry): %s", topic, exc)
                self._failed = True
                return
        # The reader sees the confirmation; wait briefly so events right after are not missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(confirmed.wait(), 5.0)

    async def _remove(self, topic: str) -> None:
        async with self._lock:
            self._topics[topic] -= 1
            if self._topics[topic] > 0:
                return
            del self._topics[topic]
            self._confirmed.pop(self.channel(topic), None)
            if self._pubsub is not None and not self._closed:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(self.channel(topic))

    async def _ensure_connected(self) -> None:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read(), name="redis-bus-reader"
            )

    async def _read(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                pubsub = self._pubsub
                if pubsub is None or not pubsub.subscribed:
                    if self._failed:  # a subscribe failed while Redis was away
                        raise redis.ConnectionError("not subscribed")
                    await asyncio.sleep(0.05)
                    continue
                message = await pubsub.get_message(timeout=1.0)
                delay = 0.1
                if message is not None:
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis bus connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)
                await self._resubscribe()

    async def _resubscribe(self) -> None:
        async with self._lock:
            old, self._pubsub = self._pubsub, self._client.pubsub()
            if old is not None:
                with contextlib.suppress(RedisError, OSError):
                    await old.aclose()
            channels = [self.channel(t) for t in self._topics]
            self._failed = False
            if channels:
                try:
                    await self._pubsub.subscribe(*channels)
                except (RedisError, OSError) as exc:
                    self._failed = True
                    log.warning("redis bus: re-subscribing failed: %s", exc)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel or "")
            if confirmed is not None:
                confirmed.set()
            return
        if message["type"] != "message" or not channel:
            return
        try:
            body = json.loads(message["data"])
            event = Event(str(body["type"]), dict(body.get("data") or {}))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", channel)
            return
        self._local.deliver(channel[len(self._channel_prefix) :], event)

    async def close(self) -> None:
        """End every local stream (they receive ``CLOSED``) and the Redis connections."""
        self._closed = True
        await self._local.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        await self._client.aclose()
