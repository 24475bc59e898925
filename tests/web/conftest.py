"""Browser fixtures: headless Chromium from Debian's packages, driven by Playwright, against
the real server (``create_app`` with the bundled sample data) or a small fake widget API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, UNDER_CI

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


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """One Chromium per test; outside CI a missing browser skips (apt-get install chromium)."""
    if not CHROMIUM.is_file():
        message = f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deskbot home with the sample pairs imported and indexed, made once per session with
    the real CLI (``deskbot import`` then ``deskbot index build``)."""
    home = tmp_path_factory.mktemp("deskbot-home")
    env = {**os.environ, "DESKBOT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("DESKBOT_DATABASE_URL", None)
    env.pop("DESKBOT_CONFIG", None)
    for args in (["import", str(SAMPLE_PAIRS)], ["index", "build", "--version", "sample"]):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"deskbot {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return home


@dataclass(frozen=True)
class LiveServer:
    url: str
    home: Path
    agent_key: str
    admin_key: str
    database_url: str


StartServer = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def start_server(
    sample_home: Path, tmp_path: Path, aiohttp_server: Callable[..., Awaitable[object]]
) -> StartServer:
    """Start the real app on 127.0.0.1 over a private copy of the sample home.

    Generation is off (the best retrieved answer is the reply) so the pages, not the language
    model, are what these tests time; ``policy`` picks hybrid (default) or assist.
    """
    from bot.app import create_app
    from bot.auth import create_api_key
    from bot.settings import load_settings
    from bot.storage.db import Database

    async def start(policy: str = "hybrid") -> LiveServer:
        home = tmp_path / "home"
        home.mkdir()
        for item in sample_home.iterdir():
            if item.name.startswith("deskbot.db"):
                shutil.copy2(item, home / item.name)
        (home / "indexes").symlink_to(sample_home / "indexes")
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
        server = await aiohttp_server(create_app(settings, run_jobs=False), host="127.0.0.1")
        url = str(server.make_url("/")).rstrip("/")  # type: ignore[attr-defined]
        return LiveServer(url, home, agent_key, admin_key, settings.sqlalchemy_url)

    return start
