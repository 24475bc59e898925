"""Micro-batching of model calls across concurrent requests.

This is the one place that batches CPU-bound model work for the server. Requests arriving while
a batch runs wait for the next one; a batch starts as soon as the worker is free and holds at
most ``max_size`` items, after waiting at most ``max_wait`` seconds for more to arrive. The
model function runs in a dedicated thread, so the event loop never runs a model.

With batching disabled (``max_size=1``) each request is its own model call: the load benchmark
uses that to show what batching buys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from bot.errors import OverloadedError

log = logging.getLogger("deskbot.batching")

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    """Collect single calls into batches for ``fn(list[In]) -> list[Out]``."""

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out]],
        *,
        max_size: int = 32,
        max_wait: float = 0.005,
        name: str = "model",
        thread_init: Callable[[], None] | None = None,
        max_queue: int = 4096,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        self.fn = fn
        self.max_size = max_size
        self.max_wait = max_wait
        self.name = name
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread: model calls are serialised (torch already uses every core per call).
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"batch-{name}", initializer=thread_init
        )
        self.batches = 0
        self.items = 0
        self._last_size = 0

    async def submit(self, item: In) -> Out:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        assert self._queue is not None
        if self._queue.qsize() >= self.max_queue:
            # Waiting callers are bounded: past the bound the caller is told to come back.
            raise OverloadedError(f"{self.name}: too many requests waiting", retry_after=1.0)
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    def _take(self, queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]], batch: list) -> list:
        while len(batch) < self.max_size and not queue.empty():
            batch.append(queue.get_nowait())
        return [(item, fut) for item, fut in batch if not fut.cancelled()]

    async def _collect(self, queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]]) -> list:
        """Wait for a first item, then up to ``max_wait`` for company.

        Only when the last batch had company: a lone customer's messages would wait for
        nobody (``benchmarks/load.py`` with one customer shows the cost).
        """
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + (self.max_wait if self._last_size > 1 else 0.0)
        while len(batch) < self.max_size:
            timeout = deadline - loop.time()
            if timeout <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), timeout))
            except TimeoutError:
                break
        return self._take(queue, batch)

    async def _run(self) -> None:
        """Keep the model thread busy: the next batch starts the moment the last one ends.

        While a batch runs, new requests queue up; they are taken and started before the
        finished batch's results are handed out (handing them out wakes many coroutines, and
        the model thread would idle until the event loop got back here).
        """
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        running: tuple[asyncio.Future[Sequence[Out]], list] | None = None
        while True:
            if running is None:
                live = await self._collect(queue)
                if not live:
                    continue
                running = (self._start(loop, live), live)
            work, live = running
            try:
                results: Sequence[Out] | BaseException = await asyncio.shield(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                results = exc
            following = self._take(queue, [])
            running = (self._start(loop, following), following) if following else None
            self._resolve(live, results)

    def _start(self, loop: asyncio.AbstractEventLoop, live: list) -> asyncio.Future[Sequence[Out]]:
        self._last_size = len(live)
        return loop.run_in_executor(self._executor, self.fn, [item for item, _ in live])

    def _resolve(self, live: list, results: Sequence[Out] | BaseException) -> None:
        if not isinstance(results, BaseException) and len(results) != len(live):
            results = RuntimeError(
                f"{self.name} returned {len(results)} results for {len(live)} inputs"
            )
        if isinstance(results, BaseException):
            log.error("%s batch of %d failed", self.name, len(live), exc_info=results)
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(results)
            return
        self.batches += 1
        self.items += len(live)
        for (_, fut), result in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        self._executor.shutdown(wait=True, cancel_futures=True)
