"""The long-lived parts of one server process, created at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.events import EventBus, InMemoryBus
from bot.ratelimit import MemoryRateLimiter, RateLimiter, StreamCounter
from bot.runtime import ModelRuntime
from bot.settings import Settings
from bot.storage.db import Database

log = logging.getLogger("deskbot.server")


@dataclass
class Services:
    settings: Settings
    db: Database
    runtime: ModelRuntime
    bus: EventBus = field(default_factory=InMemoryBus)
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    pipeline: Any = None  # bot.pipeline.ReplyPipeline
    jobs: Any = None  # bot.jobs.JobRunner
    connectors: Any = None  # connectors wiring, when channels are configured
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: bool = False
    streams: StreamCounter = field(default_factory=StreamCounter)
    replies_in_flight: int = 0  # counted by bot.api.common.reply_slot
    replying: set[int] = field(default_factory=set)  # message ids being answered here

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, kept referenced until it ends; errors are logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, grace_s: float) -> None:
        """Wait for background tasks (replies in flight) to finish, up to ``grace_s``."""
        pending = list(self.tasks)
        if pending:
            log.info("waiting for %d background tasks", len(pending))
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:
                task.cancel()
