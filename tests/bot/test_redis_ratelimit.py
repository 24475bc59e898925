"""RedisRateLimiter: one token bucket per key, shared by every process."""

from __future__ import annotations

import asyncio

import pytest

from bot.ratelimit import MemoryRateLimiter
from bot.redis_ratelimit import RedisRateLimiter
from tests.bot.conftest import REDIS_URL


async def test_burst_is_shared_across_processes(redis_prefix: str) -> None:
    a = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    b = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    try:
        waits = [await (a if i % 2 else b).hit("conv:1", 0.5, 4) for i in range(5)]
        assert waits[:4] == [0.0] * 4
        assert waits[4] == pytest.approx(2.0, abs=0.1)  # one token at 0.5/s
        assert await a.hit("conv:2", 0.5, 4) == 0.0  # another key has its own bucket
    finally:
        await a.close()
        await b.close()


async def test_same_answers_as_the_in_process_limiter(redis_prefix: str) -> None:
    shared = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    local = MemoryRateLimiter()
    try:
        for _ in range(4):
            got, want = await shared.hit("ip:x", 1.0, 3), await local.hit("ip:x", 1.0, 3)
            assert (got > 0) == (want > 0)
            assert got == pytest.approx(want, abs=0.05)
    finally:
        await shared.close()


async def test_concurrent_hits_never_overspend(redis_prefix: str) -> None:
    limiters = [RedisRateLimiter(REDIS_URL, prefix=redis_prefix) for _ in range(4)]
    try:
        waits = await asyncio.gather(*(limiters[i % 4].hit("conv:9", 0.01, 10) for i in range(40)))
        assert sum(w == 0.0 for w in waits) == 10
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_tokens_come_back_and_idle_buckets_expire(redis_prefix: str) -> None:
    import redis.asyncio as redis

    limiter = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        assert await limiter.hit("k", 20.0, 1) == 0.0
        assert await limiter.hit("k", 20.0, 1) > 0
        await asyncio.sleep(0.1)  # 20/s: a token is back after 0.05 s
        assert await limiter.hit("k", 20.0, 1) == 0.0
        ttl = await raw.pttl(redis_prefix + "rl:k")
        assert 0 < ttl <= 1100  # gone about a second after it would be full again
    finally:
        await raw.aclose()
        await limiter.close()


async def test_unreachable_redis_allows() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        assert await limiter.hit("k", 1.0, 1) == 0.0
        assert await limiter.hit("k", 1.0, 1) == 0.0
    finally:
        await limiter.close()
