"""Scrub before sharing, end to end through real HTTP: an agent's approved reply holding a
customer's email, card and address reaches that customer as written, but neither the index nor
another customer's conversation ever holds them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlmodel import select

from bot.api.common import SERVICES
from bot.storage.models import KnowledgePair, Message, Suggestion
from tests.bot.test_server import keys, read_events, say, start

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
ADDRESS = "221 Baker Street"
PERSONAL = (EMAIL, CARD, ADDRESS, "4242424242424242")
QUESTION = (
    f"My refund never arrived. I paid with card {CARD}, my email is {EMAIL} and I live at "
    f"{ADDRESS}, London"
)
REPLY = (
    f"I've refunded the card {CARD} today and sent the receipt to {EMAIL}; "
    f"the replacement goes to {ADDRESS} tomorrow."
)


def leaks(text: str | None) -> list[str]:
    return [value for value in PERSONAL if text and value in text]


async def test_approved_reply_is_scrubbed_before_it_is_shared(make_client: Any) -> None:
    client = await make_client(policy="assist")
    svc = client.app[SERVICES]
    agent, _ = await keys(client)

    conv_a, auth_a = await start(client)
    asked = await say(client, conv_a, auth_a, QUESTION)
    assert asked["reply"]["status"] == "pending_review"
    queue = await (await client.get("/api/v1/agent/queue", headers=agent)).json()
    sug = next(i for i in queue["items"] if i["conversation_id"] == conv_a)["suggestion"]
    resp = await client.post(
        f"/api/v1/agent/suggestions/{sug['id']}/edit", json={"text": REPLY}, headers=agent
    )
    assert resp.status == 200, await resp.text()
    # The customer it was written for gets it as written.
    listed = await client.get(f"/api/v1/conversations/{conv_a}/messages", headers=auth_a)
    assert (await listed.json())["messages"][-1]["text"] == REPLY

    async with svc.db.session() as s:
        pair = (await s.exec(select(KnowledgePair).where(KnowledgePair.source == "agent"))).one()
    assert leaks(pair.question) == [] and leaks(pair.answer) == []
    assert pair.answer == (
        "I've refunded the card {{Card Number}} today and sent the receipt to {{Email}}; "
        "the replacement goes to {{Address}} tomorrow."
    )
    assert "{{Email}}" in pair.question and "{{Card Number}}" in pair.question

    index = svc.runtime.models.index
    for value in (*PERSONAL, QUESTION, REPLY):
        for hit in index.search([value], k=10)[0]:
            assert leaks(hit.question) == [] and leaks(hit.answer) == [], (value, hit)
    assert index.search([QUESTION], k=1)[0][0].pair_id == pair.id  # it is there, scrubbed

    # Another customer asks the same; replies go out automatically now.
    svc.settings.server.policy = "auto"
    conv_b, auth_b = await start(client)
    token = auth_b["Authorization"][7:]
    sse = await client.get(f"/api/v1/conversations/{conv_b}/events?token={token}")
    events: list[tuple[str, dict[str, Any]]] = []
    reader = asyncio.create_task(read_events(sse, events))
    body = await say(client, conv_b, auth_b, "My refund never arrived. I paid with my card")
    for _ in range(50):
        if any(e == "message" and d["id"] == body["reply"]["id"] for e, d in events):
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    sse.close()

    async with svc.db.session() as s:
        customer_b = await s.get(Message, body["message"]["id"])
        rows_b = (await s.exec(select(Message).where(Message.conversation_id == conv_b))).all()
        suggestions_b = (
            await s.exec(select(Suggestion).where(Suggestion.conversation_id == conv_b))
        ).all()
    sources = customer_b.details["sources"]
    assert pair.id in [src["pair_id"] for src in sources]  # the agent's answer was retrieved
    seen_by_b = [
        json.dumps(body),
        json.dumps(events),
        json.dumps(sources),
        *(m.text for m in rows_b),
        *(json.dumps([x.draft, x.sources]) for x in suggestions_b),
    ]
    assert [leaks(text) for text in seen_by_b] == [[] for _ in seen_by_b]
    assert body["reply"]["text"] and "{{" not in body["reply"]["text"]
