"""Server fixtures: settings and an aiohttp test client on a prepared home, an intent model on
a tiny encoder, and the real Redis on this machine with a key prefix per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings
from finetune.intent.train import train_intent
from tests import head_start
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


@dataclass(frozen=True)
class FirstBot:
    """The learning demonstrations' bot before it learns: a home with the base pairs indexed
    and the first intent model active, trained without the left-out intents."""

    home: Path
    scenario: Any  # tests.bot.learning_demo.Scenario
    version: str
    admin_key: str
    agent_key: str


# The demonstrations' retrains: half the first model's epochs are enough to learn the new
# intents beside the base data, and the retrain is most of each demonstration's time.
RETRAIN_EPOCHS = 4


@pytest.fixture(scope="session")
def first_bot(shared_data: Path) -> FirstBot:
    """Trained once per session, in a child process started when the tests were collected
    (tests/head_start.py), for every demonstration that starts from it."""
    from tests.bot.learning_demo import (
        first_bot_args,
        first_bot_home,
        load_scenario,
        read_first_bot,
    )

    rc, output = head_start.finish("first_bot", *first_bot_args(shared_data))
    assert rc == 0, f"preparing the first bot failed:\n{output}"
    home = first_bot_home()
    info = read_first_bot(home)
    return FirstBot(
        home, load_scenario(shared_data), info["version"], info["admin_key"], info["agent_key"]
    )


@pytest.fixture
def learning_bot(first_bot: FirstBot, tmp_path: Path) -> FirstBot:
    """A private copy of the first bot's home, to retrain freely (the first model and index
    stay where they are: nothing writes to them)."""
    target = tmp_path / "home"
    shutil.copytree(first_bot.home, target)
    return replace(first_bot, home=target)


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
