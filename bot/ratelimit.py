"""Token-bucket rate limits (per conversation, per client IP), and the cap on open streams.

:class:`MemoryRateLimiter` holds the buckets of one process; a Redis-backed limiter with the
same ``hit`` method enforces them across processes. :class:`StreamCounter` caps the event
streams one process holds open.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from bot.errors import RateLimitedError


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: float, burst: int) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is available."""
        ...


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, rate: float, burst: int) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now, rate, burst)
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _evict(self, now: float, rate: float, burst: int) -> None:
        # Drop buckets that have refilled completely: they hold no state worth keeping.
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * rate >= burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()


class StreamCounter:
    """Open streams per owner (a conversation or an API key) and in all, in one process."""

    def __init__(self) -> None:
        self.total = 0
        self.by_owner: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, owner: str, per_owner: int, total: int) -> Iterator[None]:
        if self.total >= total:
            raise RateLimitedError("too many open event streams on this server", retry_after=5)
        if self.by_owner.get(owner, 0) >= per_owner:
            raise RateLimitedError(
                f"at most {per_owner} open event streams per conversation or key; close one",
                retry_after=5,
            )
        self.total += 1
        self.by_owner[owner] = self.by_owner.get(owner, 0) + 1
        try:
            yield
        finally:
            self.total -= 1
            left = self.by_owner[owner] - 1
            if left:
                self.by_owner[owner] = left
            else:
                del self.by_owner[owner]
