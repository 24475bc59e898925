"""Fixtures for scale-out tests: the real Redis on this machine, with a key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import UNDER_CI

REDIS_URL = os.environ.get("DESKBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _redis_or_skip() -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key/channel prefix no other test run uses; its keys are deleted afterwards."""
    import redis.asyncio as redis

    await _redis_or_skip()
    prefix = f"deskbot-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
