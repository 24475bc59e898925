"""Quick replies on every platform: offered in the platform's own shape, and a press comes
back as a customer message whose text is the label.

Each press test posts the platform's recorded press event with the buttons that deskbot
actually sent put in, so the round trip (send → press → parse) is the one a customer makes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
from connector_fakes import CASES, Recorded, eventually, payload
from connector_harness import Harness, customer_messages

from connectors.quick_replies import numbered_text, quick_replies_meta
from connectors.telegram.connector import CALLBACK_DATA_BYTES

CASE = {c.connector: c for c in CASES}
LABELS = ["Cancel an order", "Change an order", "Something else"]
# The second label is longer than Messenger's and WhatsApp's 20-character button titles.
LONG_LABELS = ["Cancel an order", "Change the delivery address", "Something else"]
NUMBERED = "\n\n1. Cancel an order\n2. Change an order\n3. Something else\nReply with a number."


async def _offer(h: Harness) -> Recorded:
    """The customer writes; the echo reply, offering the harness's quick replies, is sent."""
    assert (await h.post_valid()).status == 200
    await eventually(lambda: h.fake.requests)
    return h.fake.requests[0]


async def _post_json(h: Harness, data: dict[str, Any]) -> Any:
    body = json.dumps(data).encode()
    return await h.post(body, h.case.sign(body, h.url))


async def _answered(h: Harness, n: int) -> Recorded:
    """The ``n``-th send (1-based): the echo of the ``n``-th customer message."""
    await eventually(lambda: len(h.fake.requests) >= n)
    return h.fake.requests[n - 1]


# Validation of what the bot offers


def test_only_a_list_of_non_empty_strings_becomes_quick_replies() -> None:
    assert quick_replies_meta({"quick_replies": [" Cancel an order ", "Other"]}) == {
        "quick_replies": ["Cancel an order", "Other"]
    }
    assert quick_replies_meta({"quick_replies": ["Yes", "Yes", "No"]}) == {
        "quick_replies": ["Yes", "No"]
    }
    for bad in ("Cancel", ["Cancel", ""], ["Cancel", 3], [" "], {"a": 1}, [], None):
        assert quick_replies_meta({"quick_replies": bad}) == {}, bad
    assert quick_replies_meta(None) == {}
    assert quick_replies_meta({"sources": [1]}) == {}


def test_numbered_text_cuts_the_text_never_the_choices() -> None:
    assert numbered_text("Did you mean:", LABELS) == "Did you mean:" + NUMBERED
    cut = numbered_text("x" * 2000, LABELS, 1600)
    assert len(cut) == 1600
    assert cut.endswith(NUMBERED)
    assert cut.startswith("xxx") and "…" in cut
    assert numbered_text("plain", [], 1600) == "plain"


# Telegram


async def test_telegram_offers_an_inline_keyboard_and_a_press_is_the_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"], quick_replies=LABELS)
    sent = (await _offer(h)).json()
    assert sent["text"] == "echo: Where is my order?"
    assert sent["reply_markup"] == {
        "inline_keyboard": [[{"text": label, "callback_data": label}] for label in LABELS]
    }

    press = payload("telegram/callback_query.json")
    query = press["callback_query"]
    query["message"]["reply_markup"] = sent["reply_markup"]
    query["data"] = sent["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
    resp = await _post_json(h, press)
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
    reply = (await _answered(h, 2)).json()
    assert reply["text"] == "echo: Change an order"
    assert str(reply["chat_id"]) == "1111111"

    # Telegram redelivers an update it got no 2xx for: stored once, answered again.
    again = await _post_json(h, press)
    assert (await again.json())["method"] == "answerCallbackQuery"
    assert await customer_messages(h.db) == 2


async def test_telegram_quoting_replies_quotes_messages_but_not_presses(
    make_harness: Any,
) -> None:
    case = CASE["telegram"]
    quoting = replace(case, options=lambda base: {**case.options(base), "quote_replies": True})
    h: Harness = await make_harness(quoting, quick_replies=LABELS)
    sent = (await _offer(h)).json()
    assert sent["reply_parameters"]["message_id"] == 1365
    press = payload("telegram/callback_query.json")
    press["callback_query"]["message"]["reply_markup"] = sent["reply_markup"]
    assert (await _post_json(h, press)).status == 200
    reply = (await _answered(h, 2)).json()
    assert reply["text"] == "echo: Change an order"
    assert "reply_parameters" not in reply


async def test_telegram_labels_over_64_bytes_travel_as_their_number(make_harness: Any) -> None:
    long = "Отменить заказ и вернуть деньги на карту"  # 40 characters, 75 bytes
    h: Harness = await make_harness(CASE["telegram"], quick_replies=[long, "Something else"])
    sent = (await _offer(h)).json()
    buttons = [row[0] for row in sent["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == [long, "Something else"]
    assert [b["callback_data"] for b in buttons] == ["1", "Something else"]
    assert all(len(b["callback_data"].encode()) <= CALLBACK_DATA_BYTES for b in buttons)

    press = payload("telegram/callback_query.json")
    press["callback_query"]["message"]["reply_markup"] = sent["reply_markup"]
    press["callback_query"]["data"] = "1"
    assert (await _post_json(h, press)).status == 200
    assert h.inbound_calls[-1].text == long  # read back from the keyboard

    # A message too old for Telegram to include: the number, which the bot also understands.
    stale = payload("telegram/callback_query.json")
    stale["update_id"] += 1
    stale["callback_query"]["id"] = "4382bfdwdsb323b2e0"
    del stale["callback_query"]["message"]
    stale["callback_query"]["data"] = "1"
    assert (await _post_json(h, stale)).status == 200
    assert h.inbound_calls[-1].text == "1"
    assert h.inbound_calls[-1].external_conversation_id == "1111111"  # the sender's chat


async def test_telegram_plain_replies_have_no_keyboard_and_a_malformed_press_is_400(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    sent = (await _offer(h)).json()
    assert "reply_markup" not in sent
    press = payload("telegram/callback_query.json")
    del press["callback_query"]["from"]
    resp = await _post_json(h, press)
    assert resp.status == 400
    assert "callback_query" in (await resp.json())["error"]["message"]
    assert await customer_messages(h.db) == 1


# Slack


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
    sent = (await _offer(h)).json()
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
    reply = (await _answered(h, 2)).json()
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
    assert (await _post_json(h, mention)).status == 200
    sent = (await _answered(h, 1)).json()
    assert sent["thread_ts"] == "1515449522.000016"
    press = _slack_press(sent, 0, channel="C123ABC456", thread_ts="1515449522.000016")
    assert (await _post_slack_interaction(h, press)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Cancel an order"
    assert pressed.external_conversation_id == first.external_conversation_id
    reply = (await _answered(h, 2)).json()
    assert (reply["channel"], reply["thread_ts"]) == ("C123ABC456", "1515449522.000016")


async def test_slack_ignores_other_interactions_and_refuses_a_payloadless_form(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["slack"], quick_replies=LABELS)
    sent = (await _offer(h)).json()
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


# Messenger


async def test_messenger_offers_quick_replies_and_a_tap_is_the_full_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["messenger"], quick_replies=LONG_LABELS)
    sent = (await _offer(h)).json()
    assert sent["message"]["text"] == "echo: Where is my order?"
    assert sent["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Cancel an order", "payload": "Cancel an order"},
        {
            "content_type": "text",
            "title": "Change the delivery…",
            "payload": "Change the delivery address",
        },
        {"content_type": "text", "title": "Something else", "payload": "Something else"},
    ]
    assert all(len(q["title"]) <= 20 for q in sent["message"]["quick_replies"])

    tap = payload("meta/messenger_quick_reply.json")
    chosen = sent["message"]["quick_replies"][1]
    message = tap["entry"][0]["messaging"][0]["message"]
    message["text"] = chosen["title"]  # Messenger posts the title as the text
    message["quick_reply"] = {"payload": chosen["payload"]}
    assert (await _post_json(h, tap)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Change the delivery address"
    assert pressed.external_conversation_id == first.external_conversation_id
    reply = (await _answered(h, 2)).json()
    assert reply["message"]["text"] == "echo: Change the delivery address"


async def test_messenger_quick_reply_of_another_system_keeps_its_title(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["messenger"])
    tap = payload("meta/messenger_quick_reply.json")
    message = tap["entry"][0]["messaging"][0]["message"]
    message["text"], message["quick_reply"] = "Opening hours", {"payload": "MENU_HOURS"}
    assert (await _post_json(h, tap)).status == 200
    assert h.inbound_calls[-1].text == "Opening hours"


# WhatsApp


async def test_whatsapp_offers_reply_buttons_and_a_tap_is_the_full_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["whatsapp"], quick_replies=LONG_LABELS)
    sent = (await _offer(h)).json()
    assert sent["type"] == "interactive" and "text" not in sent
    assert sent["context"]["message_id"].startswith("wamid.")  # still quotes the customer
    interactive = sent["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"] == {"text": "echo: Where is my order?"}
    buttons = interactive["action"]["buttons"]
    assert [b["type"] for b in buttons] == ["reply"] * 3
    assert [b["reply"]["id"] for b in buttons] == LONG_LABELS
    assert [b["reply"]["title"] for b in buttons] == [
        "Cancel an order",
        "Change the delivery…",
        "Something else",
    ]

    tap = payload("meta/whatsapp_button_reply.json")
    message = tap["entry"][0]["changes"][0]["value"]["messages"][0]
    message["interactive"]["button_reply"] = dict(buttons[1]["reply"])
    assert (await _post_json(h, tap)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Change the delivery address"
    assert pressed.external_message_id == message["id"]
    assert pressed.external_conversation_id == first.external_conversation_id == "16505551234"
    reply = (await _answered(h, 2)).json()
    assert reply["type"] == "interactive"  # the echo offers the buttons again
    assert reply["interactive"]["body"]["text"] == "echo: Change the delivery address"


async def test_whatsapp_falls_back_to_numbered_text_beyond_three_buttons(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["whatsapp"], quick_replies=[*LABELS, "Talk to a person"])
    sent = (await _offer(h)).json()
    assert sent["type"] == "text"
    assert sent["text"]["body"] == (
        "echo: Where is my order?\n\n1. Cancel an order\n2. Change an order\n"
        "3. Something else\n4. Talk to a person\nReply with a number."
    )


# Twilio and the generic webhook: numbered text


async def test_twilio_appends_the_choices_as_numbered_text(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["twilio"], quick_replies=LABELS)
    sent = await _offer(h)
    assert sent.form()["Body"] == "echo: Where is my order?" + NUMBERED


async def test_webhook_posts_numbered_text_and_the_structured_choices(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["webhook"], quick_replies=LABELS)
    sent = (await _offer(h)).json()
    assert sent["text"] == "echo: Where is my order?" + NUMBERED
    assert sent["quick_replies"] == LABELS
    assert sent["meta"] == {"quick_replies": LABELS}


@pytest.mark.parametrize("name", ["twilio", "webhook"])
async def test_numbered_platforms_leave_plain_replies_alone(make_harness: Any, name: str) -> None:
    h: Harness = await make_harness(CASE[name])
    sent = await _offer(h)
    text = sent.form()["Body"] if name == "twilio" else sent.json()["text"]
    assert text == "echo: Where is my order?"
    if name == "webhook":
        assert sent.json()["quick_replies"] == []
