"""The agent's label route and the admin export route, through real HTTP."""

from __future__ import annotations

from typing import Any

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.jobs import job_command
from bot.storage.models import Message, TrainingRun


async def _keys(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    db = client.app[SERVICES].db
    agent = await create_api_key(db, "Ada", "agent")
    admin = await create_api_key(db, "Root", "admin")
    return {"Authorization": f"Bearer {agent}"}, {"Authorization": f"Bearer {admin}"}


async def test_agent_labels_a_handed_off_message(make_client: Any) -> None:
    client = await make_client()
    agent, _ = await _keys(client)
    conv = await (await client.post("/api/v1/conversations")).json()
    auth = {"Authorization": f"Bearer {conv['token']}"}
    body = await (
        await client.post(
            f"/api/v1/conversations/{conv['id']}/messages",
            json={"text": "please sign me up for your newsletter"},
            headers=auth,
        )
    ).json()
    message_id = body["message"]["id"]
    url = f"/api/v1/agent/messages/{message_id}/label"
    resp = await client.post(url, json={"intent": " newsletter_subscription "}, headers=agent)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["message"]["id"] == message_id
    async with client.app[SERVICES].db.session() as s:
        stored = await s.get(Message, message_id)
    assert stored is not None and stored.corrected_intent == "newsletter_subscription"

    bad = await client.post(url, json={"intent": ""}, headers=agent)
    assert bad.status == 400 and "'intent'" in (await bad.json())["error"]["message"]
    missing = await client.post(
        "/api/v1/agent/messages/999999/label", json={"intent": "x"}, headers=agent
    )
    assert missing.status == 404
    no_key = await client.post(url, json={"intent": "x"}, headers=auth)
    assert no_key.status in (401, 403)
    if body["reply"]["id"] is not None:  # the bot's own reply is not a customer message
        reply_label = await client.post(
            f"/api/v1/agent/messages/{body['reply']['id']}/label",
            json={"intent": "x"},
            headers=agent,
        )
        assert reply_label.status == 400


async def test_admin_export_route_queues_an_export_job(make_client: Any) -> None:
    client = await make_client()
    agent, admin = await _keys(client)
    resp = await client.post("/api/v1/admin/export", json={"since": "2026-01-01"}, headers=admin)
    assert resp.status == 202, await resp.text()
    run = await resp.json()
    assert run["kind"] == "export"
    async with client.app[SERVICES].db.session() as s:
        row = await s.get(TrainingRun, run["id"])
    assert row is not None and row.status == "queued" and row.params == {"since": "2026-01-01"}
    assert job_command(row.kind, row.params)[-5:] == [
        "export",
        "training-data",
        "--since",
        "2026-01-01",
        "--json",
    ]
    bad = await client.post("/api/v1/admin/export", json={"since": "yesterday"}, headers=admin)
    assert bad.status == 400 and "--since 'yesterday'" in (await bad.json())["error"]["message"]
    forbidden = await client.post("/api/v1/admin/export", json={}, headers=agent)
    assert forbidden.status == 403
