"""Chat platforms through the real deskbot server: webhook → pipeline → outbox → platform."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlmodel import select

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.settings import load_settings
from bot.storage.models import Message, Role
from tests.connectors.fakes import CASES, FakePlatform, eventually, payload

TELEGRAM = next(c for c in CASES if c.connector == "telegram")


async def _server(aiohttp_client: Any, aiohttp_server: Any, home: Any, embedder: Any, policy: str):
    from bot.app import create_app

    fake = FakePlatform(TELEGRAM.ok)
    platform = await aiohttp_server(fake.app)
    options = TELEGRAM.options(str(platform.make_url("")).rstrip("/"))
    settings = load_settings(
        home=home,
        server={"policy": policy},
        generation={"backend": "off"},
        delivery={"backoff_base_s": 0.01, "backoff_max_s": 0.05, "poll_interval_s": 0.02},
        connectors={"channels": {"main": {"connector": "telegram", **options}}},
    )
    client = await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
    return client, fake, options


def _update(text: str, update_id: int) -> bytes:
    data = payload(TELEGRAM.payload_file)
    data["update_id"] = update_id
    data["message"]["message_id"] = update_id
    data["message"]["text"] = text
    return json.dumps(data).encode()


async def test_telegram_message_is_answered_once(aiohttp_client, aiohttp_server, home, embedder):
    client, fake, options = await _server(aiohttp_client, aiohttp_server, home, embedder, "hybrid")
    headers = {"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]}
    body = _update("How can I cancel my order?", 5001)
    for _ in range(2):  # Telegram retries when it does not get a 200 quickly
        resp = await client.post("/webhooks/telegram/main", data=body, headers=headers)
        assert resp.status == 200
    sent = await eventually(lambda: [r for r in fake.requests if r.path.endswith("/sendMessage")])
    db = client.app[SERVICES].db
    async with db.session() as s:
        query = select(Message).where(Message.channel == "telegram:main").order_by(Message.id)
        rows = (await s.exec(query)).all()
    assert [m.role for m in rows] == [Role.CUSTOMER, Role.BOT]
    assert sent[0].json()["text"] == rows[1].text
    assert str(sent[0].json()["chat_id"]) == TELEGRAM.expected_recipient
    assert len(fake.requests) == 1

    bad = await client.post(
        "/webhooks/telegram/main",
        data=_update("hi", 5002),
        headers={"X-Telegram-Bot-Api-Secret-Token": "no"},
    )
    assert bad.status == 401
    async with db.session() as s:
        stored = await s.exec(select(Message).where(Message.channel == "telegram:main"))
        assert len(stored.all()) == 2


async def test_approved_reply_leaves_through_the_same_platform(
    aiohttp_client, aiohttp_server, home, embedder
):
    client, fake, options = await _server(aiohttp_client, aiohttp_server, home, embedder, "assist")
    headers = {"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]}
    resp = await client.post(
        "/webhooks/telegram/main", data=_update("How can I cancel my order?", 6001), headers=headers
    )
    assert resp.status == 200
    key = await create_api_key(client.app[SERVICES].db, "Ada", "agent")
    auth = {"Authorization": f"Bearer {key}"}

    async def pending() -> Any:
        items = (await (await client.get("/api/v1/agent/queue", headers=auth)).json())["items"]
        return [i for i in items if i["kind"] == "suggestion"]

    item = (await eventually(pending))[0]
    assert fake.requests == []  # nothing reaches the customer before review
    approved = await client.post(
        f"/api/v1/agent/suggestions/{item['suggestion']['id']}/approve", headers=auth
    )
    assert approved.status == 200
    sent = await eventually(lambda: fake.requests)
    assert sent[0].json()["text"] == item["suggestion"]["draft"]


async def test_a_reply_is_stored_only_together_with_its_delivery(
    aiohttp_client, aiohttp_server, home, embedder
):
    """If queueing the platform delivery fails, the bot reply is not stored either."""
    from sqlalchemy import text

    client, fake, options = await _server(aiohttp_client, aiohttp_server, home, embedder, "auto")
    db = client.app[SERVICES].db
    assert db.is_sqlite
    async with db.session() as s:  # the outbox refuses every row, as a full disk would
        await s.exec(
            text(
                "CREATE TRIGGER outbox_full BEFORE INSERT ON outbox "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    headers = {"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]}
    resp = await client.post(
        "/webhooks/telegram/main", data=_update("How can I cancel my order?", 7001), headers=headers
    )
    assert resp.status == 200
    # The reply task has run (and failed); the server's pollers keep running meanwhile.
    replies = [t for t in client.app[SERVICES].tasks if t.get_name().startswith("reply-")]
    assert replies
    await asyncio.wait(replies, timeout=10)
    assert all(t.done() for t in replies)
    async with db.session() as s:
        rows = (await s.exec(select(Message).where(Message.channel == "telegram:main"))).all()
    assert [m.role for m in rows] == [Role.CUSTOMER]  # the customer's message is kept...
    assert rows[0].decision is None  # ...and the reply's transaction left no trace
    assert fake.requests == []


async def test_a_bot_reply_offering_quick_replies_reaches_telegram_as_a_keyboard(
    aiohttp_client, aiohttp_server, home, embedder
):
    """The server's own queueing (ChannelHub.queue) carries the reply's quick replies, and
    a press comes back into the same conversation as a customer message with the label."""
    from bot.storage.messages import get_or_create_conversation

    client, fake, options = await _server(aiohttp_client, aiohttp_server, home, embedder, "hybrid")
    svc = client.app[SERVICES]
    labels = ["Cancel an order", "Change an order", "Something else"]
    async with svc.db.session() as s:
        conv, _ = await get_or_create_conversation(s, "telegram:main", "1111111")
        for details in ({"quick_replies": labels}, {"quick_replies": "Cancel an order"}):
            reply = Message(
                conversation_id=conv.id,
                channel="telegram:main",
                role=Role.BOT,
                text="Did you mean:",
                details=details,
            )
            s.add(reply)
            await s.flush()
            assert await svc.connectors.queue(s, conv, reply)
    svc.connectors.wake()
    offered, malformed = await eventually(lambda: len(fake.requests) == 2 and fake.requests)
    keyboard = offered.json()["reply_markup"]["inline_keyboard"]
    assert [row[0]["text"] for row in keyboard] == labels
    assert "reply_markup" not in malformed.json()  # a malformed list is dropped, text kept

    press = payload("telegram/callback_query.json")
    press["callback_query"]["message"]["reply_markup"] = offered.json()["reply_markup"]
    press["callback_query"]["data"] = keyboard[0][0]["callback_data"]
    resp = await client.post(
        "/webhooks/telegram/main",
        data=json.dumps(press).encode(),
        headers={"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]},
    )
    assert resp.status == 200
    assert (await resp.json())["method"] == "answerCallbackQuery"
    async with svc.db.session() as s:
        query = select(Message).where(
            Message.channel == "telegram:main", Message.role == Role.CUSTOMER
        )
        [pressed] = (await s.exec(query)).all()
    assert pressed.conversation_id == conv.id
    assert pressed.text == "Cancel an order"
    assert pressed.external_id == "callback:4382bfdwdsb323b2d9"
    await eventually(lambda: len(fake.requests) == 3)  # the bot answers the press


async def test_platform_messages_have_the_widgets_length_and_rate_limits(
    aiohttp_client, aiohttp_server, home, embedder
):
    from bot.app import create_app

    fake = FakePlatform(TELEGRAM.ok)
    platform = await aiohttp_server(fake.app)
    options = TELEGRAM.options(str(platform.make_url("")).rstrip("/"))
    settings = load_settings(
        home=home,
        server={
            "policy": "hybrid",
            "max_message_chars": 30,
            "rate_limit_per_conversation": 0.001,
            "rate_limit_burst": 2,
        },
        generation={"backend": "off"},
        connectors={"channels": {"main": {"connector": "telegram", **options}}},
    )
    client = await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
    headers = {"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]}

    async def send(text: str, update_id: int) -> None:
        resp = await client.post(
            "/webhooks/telegram/main", data=_update(text, update_id), headers=headers
        )
        assert resp.status == 200  # acknowledged either way: a retry would be refused again

    await send("x" * 31, 7001)  # one past the length limit: refused, stored nowhere
    await send("How can I cancel my order?"[:30], 7002)
    await send("track my order please", 7003)
    await send("and one more message", 7004)  # one past the conversation's burst of 2
    db = client.app[SERVICES].db
    async with db.session() as s:
        query = (
            select(Message)
            .where(Message.channel == "telegram:main", Message.role == Role.CUSTOMER)
            .order_by(Message.id)
        )
        stored = [m.external_id.rsplit(":", 1)[1] for m in (await s.exec(query)).all()]
    assert stored == ["7002", "7003"]
