"""Platform behaviours beyond the shared flow: handshakes, ignored events, threads, vectors."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from connector_fakes import CASES, eventually, payload
from connector_harness import Harness, customer_messages, outbox_rows

from bot.errors import AuthError
from connectors.slack.signature import slack_signature, verify_slack
from connectors.twilio.signature import twilio_signature, verify_twilio
from connectors.webhook.signature import sign, verify_signature

CASE = {c.connector: c for c in CASES}


async def _post_payload(h: Harness, data: dict[str, Any], **extra: str) -> Any:
    body = urlencode(data).encode() if h.case.form else json.dumps(data).encode()
    return await h.post(body, {**h.case.sign(body, h.url), **extra})


# Documented test vectors: an independent check of each signature scheme.


def test_slack_signature_matches_slacks_documented_example() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
        b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body) == expected
    # ...and the 5-minute window refuses that same, correctly signed, 2018 request.
    headers = {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}
    with pytest.raises(AuthError, match="replay window"):
        verify_slack("8f742231b10e8888abcd99yyyzzz85a5", headers, body)


def test_twilio_signature_matches_twilios_documented_example() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    verify_twilio("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    # Twilio may sign with the default port spelled out; both forms verify.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    verify_twilio("12345", with_port, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    with pytest.raises(AuthError):
        verify_twilio(
            "12345", url, [*params[:-1], ("To", "+18005551213")], "GvWf1cFY/Q7PnoempGyD5oXAezc="
        )


def test_webhook_signature_accepts_any_listed_v1_and_refuses_replays() -> None:
    body = b'{"text": "hi"}'
    good = sign("s" * 16, body)
    ts = good.split(",")[0]
    verify_signature("s" * 16, f"{ts},v1={'0' * 64},{good.split(',')[1]}", body, window_s=300)
    with pytest.raises(AuthError, match="replay window"):
        verify_signature(
            "s" * 16, sign("s" * 16, body, timestamp=int(time.time()) - 301), body, window_s=300
        )
    with pytest.raises(AuthError, match="missing"):
        verify_signature("s" * 16, None, body, window_s=300)


# Slack


async def test_slack_url_verification_echoes_the_challenge(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await _post_payload(h, payload("slack/url_verification.json"))
    assert resp.status == 200
    assert (await resp.json()) == {
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    }
    assert h.inbound_calls == []


async def test_slack_url_verification_must_be_signed(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await h.client.post(h.path, json=payload("slack/url_verification.json"))
    assert resp.status == 401


async def test_slack_ignores_the_bots_own_messages(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await _post_payload(h, payload("slack/bot_message.json"))
    assert resp.status == 200
    assert await customer_messages(h.db) == 0
    own = payload("slack/message_im.json")
    own["event"]["user"] = "UBOT00001"  # the bot's user id, without bot_id
    assert (await _post_payload(h, own)).status == 200
    edited = payload("slack/message_im.json")
    edited["event"]["subtype"] = "message_changed"
    assert (await _post_payload(h, edited)).status == 200
    assert await customer_messages(h.db) == 0
    assert await outbox_rows(h.db) == []


async def test_slack_channel_mention_is_answered_in_its_thread(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await _post_payload(h, payload("slack/app_mention.json"))
    assert resp.status == 200
    await eventually(lambda: h.fake.requests)
    sent = h.fake.requests[0].json()
    assert sent["channel"] == "C123ABC456"
    assert sent["thread_ts"] == "1515449522.000016"
    assert sent["text"] == "echo: is it possible to change my delivery address?"  # mention cut
    assert h.fake.requests[0].headers["Authorization"] == "Bearer xoxb-test-token-0123456789"


async def test_slack_ok_false_errors_are_permanent_unless_transient(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    h.fake.fail_next(200, {"ok": False, "error": "channel_not_found"})
    assert (await h.post_valid()).status == 200
    rows = await eventually(lambda: _status(h, "failed"))
    assert rows[0].attempts == 1
    assert "channel_not_found" in rows[0].last_error
    assert len(h.fake.requests) == 1


async def _status(h: Harness, status: str) -> Any:
    rows = await outbox_rows(h.db)
    return rows if rows and all(r.status == status for r in rows) else None


# Meta


@pytest.mark.parametrize("name", ["messenger", "whatsapp"])
async def test_meta_get_handshake_echoes_the_challenge_for_the_right_token(
    make_harness: Any, name: str
) -> None:
    h: Harness = await make_harness(CASE[name])
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "meta-verify-0123456789",
        "hub.challenge": "1158201444",
    }
    resp = await h.client.get(h.path, params=query)
    assert resp.status == 200
    assert await resp.text() == "1158201444"
    resp = await h.client.get(h.path, params={**query, "hub.verify_token": "guess"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"


async def test_messenger_ignores_echoes_of_the_pages_own_messages(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["messenger"])
    assert (await _post_payload(h, payload("meta/messenger_echo.json"))).status == 200
    assert await customer_messages(h.db) == 0


async def test_whatsapp_ignores_status_updates_and_quotes_the_customer(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["whatsapp"])
    assert (await _post_payload(h, payload("meta/whatsapp_status.json"))).status == 200
    assert await customer_messages(h.db) == 0
    assert (await h.post_valid()).status == 200
    await eventually(lambda: h.fake.requests)
    sent = h.fake.requests[0]
    assert sent.path == "/v21.0/106540352242922/messages"
    assert sent.json()["context"] == {
        "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    }
    assert h.inbound_calls[-1].customer_name == "Sheena Nelson"


async def test_whatsapp_skips_messages_to_another_number(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["whatsapp"])
    data = payload("meta/whatsapp_text.json")
    data["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert (await _post_payload(h, data)).status == 200
    assert await customer_messages(h.db) == 0


# Twilio


async def test_twilio_whatsapp_message_gets_empty_twiml_and_an_api_reply(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["twilio"])
    resp = await _post_payload(h, payload("twilio/whatsapp.json"))
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    assert "<Response></Response>" in await resp.text()
    await eventually(lambda: h.fake.requests)
    sent = h.fake.requests[0]
    assert sent.path == "/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages.json"
    assert sent.form()["To"] == "whatsapp:+16505551234"
    assert sent.headers["Authorization"].startswith("Basic ")


async def test_twilio_refuses_another_accounts_webhook(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["twilio"])
    data = {**payload("twilio/sms.json"), "AccountSid": "AC" + "0" * 32}
    resp = await _post_payload(h, data)
    assert resp.status == 400
    assert "AccountSid" in (await resp.json())["error"]["message"]


# Telegram


async def test_telegram_ignores_edits(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    assert (await _post_payload(h, payload("telegram/edited_message.json"))).status == 200
    assert await customer_messages(h.db) == 0


async def test_telegram_blocked_bot_is_a_permanent_failure(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    h.fake.fail_next(
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    assert (await h.post_valid()).status == 200
    rows = await eventually(lambda: _status(h, "failed"))
    assert "blocked" in rows[0].last_error and rows[0].attempts == 1


# Generic webhook


async def test_webhook_reply_is_signed_with_a_stable_delivery_id(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["webhook"])
    h.fake.fail_next(503, {"error": "busy"})
    assert (await h.post_valid()).status == 200
    await eventually(lambda: len(h.fake.requests) == 2)
    first, second = h.fake.requests
    assert first.headers["X-Deskbot-Delivery"] == second.headers["X-Deskbot-Delivery"]
    verify_signature(
        "webhook-secret-0123456789", second.headers["X-Deskbot-Signature"], second.body, window_s=60
    )
    assert second.json()["reply_to"] == "msg-20240101-0001"


# The webhook app itself


async def test_unknown_channel_is_404_and_post_only_platforms_refuse_get(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    resp = await h.client.post("/webhooks/telegram/nope", data=b"{}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await h.client.get(h.path)
    assert resp.status == 405


async def test_a_failing_store_is_500_so_the_platform_retries(db: Any, aiohttp_client: Any) -> None:
    from aiohttp import web

    from connectors.connector_set import ConnectorSet
    from connectors.http import make_webhook_app
    from connectors.registration import build_channel_config

    case = CASE["webhook"]
    config = build_channel_config("webhook", case.options("http://127.0.0.1:9"))
    connectors = ConnectorSet.from_configs({"main": ("webhook", config)})

    async def broken(connector: Any, msg: Any) -> bool:
        raise RuntimeError("database is down")

    app = web.Application()
    app.add_subapp("/webhooks/", make_webhook_app(connectors, broken))
    client = await aiohttp_client(app)
    body = case.body()
    resp = await client.post("/webhooks/webhook/main", data=body, headers=case.sign(body, "unused"))
    assert resp.status == 500
    assert "database is down" not in await resp.text()  # no internals leak
    await connectors.close()
