"""Token-bucket rate limits (per conversation, per client IP).

:class:`MemoryRateLimiter` holds the buckets of one process; a Redis-backed limiter with the
same ``hit`` method enforces them across processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


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
