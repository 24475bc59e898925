"""A prepared deskbot home (sample data imported, index built) for server tests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.importer import import_file
from bot.settings import Settings, load_settings
from bot.storage.db import Database
from bot.storage.registry import activate_model_version, register_model_version
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="session")
def embedder() -> Any:
    from retrieval.embedder import Embedder

    return Embedder()


async def build_index(home: Path, db: Database, embedder: Any) -> str:
    from retrieval.build import build_from_database
    from retrieval.store import IndexStore

    store = IndexStore(home / "indexes")
    path = await build_from_database(db, store, embedder)
    store.activate(path.name)
    await register_model_version(db, "index", path.name, path, {})
    await activate_model_version(db, "index", path.name)
    return path.name


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    home = tmp_path_factory.mktemp("sample-home")

    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
        await db.upgrade()
        for name in ("sample_pairs.csv", "sample_dialogues.jsonl"):
            await import_file(db, REPO_ROOT / "examples" / name)
        await build_index(home, db, embedder)
        await db.dispose()

    asyncio.run(prepare())
    return home


@pytest.fixture
def home(sample_home: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared home: tests may change it freely."""
    target = tmp_path / "home"
    shutil.copytree(sample_home, target)
    return target


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
