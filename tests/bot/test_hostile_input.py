"""Hostile messages through the real server: each is answered, and none stalls it (issue #20)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.bot.generation.hostile_corpus import CORPUS, WORST_CASE
from tests.bot.test_server import start

NO_LIMITS = {
    "rate_limit_per_conversation": 1000.0,
    "rate_limit_burst": 1000,
    "rate_limit_per_ip": 10000.0,
}


async def _healthz_while(client: Any, work: asyncio.Task[Any]) -> list[float]:
    """Seconds each /healthz took, asked every 20 ms until ``work`` is done."""
    took: list[float] = []
    while not work.done():
        started = time.perf_counter()
        resp = await client.get("/healthz")
        assert resp.status == 200
        took.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return took


async def test_the_worst_case_message_leaves_the_server_answering(make_client: Any) -> None:
    """Issue #20: this message stalled the event loop for seconds (hours at full length)."""
    client = await make_client(**NO_LIMITS)
    conv, auth = await start(client)
    url = f"/api/v1/conversations/{conv}/messages"
    await client.post(url, json={"text": "How can I cancel my order?"}, headers=auth)  # warm

    async def send() -> Any:
        return await client.post(url, json={"text": WORST_CASE}, headers=auth)

    work = asyncio.create_task(send())
    took = await _healthz_while(client, work)
    resp = work.result()
    assert resp.status == 200, await resp.text()
    assert took and max(took) < 1.0, took  # generous: a shared CPU must not make it flaky
    reply = (await resp.json())["reply"]
    assert reply["status"] in ("sent", "pending_review", "handoff")


async def test_every_hostile_message_gets_an_outcome_and_no_braces(make_client: Any) -> None:
    client = await make_client(**NO_LIMITS)
    conv, auth = await start(client)
    url = f"/api/v1/conversations/{conv}/messages"
    outcomes: dict[str, str] = {}

    async def send_all() -> None:
        for name, text in CORPUS.items():
            resp = await client.post(url, json={"text": text}, headers=auth)
            body = await resp.json()
            assert resp.status == 200, (name, body)
            reply = body["reply"]
            assert "{{" not in (reply["text"] or "") and "}}" not in (reply["text"] or ""), name
            outcomes[name] = reply["status"]

    work = asyncio.create_task(send_all())
    took = await _healthz_while(client, work)
    work.result()
    assert set(outcomes) == set(CORPUS)
    assert max(took) < 1.0, max(took)
    listed = await client.get(f"{url}?after=0", headers=auth)
    customer = [m for m in (await listed.json())["messages"] if m["role"] == "customer"]
    # What is stored is what was sent, invisible characters and padding included.
    assert [m["text"] for m in customer] == list(CORPUS.values())
