"""Fixtures for the learning tests: a server client on a prepared home, and log rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings


@pytest.fixture
def make_settings(home: Path) -> Callable[..., Settings]:
    def make(**learning: Any) -> Settings:
        return load_settings(
            home=home,
            server={"policy": "hybrid"},
            generation={"backend": "off"},
            learning=learning,
        )

    return make


@pytest.fixture
async def make_client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], embedder: Any
) -> AsyncIterator[Callable[..., Any]]:
    async def make(**learning: Any) -> Any:
        from bot.app import create_app

        app = create_app(make_settings(**learning), embedder=embedder, run_jobs=False)
        return await aiohttp_client(app)

    yield make
