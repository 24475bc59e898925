"""Slack beyond the shared flow: URL verification, ignored events, threads, permanent
errors, and quick replies as buttons whose click comes back as the label."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

from tests.connectors.fakes import eventually, payload
from tests.connectors.harness import (
    CASE,
    LABELS,
    Harness,
    answered,
    customer_messages,
    offer,
    outbox_rows,
    outbox_status,
    post_json,
    post_payload,
)


async def test_slack_url_verification_echoes_the_challenge(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await post_payload(h, payload("slack/url_verification.json"))
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
    resp = await post_payload(h, payload("slack/bot_message.json"))
    assert resp.status == 200
    assert await customer_messages(h.db) == 0
    own = payload("slack/message_im.json")
    own["event"]["user"] = "UBOT00001"  # the bot's user id, without bot_id
    assert (await post_payload(h, own)).status == 200
    edited = payload("slack/message_im.json")
    edited["event"]["subtype"] = "message_changed"
    assert (await post_payload(h, edited)).status == 200
    assert await customer_messages(h.db) == 0
    assert await outbox_rows(h.db) == []


async def test_slack_channel_mention_is_answered_in_its_thread(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"])
    resp = await post_payload(h, payload("slack/app_mention.json"))
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
    rows = await eventually(lambda: outbox_status(h, "failed"))
    assert rows[0].attempts == 1
    assert "channel_not_found" in rows[0].last_error
    assert len(h.fake.requests) == 1


def _slack_press(sent: dict[str, Any], index: int, **where: Any) -> dict[str, Any]:
    press = payload("slack/block_actions.json")
    press["message"]["blocks"] = sent["blocks"]
    press["message"]["text"] = sent["text"]
    button = sent["blocks"][-1]["elements"][index]
    press["actions"] = [
        {**copy.deepcopy(button), "block_id": "Ybn2P", "action_ts": "1600857125.213843"}
    ]
    if "channel" in where:
        press["container"]["channel_id"] = press["channel"]["id"] = where["channel"]
        press["channel"]["name"] = "support"
    if "thread_ts" in where:
        press["message"]["thread_ts"] = press["container"]["thread_ts"] = where["thread_ts"]
    return press


async def _post_slack_interaction(h: Harness, press: dict[str, Any], *, forged: bool = False):
    body = urlencode({"payload": json.dumps(press)}).encode()
    headers = h.case.forged(body, h.url) if forged else h.case.sign(body, h.url)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return await h.post(body, headers)


async def test_slack_offers_buttons_and_a_click_is_the_label(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["slack"], quick_replies=LABELS)
    sent = (await offer(h)).json()
    assert sent["text"] == "echo: Where is my order?"  # the notification fallback
    section, actions = sent["blocks"]
    assert section == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "echo: Where is my order?"},
    }
    assert actions["type"] == "actions"
    assert [b["type"] for b in actions["elements"]] == ["button"] * 3
    assert [b["text"] for b in actions["elements"]] == [
        {"type": "plain_text", "text": label} for label in LABELS
    ]
    assert [b["value"] for b in actions["elements"]] == LABELS
    assert len({b["action_id"] for b in actions["elements"]}) == 3  # unique per message

    # A forged interaction is refused like a forged event.
    resp = await _post_slack_interaction(h, _slack_press(sent, 1), forged=True)
    assert resp.status == 401
    assert len(h.inbound_calls) == 1

    resp = await _post_slack_interaction(h, _slack_press(sent, 1))
    assert resp.status == 200, await resp.text()
    assert await resp.read() == b""  # an interaction is acknowledged with an empty 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Change an order"
    assert pressed.external_conversation_id == first.external_conversation_id == "D024BE91L"
    assert pressed.external_message_id == "D024BE91L:action:1600857125.213843"
    assert pressed.customer_external_id == "U2147483697"
    reply = (await answered(h, 2)).json()
    assert reply["text"] == "echo: Change an order"
    assert reply["channel"] == "D024BE91L" and "thread_ts" not in reply

    # Slack may deliver the same interaction twice: stored once.
    assert (await _post_slack_interaction(h, _slack_press(sent, 1))).status == 200
    assert await customer_messages(h.db) == 2


async def test_slack_click_in_a_channel_thread_joins_that_threads_conversation(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["slack"], quick_replies=LABELS)
    mention = payload("slack/app_mention.json")
    assert (await post_json(h, mention)).status == 200
    sent = (await answered(h, 1)).json()
    assert sent["thread_ts"] == "1515449522.000016"
    press = _slack_press(sent, 0, channel="C123ABC456", thread_ts="1515449522.000016")
    assert (await _post_slack_interaction(h, press)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Cancel an order"
    assert pressed.external_conversation_id == first.external_conversation_id
    reply = (await answered(h, 2)).json()
    assert (reply["channel"], reply["thread_ts"]) == ("C123ABC456", "1515449522.000016")


async def test_slack_ignores_other_interactions_and_refuses_a_payloadless_form(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["slack"], quick_replies=LABELS)
    sent = (await offer(h)).json()
    foreign = _slack_press(sent, 0)
    foreign["actions"][0]["action_id"] = "approve_refund"  # another app feature's button
    assert (await _post_slack_interaction(h, foreign)).status == 200
    shortcut = {"type": "shortcut", "callback_id": "open_ticket", "user": {"id": "U1"}}
    assert (await _post_slack_interaction(h, shortcut)).status == 200
    assert len(h.inbound_calls) == 1  # neither is a customer message

    odd = _slack_press(sent, 2)
    odd["container"], odd["message"] = "message", []  # odd shapes: fall back to channel.id
    assert (await _post_slack_interaction(h, odd)).status == 200
    assert h.inbound_calls[-1].text == "Something else"
    assert h.inbound_calls[-1].external_conversation_id == "D024BE91L"

    body = b"token=XXYYZZ"
    headers = {**h.case.sign(body, h.url), "Content-Type": "application/x-www-form-urlencoded"}
    resp = await h.post(body, headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"
    assert await customer_messages(h.db) == 2
