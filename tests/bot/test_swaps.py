"""Swaps under traffic (issue 20, item 4): activating a generator or an intent model while
replies are in flight fails none of them (the index swap is tested in test_server.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.api.common import SERVICES
from bot.settings import load_settings
from bot.storage.model_versions import register_model_version
from bot.storage.models import Message
from tests.bot.test_server import keys, say, start

CANCEL = "How can I cancel my order?"


class SlowLLM:
    """An OpenAI-style chat server that streams its reply slowly, counting streams open."""

    def __init__(self) -> None:
        self.open = 0
        self.served = 0
        self.pieces = ["You can cancel ", "your order ", "on the Orders page."]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.json()
        self.open += 1
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for piece in self.pieces:
                await asyncio.sleep(0.15)
                event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            await response.write_eof()
            self.served += 1
            return response
        finally:
            self.open -= 1


async def test_generator_activation_during_traffic_fails_no_reply(
    aiohttp_client: Any, aiohttp_server: Any, home: Path, embedder: Any
) -> None:
    from bot.app import create_app

    llm = SlowLLM()
    llm_app = web.Application()
    llm_app.router.add_post("/v1/chat/completions", llm.handle)
    server = await aiohttp_server(llm_app)
    settings = load_settings(
        home=home,
        server={"policy": "assist", "rate_limit_per_ip": 1000},
        generation={
            "backend": "remote",
            "remote_url": str(server.make_url("/")),
            "remote_retries": 0,
            "grounding_embedder": False,
        },
    )
    client = await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
    svc = client.app[SERVICES]
    _, admin = await keys(client)
    old = svc.runtime.models.generator
    await register_model_version(svc.db, "generator", "g2", home / "g2", {})

    async def customer() -> dict[str, Any]:
        conv, auth = await start(client)
        return (await say(client, conv, auth, CANCEL))["reply"]

    tasks = [asyncio.create_task(customer()) for _ in range(8)]
    for _ in range(100):  # wait until replies are being generated
        if llm.open >= 4:
            break
        await asyncio.sleep(0.02)
    assert llm.open >= 4
    resp = await client.post("/api/v1/admin/models/generator/g2/activate", headers=admin)
    assert resp.status == 200, await resp.text()
    new = svc.runtime.models.generator
    assert new is not old and svc.runtime.models.versions["generator_version"] == "g2"
    assert old.active > 0  # the old generator is still finishing its replies, still open
    replies = await asyncio.gather(*tasks)
    assert [r["status"] for r in replies] == ["pending_review"] * 8
    assert llm.served == 8
    for _ in range(100):  # closed once its last reply ended
        if old.inner._session is None or old.inner._session.closed:
            break
        await asyncio.sleep(0.02)
    assert old.active == 0 and old.inner._session.closed
    assert (await customer())["status"] == "pending_review"  # the new one answers


@pytest.mark.slow
async def test_intent_activation_during_traffic_loses_no_request(
    make_client: Any, model_dir: Path
) -> None:
    client = await make_client(rate_limit_per_ip=1000)
    _, admin = await keys(client)
    svc = client.app[SERVICES]
    await register_model_version(svc.db, "intent", "tiny", model_dir, {})
    assert svc.runtime.models.versions.get("intent") is None

    async def customer() -> str:
        conv, auth = await start(client)
        return (await say(client, conv, auth, CANCEL))["reply"]["status"]

    tasks = [asyncio.create_task(customer()) for _ in range(24)]
    await asyncio.sleep(0.05)
    resp = await client.post("/api/v1/admin/models/intent/tiny/activate", headers=admin)
    assert resp.status == 200, await resp.text()
    statuses = await asyncio.gather(*tasks)
    assert set(statuses) <= {"sent", "pending_review", "handoff"}
    assert svc.runtime.models.versions["intent"] == "tiny"
    # The next message is read by the model just activated.
    conv, auth = await start(client)
    after = await say(client, conv, auth, CANCEL)
    async with svc.db.session() as s:
        stored = await s.get(Message, after["message"]["id"])
    assert stored is not None and stored.model_versions.get("intent") == "tiny"
