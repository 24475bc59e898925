"""Credentials with a lifecycle, conversation ownership and data-subject routes, through real
HTTP on the server."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import update
from sqlmodel import select

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.cli import cli
from bot.storage.models import ApiKey, Conversation, KnowledgePair, utcnow
from tests.bot.test_server import HUMAN, say, start


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _error(resp: Any, status: int) -> str:
    body = await resp.json()
    assert resp.status == status, body
    return str(body["error"]["message"])


async def test_api_keys_are_listed_revoked_and_expire(make_client: Any) -> None:
    client = await make_client()
    db = client.app[SERVICES].db
    admin = _auth(await create_api_key(db, "Root", "admin"))

    made = await client.post(
        "/api/v1/admin/api-keys",
        json={"name": "Bea", "role": "agent", "expires_days": 30},
        headers=admin,
    )
    assert made.status == 201, await made.text()
    body = await made.json()
    bea = _auth(body["key"])
    assert body["api_key"]["status"] == "active" and body["api_key"]["expires_at"]
    assert (await client.get("/api/v1/agent/me", headers=bea)).status == 200

    listed = await (await client.get("/api/v1/admin/api-keys", headers=admin)).json()
    assert [k["name"] for k in listed["api_keys"]] == ["Root", "Bea"]
    assert body["key"] not in json.dumps(listed) and "key_hash" not in json.dumps(listed)
    assert listed["api_keys"][1]["last_used_at"] is not None

    bea_id = body["api_key"]["id"]
    revoked = await client.post(f"/api/v1/admin/api-keys/{bea_id}/revoke", headers=admin)
    assert (await revoked.json())["api_key"]["status"] == "revoked"
    message = await _error(await client.get("/api/v1/agent/me", headers=bea), 401)
    assert "revoked" in message

    # An expired key is refused too.
    cleo_key = await create_api_key(db, "Cleo", "agent")
    async with db.session() as s:
        await s.exec(  # type: ignore[call-overload]
            update(ApiKey)
            .where(ApiKey.name == "Cleo")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert "expired" in await _error(
        await client.get("/api/v1/agent/me", headers=_auth(cleo_key)), 401
    )
    listed = await (await client.get("/api/v1/admin/api-keys", headers=admin)).json()
    assert [k["status"] for k in listed["api_keys"]] == ["active", "revoked", "expired"]

    # The last admin key cannot lock every admin out through the API.
    root_id = listed["api_keys"][0]["id"]
    assert "last active admin" in await _error(
        await client.post(f"/api/v1/admin/api-keys/{root_id}/revoke", headers=admin), 409
    )
    for bad, status in (
        ({"name": "x", "role": "boss"}, 400),
        ({"name": "x", "role": "agent", "expires_days": 0}, 400),
        ({"role": "agent"}, 400),
    ):
        await _error(await client.post("/api/v1/admin/api-keys", json=bad, headers=admin), status)
    await _error(await client.get("/api/v1/admin/api-keys", headers=bea), 401)


def test_apikey_cli_lists_and_revokes(tmp_path: Path) -> None:
    env = {"DESKBOT_HOME": str(tmp_path / "home")}
    runner = CliRunner(env=env)
    made = runner.invoke(
        cli, ["apikey", "create", "--role", "agent", "--name", "Dan", "--expires-days", "7"]
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    listed = runner.invoke(cli, ["apikey", "list", "--json"])
    rows = json.loads(listed.output)
    assert [(r["name"], r["status"]) for r in rows] == [("Dan", "active")]
    assert key not in listed.output and rows[0]["expires_at"]
    table = runner.invoke(cli, ["apikey", "list"])
    assert "Dan" in table.output and rows[0]["prefix"] in table.output
    gone = runner.invoke(cli, ["apikey", "revoke", rows[0]["prefix"]])
    assert gone.exit_code == 0 and "revoked key" in gone.output
    rows = json.loads(runner.invoke(cli, ["apikey", "list", "--json"]).output)
    assert rows[0]["status"] == "revoked"
    missing = runner.invoke(cli, ["apikey", "revoke", "nosuch"])
    assert missing.exit_code != 0 and "no API key" in str(missing.exception)


async def test_agent_b_cannot_act_in_agent_as_claimed_conversation(make_client: Any) -> None:
    client = await make_client()
    db = client.app[SERVICES].db
    ada = _auth(await create_api_key(db, "Ada", "agent"))
    bob = _auth(await create_api_key(db, "Bob", "agent"))
    root = _auth(await create_api_key(db, "Root", "admin"))
    conv, auth = await start(client)
    assert (await say(client, conv, auth, HUMAN))["reply"]["status"] == "handoff"
    base = f"/api/v1/agent/conversations/{conv}"

    assert (await client.post(f"{base}/claim", headers=ada)).status == 200
    message = await _error(
        await client.post(f"{base}/messages", json={"text": "Bob here"}, headers=bob), 403
    )
    assert "Ada has claimed" in message
    await _error(await client.post(f"{base}/handback", headers=bob), 403)
    await _error(await client.post(f"{base}/claim", headers=bob), 409)
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert all(m["text"] != "Bob here" for m in listed["messages"])

    # Ada replies in her own; an admin may reply anywhere.
    ok = await client.post(f"{base}/messages", json={"text": "Ada here"}, headers=ada)
    assert ok.status == 201
    ok = await client.post(f"{base}/messages", json={"text": "Admin here"}, headers=root)
    assert ok.status == 201

    # An explicit takeover moves the claim and is recorded.
    taken = await client.post(f"{base}/claim", json={"takeover": True}, headers=bob)
    assert taken.status == 200
    body = await taken.json()
    assert (body["assigned_agent"], body["taken_over_from"]) == ("Bob", "Ada")
    async with db.session() as s:
        row = await s.get(Conversation, conv)
    assert [(t["from"], t["to"]) for t in row.meta["takeovers"]] == [("Ada", "Bob")]
    await _error(
        await client.post(f"{base}/messages", json={"text": "Ada again"}, headers=ada), 403
    )
    assert (await client.post(f"{base}/handback", headers=bob)).status == 200


async def test_admin_erases_a_conversation_and_its_learned_pair_leaves_the_index(
    make_client: Any,
) -> None:
    client = await make_client(policy="assist")
    svc = client.app[SERVICES]
    ada = _auth(await create_api_key(svc.db, "Ada", "agent"))
    root = _auth(await create_api_key(svc.db, "Root", "admin"))
    conv, auth = await start(client)
    question = "I bought the wrong size, how do I swap it for another one?"
    body = await say(client, conv, auth, question)
    assert body["reply"]["status"] == "pending_review"
    queue = await (await client.get("/api/v1/agent/queue", headers=ada)).json()
    sug = next(i for i in queue["items"] if i["conversation_id"] == conv)["suggestion"]
    answer = "Send us the order number and we will swap the size."
    resp = await client.post(
        f"/api/v1/agent/suggestions/{sug['id']}/edit", json={"text": answer}, headers=ada
    )
    assert resp.status == 200, await resp.text()
    async with svc.db.session() as s:
        pair = (await s.exec(select(KnowledgePair).where(KnowledgePair.answer == answer))).one()
    assert svc.runtime.models.index.search([question], k=1)[0][0].pair_id == pair.id

    exported = await client.post(
        "/api/v1/admin/privacy/export", json={"conversation_id": conv}, headers=root
    )
    data = await exported.json()
    assert data["conversations"][0]["messages"][0]["text"] == question
    assert [p["id"] for p in data["knowledge_pairs"]] == [pair.id]

    await _error(
        await client.post(
            "/api/v1/admin/privacy/erase", json={"conversation_id": conv}, headers=ada
        ),
        403,
    )
    await _error(
        await client.post("/api/v1/admin/privacy/erase", json={"email": "nope"}, headers=root),
        400,
    )
    erased = await client.post(
        "/api/v1/admin/privacy/erase", json={"conversation_id": conv}, headers=root
    )
    report = await erased.json()
    assert erased.status == 200, report
    assert report["deleted"]["conversations"] == 1
    assert report["knowledge_pair_ids"] == [pair.id] and report["index_pairs_masked"] == 1
    hits = svc.runtime.models.index.search([question], k=10)[0]
    assert pair.id not in {h.pair_id for h in hits}
    assert all(answer != h.answer for h in hits)
    await _error(await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth), 404)


async def test_the_server_that_runs_jobs_purges_on_its_timer(
    aiohttp_client: Any, home: Path, embedder: Any
) -> None:
    from bot.app import create_app
    from bot.settings import load_settings

    settings = load_settings(
        home=home, generation={"backend": "off"}, privacy={"retain_days": 30, "purge_every_s": 1}
    )
    app = create_app(settings, embedder=embedder, run_jobs=True)
    client = await aiohttp_client(app)
    db = client.app[SERVICES].db
    async with db.session() as s:
        old = Conversation(channel="widget", updated_at=utcnow() - timedelta(days=31))
        new = Conversation(channel="widget", updated_at=utcnow() - timedelta(days=29))
        s.add(old)
        s.add(new)
        await s.flush()
    for _ in range(100):
        async with db.session() as s:
            if await s.get(Conversation, old.id) is None:
                break
        await asyncio.sleep(0.05)
    async with db.session() as s:
        assert await s.get(Conversation, old.id) is None
        assert await s.get(Conversation, new.id) is not None


async def test_erased_pairs_announced_on_the_bus_are_masked_here(make_client: Any) -> None:
    from bot.events import MODELS, Event
    from bot.privacy import PAIRS_ERASED

    client = await make_client()
    svc = client.app[SERVICES]
    index = svc.runtime.models.index
    question = "How can I cancel my order?"
    top = index.search([question], k=1)[0][0].pair_id
    # As another process announces an erasure (bot/app.py follows the models topic).
    await svc.bus.publish(MODELS, Event(PAIRS_ERASED, {"pair_ids": [top]}))
    for _ in range(100):
        if top not in {h.pair_id for h in index.search([question], k=10)[0]}:
            break
        await asyncio.sleep(0.02)
    assert top not in {h.pair_id for h in index.search([question], k=10)[0]}


def test_cli_erase_masks_the_pair_in_the_stored_index(home: Path) -> None:
    from bot.settings import load_settings
    from bot.storage.db import Database
    from retrieval.store import IndexStore

    settings = load_settings(home=home)

    async def prepare() -> tuple[int, int]:
        from bot.storage.models import Message

        db = Database(settings.sqlalchemy_url)
        async with db.session() as s:
            pair = (await s.exec(select(KnowledgePair).order_by(KnowledgePair.id))).first()
            assert pair is not None, "the sample home has imported pairs"
            conv = Conversation(channel="widget")
            s.add(conv)
            await s.flush()
            reply = Message(conversation_id=conv.id, channel="widget", role="bot", text="x")
            s.add(reply)
            await s.flush()
            pair.source_ref = f"message:{reply.id}"  # as if mined from this conversation
            s.add(pair)
        await db.dispose()
        return conv.id, pair.id  # type: ignore[return-value]

    conv_id, pair_id = asyncio.run(prepare())
    assert IndexStore(home / "indexes").load_active(None).pair(pair_id) is not None
    result = CliRunner(env={"DESKBOT_HOME": str(home)}).invoke(
        cli, ["privacy", "erase", "--conversation", str(conv_id), "--yes"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["knowledge_pair_ids"] == [pair_id] and report["index_pairs_masked"] == 1
    assert "restarts" in report["notes"][0]  # no Redis: running servers learn it on restart
    reloaded = IndexStore(home / "indexes").load_active(None, verify=False)
    assert reloaded.pair(pair_id) is None


def test_the_worker_purges_when_servers_run_no_jobs(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from bot.storage.db import Database
    from tests.conftest import REPO_ROOT

    home = tmp_path / "home"
    db_url = f"sqlite+aiosqlite:///{home / 'deskbot.db'}"

    async def add(days: float) -> int:
        db = Database(db_url)
        await db.upgrade()
        async with db.session() as s:
            conv = Conversation(channel="widget", updated_at=utcnow() - timedelta(days=days))
            s.add(conv)
            await s.flush()
        await db.dispose()
        return conv.id  # type: ignore[return-value]

    async def exists(conv_id: int) -> bool:
        db = Database(db_url)
        async with db.session() as s:
            found = await s.get(Conversation, conv_id) is not None
        await db.dispose()
        return found

    old, new = asyncio.run(add(31)), asyncio.run(add(29))
    env = {
        **os.environ,
        "DESKBOT_HOME": str(home),
        "DESKBOT_PRIVACY__RETAIN_DAYS": "30",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--poll", "0.2"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(exists(old)) and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.2)
        assert not asyncio.run(exists(old))
        assert asyncio.run(exists(new))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
