"""WhatsApp beyond the shared flow: status updates, other numbers, quoting, reply buttons."""

from __future__ import annotations

from typing import Any

from tests.connectors.fakes import eventually, payload
from tests.connectors.harness import (
    CASE,
    LABELS,
    LONG_LABELS,
    Harness,
    answered,
    customer_messages,
    offer,
    post_json,
    post_payload,
)


async def test_whatsapp_ignores_status_updates_and_quotes_the_customer(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["whatsapp"])
    assert (await post_payload(h, payload("meta/whatsapp_status.json"))).status == 200
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
    assert (await post_payload(h, data)).status == 200
    assert await customer_messages(h.db) == 0


async def test_whatsapp_offers_reply_buttons_and_a_tap_is_the_full_label(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["whatsapp"], quick_replies=LONG_LABELS)
    sent = (await offer(h)).json()
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
    assert (await post_json(h, tap)).status == 200
    first, pressed = h.inbound_calls
    assert pressed.text == "Change the delivery address"
    assert pressed.external_message_id == message["id"]
    assert pressed.external_conversation_id == first.external_conversation_id == "16505551234"
    reply = (await answered(h, 2)).json()
    assert reply["type"] == "interactive"  # the echo offers the buttons again
    assert reply["interactive"]["body"]["text"] == "echo: Change the delivery address"


async def test_whatsapp_falls_back_to_numbered_text_beyond_three_buttons(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["whatsapp"], quick_replies=[*LABELS, "Talk to a person"])
    sent = (await offer(h)).json()
    assert sent["type"] == "text"
    assert sent["text"]["body"] == (
        "echo: Where is my order?\n\n1. Cancel an order\n2. Change an order\n"
        "3. Something else\n4. Talk to a person\nReply with a number."
    )
