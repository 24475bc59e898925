"""Telegram beyond the shared flow: edits, a blocked bot, inline keyboards and their
presses, and the set-webhook command."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.cli import cli
from connectors.telegram.connector import CALLBACK_DATA_BYTES
from tests.connectors.fakes import FakePlatform, eventually, payload
from tests.connectors.harness import (
    CASE,
    LABELS,
    Harness,
    answered,
    customer_messages,
    offer,
    outbox_status,
    post_json,
    post_payload,
)


async def test_telegram_ignores_edits(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    assert (await post_payload(h, payload("telegram/edited_message.json"))).status == 200
    assert await customer_messages(h.db) == 0


async def test_telegram_blocked_bot_is_a_permanent_failure(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    h.fake.fail_next(
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    assert (await h.post_valid()).status == 200
    rows = await eventually(lambda: outbox_status(h, "failed"))
    assert "blocked" in rows[0].last_error and rows[0].attempts == 1


async def test_telegram_offers_an_inline_keyboard_and_a_press_is_the_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"], quick_replies=LABELS)
    sent = (await offer(h)).json()
    assert sent["text"] == "echo: Where is my order?"
    assert sent["reply_markup"] == {
        "inline_keyboard": [[{"text": label, "callback_data": label}] for label in LABELS]
    }

    press = payload("telegram/callback_query.json")
    query = press["callback_query"]
    query["message"]["reply_markup"] = sent["reply_markup"]
    query["data"] = sent["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
    resp = await post_json(h, press)
    assert resp.status == 200
    # The 200 itself answers the callback query, so the client's spinner stops.
    assert await resp.json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": "4382bfdwdsb323b2d9",
    }
    first, pressed = h.inbound_calls
    assert pressed.text == "Change an order"
    assert pressed.external_message_id == "callback:4382bfdwdsb323b2d9"
    assert pressed.external_conversation_id == first.external_conversation_id == "1111111"
    assert pressed.customer_name == "Ana Test"
    reply = (await answered(h, 2)).json()
    assert reply["text"] == "echo: Change an order"
    assert str(reply["chat_id"]) == "1111111"

    # Telegram redelivers an update it got no 2xx for: stored once, answered again.
    again = await post_json(h, press)
    assert (await again.json())["method"] == "answerCallbackQuery"
    assert await customer_messages(h.db) == 2


async def test_telegram_quoting_replies_quotes_messages_but_not_presses(
    make_harness: Any,
) -> None:
    case = CASE["telegram"]
    quoting = replace(case, options=lambda base: {**case.options(base), "quote_replies": True})
    h: Harness = await make_harness(quoting, quick_replies=LABELS)
    sent = (await offer(h)).json()
    assert sent["reply_parameters"]["message_id"] == 1365
    press = payload("telegram/callback_query.json")
    press["callback_query"]["message"]["reply_markup"] = sent["reply_markup"]
    assert (await post_json(h, press)).status == 200
    reply = (await answered(h, 2)).json()
    assert reply["text"] == "echo: Change an order"
    assert "reply_parameters" not in reply


async def test_telegram_labels_over_64_bytes_travel_as_their_number(make_harness: Any) -> None:
    long = "Отменить заказ и вернуть деньги на карту"  # 40 characters, 75 bytes
    h: Harness = await make_harness(CASE["telegram"], quick_replies=[long, "Something else"])
    sent = (await offer(h)).json()
    buttons = [row[0] for row in sent["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == [long, "Something else"]
    assert [b["callback_data"] for b in buttons] == ["1", "Something else"]
    assert all(len(b["callback_data"].encode()) <= CALLBACK_DATA_BYTES for b in buttons)

    press = payload("telegram/callback_query.json")
    press["callback_query"]["message"]["reply_markup"] = sent["reply_markup"]
    press["callback_query"]["data"] = "1"
    assert (await post_json(h, press)).status == 200
    assert h.inbound_calls[-1].text == long  # read back from the keyboard

    # A message too old for Telegram to include: the number, which the bot also understands.
    stale = payload("telegram/callback_query.json")
    stale["update_id"] += 1
    stale["callback_query"]["id"] = "4382bfdwdsb323b2e0"
    del stale["callback_query"]["message"]
    stale["callback_query"]["data"] = "1"
    assert (await post_json(h, stale)).status == 200
    assert h.inbound_calls[-1].text == "1"
    assert h.inbound_calls[-1].external_conversation_id == "1111111"  # the sender's chat


async def test_telegram_plain_replies_have_no_keyboard_and_a_malformed_press_is_400(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    sent = (await offer(h)).json()
    assert "reply_markup" not in sent
    press = payload("telegram/callback_query.json")
    del press["callback_query"]["from"]
    resp = await post_json(h, press)
    assert resp.status == 400
    assert "callback_query" in (await resp.json())["error"]["message"]
    assert await customer_messages(h.db) == 1


async def test_telegram_set_webhook_registers_url_and_secret(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    fake = FakePlatform(
        lambda rec: (200, {"ok": True, "result": True, "description": "Webhook was set"})
    )
    server = await aiohttp_server(fake.app)
    config = tmp_path / "deskbot.toml"
    config.write_text(
        '[connectors.channels.main]\nconnector = "telegram"\n'
        'bot_token = "123456:ABC-DEF-0123456789"\nsecret_token = "tg_secret-1-0123456789"\n'
        f'api_base = "{str(server.make_url("")).rstrip("/")}"\n'
    )
    runner = CliRunner()
    args = [
        "--config",
        str(config),
        "telegram",
        "set-webhook",
        "--channel",
        "main",
        "--url",
        "https://bot.example.com",
    ]
    result = await asyncio.to_thread(runner.invoke, cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "https://bot.example.com/webhooks/telegram/main" in result.output
    [call] = fake.requests
    assert call.path == "/bot123456:ABC-DEF-0123456789/setWebhook"
    assert call.json()["url"] == "https://bot.example.com/webhooks/telegram/main"
    assert call.json()["secret_token"] == "tg_secret-1-0123456789"
    assert "callback_query" in call.json()["allowed_updates"]  # quick-reply presses

    fake.fail_next(
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: bad webhook: HTTPS url must be provided",
        },
    )
    result = await asyncio.to_thread(runner.invoke, cli, args)
    assert result.exit_code != 0
    assert "bad webhook" in str(result.exception)
    result = await asyncio.to_thread(runner.invoke, cli, [*args[:-1], "http://bot.example.com"])
    assert "https" in str(result.exception)
    assert len(fake.requests) == 2  # the http URL was refused before calling Telegram
