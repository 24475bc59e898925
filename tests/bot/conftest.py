"""Server fixtures: settings and an aiohttp test client on a prepared home."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings
from finetune.intent.train import train_intent
from tests.finetune.intent_helpers import TINY_HP, banking_with_oos, tiny_encoder


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
def model_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """An intent model on a tiny random encoder: 4 banking intents and out-of-scope."""
    encoder = tiny_encoder(tmp_path_factory.mktemp("encoder"))
    examples = banking_with_oos(shared_data, per_intent=12, seed=3)
    out = tmp_path_factory.mktemp("intent") / "model"
    return train_intent(examples, TINY_HP, out, progress=False, base_encoder=str(encoder))
