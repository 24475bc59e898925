"""Messenger Platform: ``object: page`` webhooks, Send API replies to the sender's PSID.

Quirks: the page's own messages come back as ``is_echo`` messages; stickers and images have
no ``text``; delivery/read receipts arrive as ``delivery``/``read`` events. All are skipped.
Replies use ``messaging_type: RESPONSE`` (allowed within 24 hours of the customer's message).

Quick replies are Messenger's own ``quick_replies``: titles are cut to 20 characters and the
full label rides in the ``payload``. A tap arrives as an ordinary message whose ``text`` is
the title, with ``quick_reply.payload`` beside it; the payload is taken as the text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.errors import InputError
from connectors.base import DeliveryResult, InboundMessage, OutboundMessage, fit_text
from connectors.meta.common import MetaConnector, result_id
from connectors.meta.config import MessengerConfig
from connectors.parsing import field, json_object
from connectors.quick_replies import pressed_label, quick_replies_of, shorten

MAX_TEXT = 2000
MAX_TITLE = 20  # a quick reply's title


class MessengerConnector(MetaConnector):
    config_class = MessengerConfig
    config: MessengerConfig

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        payload = json_object(body)
        if payload.get("object") != "page":
            raise InputError(
                f"expected a Messenger 'page' webhook, got object={payload.get('object')!r}"
            )
        found: list[InboundMessage] = []
        for entry in field(payload, "entry", list):
            for event in (entry.get("messaging") or []) if isinstance(entry, dict) else []:
                message = event.get("message") if isinstance(event, dict) else None
                if not isinstance(message, dict) or message.get("is_echo"):
                    continue
                text = message.get("text")
                quick_reply = message.get("quick_reply")
                if isinstance(quick_reply, dict) and isinstance(quick_reply.get("payload"), str):
                    text = pressed_label(text, quick_reply["payload"], MAX_TITLE)
                if not isinstance(text, str) or not text.strip():
                    continue
                sender = field(event, "sender.id")
                found.append(
                    InboundMessage(
                        channel=self.channel_key,
                        external_message_id=field(message, "mid"),
                        external_conversation_id=sender,
                        customer_external_id=sender,
                        text=text,
                        raw=event,
                    )
                )
        return found

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        body: dict[str, Any] = {
            "recipient": {"id": message.conversation_external_id},
            "messaging_type": "RESPONSE",
            "message": {"text": fit_text(message.text, MAX_TEXT)},
        }
        labels = quick_replies_of(message.meta)
        if labels:
            body["message"]["quick_replies"] = [
                {"content_type": "text", "title": shorten(label, MAX_TITLE), "payload": label}
                for label in labels
            ]
        resp = await self.post_graph("me/messages", body)
        return DeliveryResult(result_id(resp, "message_id"), resp.data)
