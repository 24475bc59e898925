"""Browser fixtures: headless Chromium from Debian's packages, driven by Playwright, against
the real server (``create_app`` with the bundled sample data) or a small fake widget API."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from bot.importer import import_file
from bot.storage.db import Database
from tests.conftest import REPO_ROOT, UNDER_CI, build_index

CHROMIUM = Path(os.environ.get("DESKBOT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE_PAIRS = REPO_ROOT / "examples" / "sample_pairs.csv"


# Chromium starts once per session, so the browser tests run in the session's event loop:
# each web test module sets ``pytestmark = BROWSER_LOOP``, and the async fixtures they use
# (``aiohttp_server``, ``start_server``) run in that loop too.
BROWSER_LOOP = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the session; outside CI a missing browser skips (apt-get
    install chromium)."""
    if not CHROMIUM.is_file():
        message = f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The session's Chromium; every context a test opens (``new_context``, ``new_page``) is
    closed after it, so no cookie, storage or page outlives its test."""
    assert not chromium.contexts, "a previous test left a browser context open"
    yield chromium
    for context in list(chromium.contexts):
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def aiohttp_server() -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    """pytest-aiohttp's ``aiohttp_server``, in the browser tests' event loop."""
    servers: list[TestServer] = []

    async def start(
        app: web.Application, *, host: str = "127.0.0.1", port: int | None = None, **kw: object
    ) -> TestServer:
        server = TestServer(app, host=host, port=port)
        await server.start_server(**kw)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    while servers:
        await servers.pop().close()


@pytest.fixture(scope="session")
def pairs_home(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    """A deskbot home with the sample pairs imported and indexed (version ``sample``), made
    once per session the way ``deskbot import`` and ``deskbot index build`` make it."""
    home = tmp_path_factory.mktemp("deskbot-home")

    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
        try:
            await db.upgrade()
            await import_file(db, SAMPLE_PAIRS)
            await build_index(home, db, embedder, version="sample")
        finally:
            await db.dispose()

    asyncio.run(prepare())
    return home


@dataclass(frozen=True)
class LiveServer:
    url: str
    home: Path
    agent_key: str
    admin_key: str
    database_url: str


StartServer = Callable[..., Awaitable[LiveServer]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_server(
    pairs_home: Path,
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[object]],
    embedder: Any,
) -> StartServer:
    """Start the real app on 127.0.0.1 over a private copy of the sample home.

    Generation is off (the best retrieved answer is the reply) so the pages, not the language
    model, are what these tests time; ``policy`` picks hybrid (default) or assist.
    """
    from bot.app import create_app
    from bot.auth import create_api_key
    from bot.settings import load_settings

    async def start(policy: str = "hybrid") -> LiveServer:
        home = tmp_path / "home"
        home.mkdir()
        for item in pairs_home.iterdir():
            if item.name.startswith("deskbot.db"):
                shutil.copy2(item, home / item.name)
        (home / "indexes").symlink_to(pairs_home / "indexes")
        settings = load_settings(
            home=home,
            generation={"backend": "off"},
            server={"policy": policy, "rate_limit_burst": 50},
        )
        db = Database(settings.sqlalchemy_url)
        try:
            agent_key = await create_api_key(db, "alice", "agent")
            admin_key = await create_api_key(db, "root", "admin")
        finally:
            await db.dispose()
        server = await aiohttp_server(
            create_app(settings, embedder=embedder, run_jobs=False), host="127.0.0.1"
        )
        url = str(server.make_url("/")).rstrip("/")  # type: ignore[attr-defined]
        return LiveServer(url, home, agent_key, admin_key, settings.sqlalchemy_url)

    return start
