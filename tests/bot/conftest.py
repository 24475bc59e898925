"""Server fixtures: settings and an aiohttp test client on a prepared home."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings


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
