"""Live events: the bus behind SSE streams (customer widget, agent console, model swaps).

Topics are strings: ``conversation:<id>`` for one conversation, ``agents`` for the agent
console, ``models`` for model swaps. :class:`InMemoryBus` serves one process; a Redis-backed bus
with the same interface connects several processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("deskbot.events")

AGENTS = "agents"
MODELS = "models"
CLOSED = "__closed__"  # the event type a subscriber receives when the bus shuts down


def conversation_topic(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)


class EventBus(Protocol):
    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(
        self, topic: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]: ...

    async def close(self) -> None: ...


class InMemoryBus:
    """Fan-out to every subscriber of a topic in this process; slow readers drop oldest."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._queue_size = queue_size

    async def publish(self, topic: str, event: Event) -> None:
        self.deliver(topic, event)

    def deliver(self, topic: str, event: Event) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            if queue.full():
                queue.get_nowait()
                log.warning("subscriber of %s is slow; dropped an event", topic)
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers[topic].add(queue)

        async def events() -> AsyncIterator[Event]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._subscribers[topic].discard(queue)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    async def close(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(Event(CLOSED))
