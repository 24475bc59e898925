"""Property-based fuzzing of every route in /api/v1/openapi.json against the real server.

Schemathesis generates requests from the document; each goes to a live deskbot (in a thread
of its own, over TCP) with one of: an admin key, an agent key, a widget token, a made-up
credential, or none. Every answer must be a non-5xx, and every 4xx must be the JSON error
body the document promises. ``DESKBOT_FUZZ_EXAMPLES`` sets the examples per route: by default
100 under CI (``CI=true``), 25 elsewhere (docs/limits.md has the times).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
)

# CI fuzzes as many cases per route as fit its time for this test; a local run samples fewer.
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
EXAMPLES = int(os.environ.get("DESKBOT_FUZZ_EXAMPLES") or (100 if UNDER_CI else 25))
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


def _fuzzer(live: LiveServer, operation: Any, session: requests.Session, seen: list[int]) -> Any:
    name = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), who=st.sampled_from(sorted(live.credentials)))
    def fuzz(case: Any, who: str) -> None:
        seen.append(1)
        try:
            case.call_and_validate(
                base_url=live.base,
                session=session,
                headers=live.credentials[who],
                checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
                timeout=10,
            )
        except Exception as exc:  # check failures arrive as exception groups
            raise AssertionError(f"{name} ({who}): {exc}") from exc

    return fuzz


def test_every_route_survives_fuzzing(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(live.spec)
    session = requests.Session()
    failures: list[str] = []
    seen: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        try:
            _fuzzer(live, operation, session, seen)()
        except AssertionError as exc:
            failures.append(str(exc)[:2000])
    assert len(seen) >= EXAMPLES * len(_operations(live.spec)) // 2
    assert not failures, "\n\n".join(failures)
