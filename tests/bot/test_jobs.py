"""Training runs through the admin API: queued, run by the job runner, cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.api.common import SERVICES
from bot.auth import create_api_key


async def _admin(client: Any) -> dict[str, str]:
    key = await create_api_key(client.app[SERVICES].db, "Root", "admin")
    return {"Authorization": f"Bearer {key}"}


async def _wait(client: Any, auth: dict[str, str], run_id: int, until: set[str]) -> dict[str, Any]:
    for _ in range(600):
        run = await (await client.get(f"/api/v1/admin/training-runs/{run_id}", headers=auth)).json()
        if run["status"] in until:
            return run
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} stayed {run['status']}")


async def test_index_run_builds_activates_and_swaps(
    aiohttp_client: Any, make_settings: Any, embedder: Any
) -> None:
    from bot.app import create_app

    client = await aiohttp_client(create_app(make_settings(), embedder=embedder, run_jobs=True))
    auth = await _admin(client)
    before = client.app[SERVICES].runtime.models.versions["index"]
    resp = await client.post("/api/v1/admin/training-runs", json={"kind": "index"}, headers=auth)
    assert resp.status == 202
    run = await _wait(client, auth, (await resp.json())["id"], {"succeeded", "failed"})
    assert run["status"] == "succeeded", run
    assert run["progress"] == 1.0 and run["finished_at"]
    models = await (await client.get("/api/v1/admin/models?kind=index", headers=auth)).json()
    active = [m["version"] for m in models["models"] if m["status"] == "active"]
    assert len(active) == 1 and active[0] != before
    # The run is marked succeeded, then this process swaps to what it activated.
    runtime = client.app[SERVICES].runtime
    for _ in range(100):
        if runtime.models.versions["index"] == active[0]:
            break
        await asyncio.sleep(0.1)
    assert runtime.models.versions["index"] == active[0]


async def test_intent_run_can_be_cancelled(
    aiohttp_client: Any, make_settings: Any, embedder: Any
) -> None:
    from bot.app import create_app

    client = await aiohttp_client(create_app(make_settings(), embedder=embedder, run_jobs=True))
    auth = await _admin(client)
    resp = await client.post(
        "/api/v1/admin/training-runs",
        json={"kind": "intent", "params": {"epochs": 50}},
        headers=auth,
    )
    run_id = (await resp.json())["id"]
    await _wait(client, auth, run_id, {"running"})
    cancel = await client.post(f"/api/v1/admin/training-runs/{run_id}/cancel", headers=auth)
    assert cancel.status == 200
    run = await _wait(client, auth, run_id, {"cancelled", "succeeded", "failed"})
    assert run["status"] == "cancelled", run
    models = await (await client.get("/api/v1/admin/models?kind=intent", headers=auth)).json()
    assert models["models"] == []


async def test_bad_runs_are_refused(aiohttp_client: Any, make_settings: Any, embedder: Any) -> None:
    from bot.app import create_app

    client = await aiohttp_client(create_app(make_settings(), embedder=embedder, run_jobs=False))
    auth = await _admin(client)
    for body, text in (
        ({"kind": "import"}, "kind"),
        ({"kind": "intent", "params": "fast"}, "params"),
        ({}, "kind"),
    ):
        resp = await client.post("/api/v1/admin/training-runs", json=body, headers=auth)
        assert resp.status == 400
        assert text in (await resp.json())["error"]["message"]
    resp = await client.post("/api/v1/admin/training-runs/999/cancel", headers=auth)
    assert resp.status == 404
    upload = await client.post("/api/v1/admin/import", json={}, headers=auth)
    assert upload.status == 400


async def test_uploaded_file_is_imported_by_a_job(
    aiohttp_client: Any, make_settings: Any, embedder: Any
) -> None:
    import aiohttp
    from sqlalchemy import func
    from sqlmodel import select

    from bot.app import create_app
    from bot.storage.models import KnowledgePair

    client = await aiohttp_client(create_app(make_settings(), embedder=embedder, run_jobs=True))
    auth = await _admin(client)
    form = aiohttp.FormData()
    form.add_field(
        "file",
        b"instruction,intent,response\n"
        b'Do you ship to Iceland?,delivery_options,"Yes, in 5 days."\n',
        filename="faq.csv",
        content_type="text/csv",
    )
    resp = await client.post("/api/v1/admin/import", data=form, headers=auth)
    assert resp.status == 202, await resp.text()
    run = await _wait(client, auth, (await resp.json())["id"], {"succeeded", "failed"})
    assert run["status"] == "succeeded", run
    assert run["result"]["pairs_added"] == 1
    async with client.app[SERVICES].db.session() as s:
        n = (
            await s.exec(
                select(func.count())
                .select_from(KnowledgePair)
                .where(KnowledgePair.question == "Do you ship to Iceland?")
            )
        ).one()
    assert n == 1

    bad = aiohttp.FormData()
    bad.add_field("file", b"question\nhi\n", filename="bad.csv", content_type="text/csv")
    resp = await client.post("/api/v1/admin/import", data=bad, headers=auth)
    run = await _wait(client, auth, (await resp.json())["id"], {"succeeded", "failed"})
    assert run["status"] == "failed"
    assert "missing column 'instruction'" in run["message"]
