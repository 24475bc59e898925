"""Server fixtures: settings and an aiohttp test client on a prepared home, an intent model on
a tiny encoder, and the real Redis on this machine with a key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings
from finetune.intent.train import train_intent
from tests.conftest import UNDER_CI
from tests.finetune.intent.helpers import TINY_HP, banking_sample


@pytest.fixture
def make_settings(home: Path) -> Callable[..., Settings]:
    def make(**server: Any) -> Settings:
        return load_settings(
            home=home,
            server={"policy": "hybrid", **server},
            generation={"backend": "off"},
        )

    return make


@pytest.fixture
async def make_client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], embedder: Any
) -> AsyncIterator[Callable[..., Any]]:
    async def make(**server: Any) -> Any:
        from bot.app import create_app

        app = create_app(make_settings(**server), embedder=embedder, run_jobs=False)
        return await aiohttp_client(app)

    yield make


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """An intent model on a tiny random encoder: 4 banking intents and out-of-scope."""
    examples = banking_sample("small")
    out = tmp_path_factory.mktemp("intent") / "model"
    return train_intent(examples, TINY_HP, out, progress=False, base_encoder=str(tiny_encoder_dir))


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
