"""Property-based fuzzing of every route in /api/v1/openapi.json against the real server.

Schemathesis generates requests from the document; each goes to a live deskbot (in a thread
of its own, over TCP) with one of: an admin key, an agent key, a widget token, a made-up
credential, or none. Every answer must be a non-5xx, and every 4xx must be the JSON error
body the document promises. The routes are split between fuzzing processes
(tests/bot/fuzz_worker.py). ``DESKBOT_FUZZ_EXAMPLES`` sets the examples per route: by default
300 under CI (``CI=true``), 25 elsewhere (docs/limits.md has the times).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO_ROOT

pytest.importorskip("schemathesis")

# CI fuzzes a few hundred cases per route; a local run samples fewer.
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
EXAMPLES = int(os.environ.get("DESKBOT_FUZZ_EXAMPLES") or (300 if UNDER_CI else 25))
# Fuzzing processes (tests/bot/fuzz_worker.py), the routes split between them: generating cases
# is pure Python, so one process would leave the other cores to the server alone.
WORKERS = max(2, min(4, os.cpu_count() or 1))
# Event streams stay open by design (their limits and tickets are tested in test_limits.py).
STREAMS = ("/api/v1/conversations/{conversation_id}/events", "/api/v1/agent/events")


class LiveServer:
    def __init__(self, home: Path, embedder: Any) -> None:
        from bot.settings import load_settings

        self.settings = load_settings(
            home=home,
            server={
                "policy": "hybrid",
                "rate_limit_per_ip": 100_000,
                "rate_limit_per_conversation": 1000,
                "rate_limit_burst": 1000,
                "recovery_interval_s": 0,
                "model_poll_s": 0,
            },
            generation={"backend": "off"},
        )
        self.embedder = embedder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.credentials: dict[str, dict[str, str]] = {}

    def run(self, coro: Any, timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        from aiohttp import web

        from bot.api.common import SERVICES
        from bot.api.ops import build_openapi
        from bot.app import create_app
        from bot.auth import create_api_key

        app = create_app(self.settings, embedder=self.embedder, run_jobs=False)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self.spec = build_openapi(app)
        db = app[SERVICES].db
        for role in ("admin", "agent"):
            key = await create_api_key(db, f"fuzz-{role}", role)
            self.credentials[role] = {"Authorization": f"Bearer {key}"}

    def stop(self) -> None:
        self.run(self.runner.cleanup(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(
    sample_home: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(sample_home, home)
    server = LiveServer(home, embedder)
    server.start()
    widget = requests.post(f"{server.base}/api/v1/conversations", json={}, timeout=10).json()
    server.credentials["widget"] = {"Authorization": f"Bearer {widget['token']}"}
    server.credentials["bogus"] = {"Authorization": "Bearer dsk_00000000_not-a-real-key"}
    server.credentials["none"] = {}
    yield server
    server.stop()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path not in STREAMS
    ]


def test_every_route_survives_fuzzing(live: LiveServer, tmp_path: Path) -> None:
    operations = _operations(live.spec)
    procs = []
    for i in range(WORKERS):
        job = tmp_path / f"job{i}.json"
        job.write_text(
            json.dumps(
                {
                    "spec": live.spec,
                    "base": live.base,
                    "credentials": live.credentials,
                    "operations": operations[i::WORKERS],
                    "examples": EXAMPLES,
                }
            )
        )
        out = (tmp_path / f"out{i}.txt").open("w+")
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "tests.bot.fuzz_worker", str(job)],
                    cwd=REPO_ROOT,
                    env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                ),
                out,
            )
        )
    cases, failures = 0, []
    for proc, out in procs:
        proc.wait(timeout=900)
        out.seek(0)
        text = out.read()
        assert proc.returncode == 0, text[-3000:]
        result = json.loads(text.strip().splitlines()[-1])
        cases += result["cases"]
        failures += result["failures"]
    assert cases >= EXAMPLES * len(operations) // 2
    assert not failures, "\n\n".join(failures)
