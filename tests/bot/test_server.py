"""The server end to end through real HTTP: widget, agents, admins and every rule."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.dialogue.titles import title
from bot.generation.placeholders import fill
from bot.storage.models import Conversation, Feedback, KnowledgePair, Message
from tests.conftest import build_index

CANCEL = "I want to cancel the order I made yesterday"  # close to many sample questions
HUMAN = "can I speak to a real person?"  # a sample human_agent question


async def start(client: Any) -> tuple[int, dict[str, str]]:
    resp = await client.post("/api/v1/conversations", json={})
    assert resp.status == 201
    body = await resp.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


async def say(client: Any, conv: int, auth: dict[str, str], text: str) -> dict[str, Any]:
    resp = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": text}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def keys(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    db = client.app[SERVICES].db
    agent = await create_api_key(db, "Ada", "agent")
    admin = await create_api_key(db, "Root", "admin")
    return {"Authorization": f"Bearer {agent}"}, {"Authorization": f"Bearer {admin}"}


async def read_events(sse: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Append each server-sent event of ``sse`` to ``events`` as (type, data)."""
    event = None
    async for raw in sse.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            events.append((event, json.loads(line[6:])))


async def open_stream(client: Any, conv: int, auth: dict[str, str]) -> Any:
    """The conversation's event stream, opened with a single-use ticket (no token in the URL)."""
    resp = await client.post(f"/api/v1/conversations/{conv}/events/ticket", headers=auth)
    assert resp.status == 201, await resp.text()
    ticket = (await resp.json())["ticket"]
    return await client.get(f"/api/v1/conversations/{conv}/events?ticket={ticket}")


async def say_and_watch(
    client: Any, text: str
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Start a conversation, send ``text`` and return the reply with the events streamed for it."""
    conv, auth = await start(client)
    sse = await open_stream(client, conv, auth)
    events: list[tuple[str, dict[str, Any]]] = []
    reader = asyncio.create_task(read_events(sse, events))
    reply = (await say(client, conv, auth, text))["reply"]
    for _ in range(50):
        if any(e == "message" and d["id"] == reply["id"] for e, d in events):
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    sse.close()
    return reply, events


async def count(client: Any, model: type) -> int:
    async with client.app[SERVICES].db.session() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_sample_question_is_answered_automatically(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    body = await say(client, conv, auth, "How can I cancel order ORD-1234?")
    reply = body["reply"]
    assert reply["status"] == "sent" and reply["action"] == "answer"
    assert reply["intent"] == "cancel_order"
    assert "cancel" in reply["text"].lower() and "{{" not in reply["text"]
    assert "ORD-1234" in reply["text"]

    resp = await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
    listed = (await resp.json())["messages"]
    assert [m["role"] for m in listed] == ["customer", "bot"]
    assert listed[1]["text"] == reply["text"]
    after = await client.get(
        f"/api/v1/conversations/{conv}/messages?after={listed[0]['id']}", headers=auth
    )
    assert [m["id"] for m in (await after.json())["messages"]] == [listed[1]["id"]]

    async with client.app[SERVICES].db.session() as s:
        stored = await s.get(Message, body["message"]["id"])
    assert stored.decision == "send" and stored.intent == "cancel_order"
    assert stored.details["sources"][0]["intent"] == "cancel_order"
    assert stored.model_versions["index"]

    fb = await client.post(
        f"/api/v1/messages/{reply['id']}/feedback", json={"rating": "up"}, headers=auth
    )
    assert fb.status == 201
    assert await count(client, Feedback) == 1


async def test_suggestion_is_approved_and_reaches_customer_and_index(make_client: Any) -> None:
    client = await make_client(policy="assist")
    agent, _ = await keys(client)
    conv, auth = await start(client)
    question = "I bought the wrong size, how do I swap it for another one?"

    events: list[tuple[str, dict[str, Any]]] = []
    sse = await open_stream(client, conv, auth)
    assert sse.status == 200

    reader = asyncio.create_task(read_events(sse, events))
    body = await say(client, conv, auth, question)
    assert body["reply"]["status"] == "pending_review"
    assert body["reply"]["text"] is None

    queue = await (await client.get("/api/v1/agent/queue", headers=agent)).json()
    item = next(i for i in queue["items"] if i["conversation_id"] == conv)
    sug = item["suggestion"]
    assert sug["sources"] and sug["draft"] and "{{" not in sug["draft"]

    resp = await client.post(
        f"/api/v1/agent/suggestions/{sug['id']}/edit",
        json={
            "text": "Sure! Reply with your order number and we'll send the right size.",
            "intent": "change_order",
        },
        headers=agent,
    )
    assert resp.status == 200, await resp.text()
    sent = (await resp.json())["message"]

    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert listed["messages"][-1]["text"] == sent["text"]
    for _ in range(50):
        if any(e == "message" and d["id"] == sent["id"] for e, d in events):
            break
        await asyncio.sleep(0.05)
    assert any(e == "message" and d["id"] == sent["id"] for e, d in events), events
    reader.cancel()
    sse.close()

    async with client.app[SERVICES].db.session() as s:
        pair = (await s.exec(select(KnowledgePair).where(KnowledgePair.source == "agent"))).one()
        customer = await s.get(Message, body["message"]["id"])
    assert (pair.question, pair.answer, pair.intent) == (question, sent["text"], "change_order")
    assert customer.corrected_intent == "change_order"
    hits = client.app[SERVICES].runtime.models.index.search([question], k=1)[0]
    assert hits[0].pair_id == pair.id

    again = await client.post(f"/api/v1/agent/suggestions/{sug['id']}/approve", headers=agent)
    assert again.status == 409


async def test_asking_for_a_human_hands_off(make_client: Any) -> None:
    client = await make_client()
    agent, _ = await keys(client)
    conv, auth = await start(client)
    body = await say(client, conv, auth, HUMAN)
    assert body["reply"]["status"] == "handoff"
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert listed["status"] == "handoff"
    assert listed["messages"][-1]["role"] == "system"

    queue = await (await client.get("/api/v1/agent/queue", headers=agent)).json()
    assert any(i["kind"] == "handoff" and i["conversation_id"] == conv for i in queue["items"])

    # While an agent owns the conversation the bot stays quiet.
    body = await say(client, conv, auth, "hello? anyone?")
    assert body["reply"]["status"] == "handoff" and body["reply"]["text"] is None
    resp = await client.post(
        f"/api/v1/agent/conversations/{conv}/messages",
        json={"text": "Hi, Ada here."},
        headers=agent,
    )
    assert resp.status == 201
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert listed["messages"][-1]["text"] == "Hi, Ada here."
    back = await client.post(f"/api/v1/agent/conversations/{conv}/handback", headers=agent)
    assert (await back.json())["status"] == "bot"
    body = await say(client, conv, auth, "How can I cancel my order?")
    assert body["reply"]["status"] == "sent"


async def test_bad_requests_are_refused_and_store_nothing(make_client: Any) -> None:
    client = await make_client(max_message_chars=50)
    agent, admin = await keys(client)
    conv, auth = await start(client)
    other, other_auth = await start(client)
    url = f"/api/v1/conversations/{conv}/messages"
    before = await count(client, Message)

    cases = [
        (client.post(url, json={"text": "x" * 51}, headers=auth), 400, "limit is 50"),
        (client.post(url, data=b"{not json", headers=auth), 400, "invalid JSON"),
        (client.post(url, json={"text": 42}, headers=auth), 400, "must be a string"),
        (client.post(url, json=["text"], headers=auth), 400, "must be an object"),
        (client.post(url, json={"text": "   "}, headers=auth), 400, "must not be empty"),
        (client.post(url, json={"text": "hi"}), 401, "Bearer"),
        (client.post(url, json={"text": "hi"}, headers=other_auth), 404, "no such conversation"),
        (client.get(f"/api/v1/conversations/{conv}/messages", headers=other_auth), 404, "no such"),
        (client.get("/api/v1/conversations/abc/messages", headers=auth), 404, "no such"),
        (client.get("/api/v1/agent/queue", headers=auth), 403, "API key"),
        (client.get("/api/v1/admin/models", headers=agent), 403, "admin"),
        (
            client.get("/api/v1/admin/models", headers={"Authorization": "Bearer dsk_x_y"}),
            401,
            "unknown",
        ),
        (
            client.post("/api/v1/admin/training-runs", json={"kind": "nope"}, headers=admin),
            400,
            "kind",
        ),
        (client.get("/api/v1/nowhere"), 404, "Not Found"),
    ]
    for request, status, text in cases:
        resp = await request
        body = await resp.json()
        assert resp.status == status, (status, body)
        assert text in body["error"]["message"], body
        assert set(body["error"]) >= {"code", "message"}
    assert await count(client, Message) == before
    assert other != conv


async def test_rate_limit_per_conversation(make_client: Any) -> None:
    client = await make_client(rate_limit_per_conversation=0.01, rate_limit_burst=2)
    conv, auth = await start(client)
    await say(client, conv, auth, "How can I cancel my order?")
    await say(client, conv, auth, "How can I cancel my order?")
    before = await count(client, Message)
    resp = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "again"}, headers=auth
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert await count(client, Message) == before


async def test_cors_only_for_configured_origins(make_client: Any) -> None:
    client = await make_client(cors_origins=["https://shop.example"])
    ok = await client.options(
        "/api/v1/conversations",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    bad = await client.options(
        "/api/v1/conversations",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert bad.status == 403
    resp = await client.post(
        "/api/v1/conversations", json={}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_index_activation_during_traffic_loses_no_request(
    make_client: Any, embedder: Any
) -> None:
    client = await make_client(rate_limit_per_ip=1000)
    _, admin = await keys(client)
    svc = client.app[SERVICES]
    home = svc.settings.home
    new_version = await build_index(home, svc.db, embedder)  # registered and active in the DB
    old_version = svc.runtime.models.versions["index"]
    assert new_version != old_version

    async def customer(i: int) -> str:
        conv, auth = await start(client)
        body = await say(client, conv, auth, "How can I cancel my order?")
        return body["reply"]["status"]

    tasks = [asyncio.create_task(customer(i)) for i in range(24)]
    await asyncio.sleep(0.05)
    resp = await client.post(f"/api/v1/admin/models/index/{new_version}/activate", headers=admin)
    assert resp.status == 200, await resp.text()
    statuses = await asyncio.gather(*tasks)
    assert statuses == ["sent"] * 24
    assert svc.runtime.models.versions["index"] == new_version
    rollback = await client.post(
        f"/api/v1/admin/models/index/{old_version}/activate", headers=admin
    )
    assert rollback.status == 200
    assert svc.runtime.models.versions["index"] == old_version


async def test_admin_lists_models_and_metrics(make_client: Any) -> None:
    client = await make_client()
    _, admin = await keys(client)
    conv, auth = await start(client)
    await say(client, conv, auth, "How can I cancel my order?")
    await say(client, conv, auth, HUMAN)
    models = await (await client.get("/api/v1/admin/models", headers=admin)).json()
    assert [m["status"] for m in models["models"] if m["kind"] == "index"] == ["active"]
    metrics = await (await client.get("/api/v1/admin/metrics", headers=admin)).json()
    summary = metrics["summary"]
    assert summary["messages"] == 2
    assert summary["automation_rate"] == 0.5 and summary["handoff_rate"] == 0.5
    assert summary["latency_ms"]["p50"] > 0
    assert metrics["daily"][0]["messages"] == 2
    uncertain = await (await client.get("/api/v1/admin/uncertain", headers=admin)).json()
    assert len(uncertain["messages"]) == 2


async def test_operations_endpoints(make_client: Any) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200 and body["ready"] and body["models"]["index"]
    conv, auth = await start(client)
    await say(client, conv, auth, "How can I cancel my order?")
    text = await (await client.get("/metrics")).text()
    assert 'deskbot_reply_decisions_total{action="sent"}' in text
    assert "deskbot_http_request_seconds_bucket" in text
    spec = await (await client.get("/api/v1/openapi.json")).json()
    for route in client.app.router.routes():
        path = route.resource.get_info().get("path") or route.resource.get_info().get("formatter")
        if route.method in ("GET", "POST") and path and not path.startswith("/static"):
            assert route.method.lower() in spec["paths"][path], path


@pytest.mark.parametrize("rating", [0, 6, "meh", None])
async def test_feedback_validation(make_client: Any, rating: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    body = await say(client, conv, auth, "How can I cancel my order?")
    resp = await client.post(
        f"/api/v1/messages/{body['reply']['id']}/feedback", json={"rating": rating}, headers=auth
    )
    assert resp.status == 400
    assert await count(client, Feedback) == 0


async def drafting_client(aiohttp_client: Any, home: Any, embedder: Any) -> Any:
    """A server under policy auto whose bundled generator's drafts are sent."""
    from bot.app import create_app
    from bot.settings import load_settings

    settings = load_settings(
        home=home,
        server={"policy": "auto"},
        generation={"backend": "local", "send_base_drafts": True},
    )
    return await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))


@pytest.mark.slow
async def test_generated_reply_streams_and_is_grounded(
    aiohttp_client: Any, home: Any, embedder: Any
) -> None:
    """The bundled SmolLM2 writes the reply; its tokens stream to the widget as they come."""
    client = await drafting_client(aiohttp_client, home, embedder)
    reply, events = await say_and_watch(client, "How can I cancel order ORD-1234?")
    assert reply["status"] == "sent"
    assert reply["text"].strip() and "{{" not in reply["text"]
    pieces = [d["text"] for e, d in events if e == "token"]
    assert len(pieces) > 3  # streamed piece by piece, before the final message
    retracted = any(e == "retract" for e, _ in events)
    async with client.app[SERVICES].db.session() as s:
        stored = await s.get(Message, reply["id"])
    assert stored.model_versions["generator"]
    grounding = stored.details["grounding"]
    assert 0.0 <= grounding <= 1.0
    # An ungrounded draft is never what the customer gets: the best retrieved answer is.
    if retracted:
        assert stored.details["decision_reason"].endswith("best retrieved answer")


@pytest.mark.slow
async def test_base_model_drafts_are_not_sent_by_default(
    aiohttp_client: Any, home: Any, embedder: Any
) -> None:
    """Without a fine-tuned generator a sure message gets the best retrieved answer, unstreamed."""
    from bot.app import create_app
    from bot.settings import load_settings

    settings = load_settings(home=home, server={"policy": "auto"}, generation={"backend": "local"})
    client = await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
    assert client.app[SERVICES].runtime.models.generator.bundled_base
    question = "How can I cancel order ORD-1234?"
    reply, events = await say_and_watch(client, question)
    assert reply["status"] == "sent"
    assert not [e for e, _ in events if e in ("token", "retract")]
    async with client.app[SERVICES].db.session() as s:
        stored = await s.get(Message, reply["id"])
    assert stored.details["grounding"] == 1.0
    best = stored.details["sources"][0]["answer"]
    assert reply["text"] == fill(best, [("customer", question)])[0]


async def test_event_stream_outlives_idle_pings(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.api.sse

    monkeypatch.setattr(bot.api.sse, "PING_SECONDS", 0.1)
    client = await make_client()
    conv, auth = await start(client)
    sse = await open_stream(client, conv, auth)
    events: list[tuple[str, dict[str, Any]]] = []
    reader = asyncio.create_task(read_events(sse, events))
    await asyncio.sleep(0.5)  # several pings with nothing to say
    body = await say(client, conv, auth, "How can I cancel my order?")
    for _ in range(50):
        if any(e == "message" and d["id"] == body["reply"]["id"] for e, d in events):
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    sse.close()
    assert any(e == "message" and d["id"] == body["reply"]["id"] for e, d in events), events


async def test_reply_leads_with_the_answer_the_retrieved_ones_agree_on(make_client: Any) -> None:
    from retrieval.consensus import consensus_order
    from retrieval.hit import Hit

    client = await make_client()
    questions = [
        "How can I cancel my order?",
        "where is my refund",
        "I need to change my shipping address",
        "what payment methods do you accept",
        "how do I reset my password",
        "I want to track my order",
        "can I get an invoice for my purchase",
        "delete my account please",
    ]
    differs = 0
    for question in questions:
        conv, auth = await start(client)
        body = await say(client, conv, auth, question)
        async with client.app[SERVICES].db.session() as s:
            stored = await s.get(Message, body["message"]["id"])
        sources = stored.details["sources"]
        hits = [
            Hit(x["pair_id"], x["score"], x["question"], x["answer"], x["intent"]) for x in sources
        ]
        assert len(hits) == 5
        assert tuple(hits) == consensus_order(hits)  # stored in the order used
        if body["reply"]["action"] == "answer":
            assert body["reply"]["text"] == fill(hits[0].answer, [("customer", question)])[0]
        differs += hits[0].score < max(h.score for h in hits)
    # The choice matters: for some of these the nearest question's answer is not the one sent.
    assert differs >= 2


@pytest.mark.slow
async def test_ambiguous_message_gets_quick_replies_without_a_draft(
    aiohttp_client: Any, home: Any, embedder: Any
) -> None:
    """An unsure intent is clarified with the likely intents as quick replies: no draft streams."""
    client = await drafting_client(aiohttp_client, home, embedder)
    text = "I have a question about my order"
    reply, events = await say_and_watch(client, text)
    async with client.app[SERVICES].db.session() as s:
        stored = await s.get(Message, reply["id"])
    assert stored.verdict == "ambiguous"  # the case under test, not a confident one
    assert reply["status"] == "sent" and reply["action"] == "clarify"
    assert not [e for e, _ in events if e in ("token", "retract")]
    assert 3 <= len(reply["quick_replies"]) <= 5
    assert reply["quick_replies"][-1] == "Something else"
    async with client.app[SERVICES].db.session() as s:
        conv = await s.get(Conversation, stored.conversation_id)
    assert [title(i) for i in conv.state["clarify"]["options"]] == reply["quick_replies"][:-1]
