"""The knowledge-gap admin routes through real HTTP: list, open, accept, merge, dismiss, mine."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.jobs import job_command
from bot.storage.models import KnowledgePair, Message, TrainingRun
from tests.bot.gap_fixtures import GIFT_ANSWER, stored_topics


async def _keys(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    db = client.app[SERVICES].db
    agent = await create_api_key(db, "Ada", "agent")
    admin = await create_api_key(db, "Root", "admin")
    return {"Authorization": f"Bearer {agent}"}, {"Authorization": f"Bearer {admin}"}


async def _runs(client: Any) -> list[TrainingRun]:
    async with client.app[SERVICES].db.session() as s:
        return list((await s.exec(select(TrainingRun).order_by(col(TrainingRun.id)))).all())


async def test_gap_routes(make_client: Any) -> None:
    client = await make_client()
    agent, admin = await _keys(client)
    db = client.app[SERVICES].db
    topics = await stored_topics(db)
    gift, crypto = topics["gift"], topics["crypto"]

    assert (await client.get("/api/v1/admin/gaps", headers=agent)).status == 403
    listing = await (await client.get("/api/v1/admin/gaps", headers=admin)).json()
    assert [t["name"] for t in listing["topics"]] == ["gift card", "buy bitcoin"]
    assert listing["topics"][0]["trend"] == 5.0  # 12 against 2 before
    assert [t["examples_needed"] for t in listing["topics"]] == [0, 7]
    assert "cancel_order" in listing["intents"] and listing["last_run"] is None
    bad = await client.get("/api/v1/admin/gaps?status=nope", headers=admin)
    assert bad.status == 400 and "status" in (await bad.json())["error"]["message"]

    detail = await (await client.get(f"/api/v1/admin/gaps/{gift.id}", headers=admin)).json()
    assert len(detail["messages"]) == 12 and detail["answers"][0]["text"] == GIFT_ANSWER
    assert (await client.get("/api/v1/admin/gaps/999999", headers=admin)).status == 404

    # Refusals change nothing.
    url = f"/api/v1/admin/gaps/{crypto.id}/accept"
    few = await client.post(url, json={"intent": "crypto", "answer": "No."}, headers=admin)
    assert few.status == 400 and "7 more needed" in (await few.json())["error"]["message"]
    url = f"/api/v1/admin/gaps/{gift.id}/accept"
    for body in (
        {"intent": "cancel_order", "answer": "x"},  # a known intent: merge instead
        {"intent": "gift cards!", "answer": "x"},
        {"intent": "gift_cards", "answer": "  "},
        {"intent": "gift_cards"},
    ):
        resp = await client.post(url, json=body, headers=admin)
        assert resp.status == 400, body
        assert set((await resp.json())["error"]) == {"code", "message"}
    assert await _runs(client) == []

    index = client.app[SERVICES].runtime.models.index
    assert "gift_cards" not in index.intents()
    resp = await client.post(
        url, json={"intent": "gift_cards", "answer": GIFT_ANSWER}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["topic"]["status"] == "accepted" and done["pairs"] == 12
    assert done["run"]["kind"] == "retrain" and done["run"]["status"] == "queued"
    async with db.session() as s:
        labels = (
            await s.exec(
                select(Message.corrected_intent).where(col(Message.id).in_(gift.message_ids))
            )
        ).all()
        pairs = (
            await s.exec(select(KnowledgePair).where(KnowledgePair.intent == "gift_cards"))
        ).all()
    assert set(labels) == {"gift_cards"} and len(pairs) == 12
    again = await client.post(
        url, json={"intent": "gift_cards", "answer": GIFT_ANSWER}, headers=admin
    )
    assert again.status == 409

    # The accepted answer is in the live index at once, under the new intent.
    assert client.app[SERVICES].runtime.models.index.intents().get("gift_cards") == 12

    merge = f"/api/v1/admin/gaps/{crypto.id}/merge"
    unknown = await client.post(merge, json={"intent": "bitcoin"}, headers=admin)
    assert unknown.status == 400
    merged = await client.post(merge, json={"intent": "cancel_order"}, headers=admin)
    assert merged.status == 200 and (await merged.json())["topic"]["status"] == "merged"
    async with db.session() as s:
        labels = (
            await s.exec(
                select(Message.corrected_intent).where(col(Message.id).in_(crypto.message_ids))
            )
        ).all()
    assert set(labels) == {"cancel_order"}
    dismissed = await client.post(f"/api/v1/admin/gaps/{crypto.id}/dismiss", headers=admin)
    assert dismissed.status == 409

    accepted = await (await client.get("/api/v1/admin/gaps?status=accepted", headers=admin)).json()
    assert [t["intent"] for t in accepted["topics"]] == ["gift_cards"]
    assert "gift_cards" in accepted["intents"]

    mined = await client.post(
        "/api/v1/admin/gaps/mine", json={"since": "2026-01-01"}, headers=admin
    )
    assert mined.status == 202
    run = (await _runs(client))[-1]
    assert run.kind == "gaps" and job_command(run.kind, run.params)[-2:] == [
        "--since",
        "2026-01-01",
    ]
    bad_since = await client.post(
        "/api/v1/admin/gaps/mine", json={"since": "yesterday"}, headers=admin
    )
    assert bad_since.status == 400
    listing = await (await client.get("/api/v1/admin/gaps", headers=admin)).json()
    assert listing["last_run"]["id"] == run.id
