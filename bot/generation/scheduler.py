"""One thread owns the model and generates concurrent requests in batches.

Callers :meth:`BatchScheduler.submit` a :class:`Job`; the worker thread takes what is queued
(waiting up to ``max_wait_ms`` for company, at most ``max_batch``) and hands the batch to the
engine. Engines that can (llama.cpp) also admit queued jobs between decode steps, so a new
request does not wait for the running batch to finish. Token text reaches the caller through
the job's callbacks, called from the worker thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bot.errors import OverloadedError

log = logging.getLogger("deskbot.generation")


class Detokenizer(Protocol):
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tokens: int
    prompt_tokens: int
    finish_reason: str  # "stop", "length" or "cancelled"
    first_token_s: float | None
    elapsed_s: float


@dataclass(eq=False)
class Job:
    """One generation in flight; engines call :meth:`push` per token and :meth:`finish` once."""

    prompt_ids: list[int]
    max_new_tokens: int
    detokenizer: Detokenizer
    on_piece: Callable[[str], None] = lambda piece: None
    on_done: Callable[[Completion | BaseException], None] = lambda result: None
    temperature: float = 0.0
    # >1 discourages tokens already generated (CTRL's penalty): greedy decoding of a 135M
    # model otherwise loops on one sentence.
    repetition_penalty: float = 1.0
    seed: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    token_ids: list[int] = field(default_factory=list)
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    done: bool = False
    _prefix: int = 0
    _read: int = 0
    _text: list[str] = field(default_factory=list)
    _rng: Any = None

    def sample(self, logits: np.ndarray) -> int:
        if self.repetition_penalty != 1.0 and self.token_ids:
            seen = np.unique(np.asarray(self.token_ids[-256:]))
            logits = logits.astype(np.float32, copy=True)
            picked = logits[seen]
            logits[seen] = np.where(
                picked > 0, picked / self.repetition_penalty, picked * self.repetition_penalty
            )
        if self.temperature <= 0:
            return int(np.argmax(logits))
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        z = logits.astype(np.float64) / self.temperature
        top = np.argpartition(z, -50)[-50:]  # top-50 keeps sampling cheap and sane
        p = np.exp(z[top] - z[top].max())
        return int(top[self._rng.choice(len(top), p=p / p.sum())])

    def push(self, token_id: int) -> None:
        """Record a generated token and pass on the text it completes, if any."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.token_ids.append(token_id)
        ids = self.token_ids
        before = self.detokenizer.decode(ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.detokenizer.decode(ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            piece = after[len(before) :]
            self._prefix, self._read = self._read, len(ids)
            self._text.append(piece)
            self.on_piece(piece)

    @property
    def wants_more(self) -> bool:
        return (
            not self.done
            and not self.cancelled.is_set()
            and (len(self.token_ids) < self.max_new_tokens)
        )

    def finish(self, reason: str | None = None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        if error is not None:
            self.on_done(error)
            return
        if reason is None:
            if self.cancelled.is_set():
                reason = "cancelled"
            elif len(self.token_ids) >= self.max_new_tokens:
                reason = "length"
            else:
                reason = "stop"
        now = time.perf_counter()
        self.on_done(
            Completion(
                text="".join(self._text),
                tokens=len(self.token_ids),
                prompt_tokens=len(self.prompt_ids),
                finish_reason=reason,
                first_token_s=None
                if self.first_token_at is None
                else self.first_token_at - self.submitted,
                elapsed_s=now - self.submitted,
            )
        )


class Engine(Protocol):
    """A local model runtime. ``run`` generates ``jobs`` to completion in the calling thread.

    ``admit(n)`` returns up to ``n`` newly queued jobs (never blocking); engines that support
    joining a running batch call it between steps, others ignore it.
    """

    name: str
    max_batch: int
    stop_ids: frozenset[int]

    def run(self, jobs: list[Job], admit: Callable[[int], list[Job]]) -> None: ...

    def close(self) -> None: ...


_STOP = object()


class BatchScheduler:
    """Owns the engine and its worker thread; thread-safe :meth:`submit`."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
    ) -> None:
        self.engine = engine
        self.max_queue = max(1, max_queue)
        self.max_batch = max(1, min(max_batch, engine.max_batch))
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self.batches: list[int] = []  # sizes of the batches started, for tests and metrics
        self._thread = threading.Thread(target=self._loop, name="deskbot-generation", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("the generation scheduler is closed")
        if self._queue.qsize() >= self.max_queue:
            # Jobs waiting for the model are bounded; past the bound the reply is refused.
            raise OverloadedError("too many replies waiting for the generator", retry_after=1.0)
        self._queue.put(job)

    def _admit(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < n:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            jobs.append(item)
        return jobs

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                break
            jobs = [first]
            deadline = time.perf_counter() + self.max_wait_s
            while len(jobs) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    jobs.extend(self._admit(self.max_batch - len(jobs)))
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                jobs.append(item)
            jobs = [j for j in jobs if not _skip_cancelled(j)]
            if not jobs:
                continue
            self.batches.append(len(jobs))
            try:
                self.engine.run(jobs, self._admit_counted)
            except BaseException as exc:  # the worker must survive a failed batch
                log.exception("generation batch failed")
                for job in jobs:
                    job.finish(error=exc)
            for job in jobs:  # engines finish their jobs; this is the safety net
                job.finish()
        for job in self._admit(10**9):
            job.finish("cancelled")

    def _admit_counted(self, n: int) -> list[Job]:
        jobs = [j for j in self._admit(min(n, self.max_batch)) if not _skip_cancelled(j)]
        if jobs:
            self.batches.append(len(jobs))
        return jobs

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self.engine.close()


def _skip_cancelled(job: Job) -> bool:
    if job.cancelled.is_set():
        job.finish("cancelled")
        return True
    return False
