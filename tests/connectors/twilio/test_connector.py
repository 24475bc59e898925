"""Twilio beyond the shared flow: TwiML answers, other accounts refused, numbered choices."""

from __future__ import annotations

from typing import Any

from tests.connectors.fakes import eventually, payload
from tests.connectors.harness import (
    CASE,
    LABELS,
    NUMBERED,
    Harness,
    offer,
    post_payload,
)


async def test_twilio_whatsapp_message_gets_empty_twiml_and_an_api_reply(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["twilio"])
    resp = await post_payload(h, payload("twilio/whatsapp.json"))
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
    resp = await post_payload(h, data)
    assert resp.status == 400
    assert "AccountSid" in (await resp.json())["error"]["message"]


async def test_twilio_appends_the_choices_as_numbered_text(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["twilio"], quick_replies=LABELS)
    sent = await offer(h)
    assert sent.form()["Body"] == "echo: Where is my order?" + NUMBERED
