"""Messenger beyond the shared flow: echoes ignored, quick replies and taps."""

from __future__ import annotations

from typing import Any

from tests.connectors.fakes import payload
from tests.connectors.harness import (
    CASE,
    LONG_LABELS,
    Harness,
    answered,
    customer_messages,
    offer,
    post_json,
    post_payload,
)


async def test_messenger_ignores_echoes_of_the_pages_own_messages(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["messenger"])
    assert (await post_payload(h, payload("meta/messenger_echo.json"))).status == 200
    assert await customer_messages(h.db) == 0


async def test_messenger_offers_quick_replies_and_a_tap_is_the_full_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["messenger"], quick_replies=LONG_LABELS)
    sent = (await offer(h)).json()
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
    assert (await post_json(h, tap)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Change the delivery address"
    assert pressed.external_conversation_id == first.external_conversation_id
    reply = (await answered(h, 2)).json()
    assert reply["message"]["text"] == "echo: Change the delivery address"


async def test_messenger_quick_reply_of_another_system_keeps_its_title(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["messenger"])
    tap = payload("meta/messenger_quick_reply.json")
    message = tap["entry"][0]["messaging"][0]["message"]
    message["text"], message["quick_reply"] = "Opening hours", {"payload": "MENU_HOURS"}
    assert (await post_json(h, tap)).status == 200
    assert h.inbound_calls[-1].text == "Opening hours"
