"""WhatsApp Cloud API: business-account webhooks in, ``/<number id>/messages`` out.

Quirks: message status updates (sent, delivered, read) arrive on the same webhook as
``statuses`` and are skipped; the customer's display name is in ``contacts[].profile.name``;
every number of the app posts to the same callback, so messages addressed to another
``metadata.phone_number_id`` are skipped; button and interactive replies carry their text
elsewhere than ``text.body``. A reply quotes the customer's message through ``context``.

Quick replies are interactive reply buttons when they fit (at most 3, titles of at most 20
characters that stay distinct once cut, a body of at most 1024 characters); the button
``id`` carries the full label and a tap arrives as ``interactive.button_reply``, whose id is
taken as the text. When they do not fit, the labels are a numbered list in the text.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.errors import InputError
from connectors.base import DeliveryResult, InboundMessage, OutboundMessage
from connectors.meta.common import MetaConnector, result_id
from connectors.meta.config import WhatsAppConfig
from connectors.parsing import field, json_object
from connectors.quick_replies import numbered_text, pressed_label, quick_replies_of, shorten

log = logging.getLogger("deskbot.connectors.whatsapp")

MAX_TEXT = 4096
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_BODY = 1024


def _text_of(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if kind == "text":
        return (message.get("text") or {}).get("body")
    if kind == "button":
        return (message.get("button") or {}).get("text")
    if kind == "interactive":
        inner = message.get("interactive") or {}
        if isinstance(inner.get("button_reply"), dict):
            reply = inner["button_reply"]
            return pressed_label(reply.get("title"), reply.get("id"), MAX_BUTTON_TITLE)
        return (inner.get("list_reply") or {}).get("title")
    return None


def reply_buttons(text: str, labels: list[str]) -> dict[str, Any] | None:
    """The ``interactive`` object of a reply-buttons message, or None when they do not fit."""
    titles = [shorten(label, MAX_BUTTON_TITLE) for label in labels]
    if len(labels) > MAX_BUTTONS or len(set(titles)) < len(titles) or len(text) > MAX_BUTTON_BODY:
        return None
    return {
        "type": "button",
        "body": {"text": text},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": label, "title": title}}
                for label, title in zip(labels, titles, strict=True)
            ]
        },
    }


class WhatsAppConnector(MetaConnector):
    config_class = WhatsAppConfig
    config: WhatsAppConfig

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        payload = json_object(body)
        if payload.get("object") != "whatsapp_business_account":
            raise InputError(
                f"expected a 'whatsapp_business_account' webhook, got {payload.get('object')!r}"
            )
        found: list[InboundMessage] = []
        for entry in field(payload, "entry", list):
            for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
                if not isinstance(change, dict) or change.get("field") != "messages":
                    continue
                value = field(change, "value", dict)
                number = (value.get("metadata") or {}).get("phone_number_id")
                if number and number != self.config.phone_number_id:
                    log.info("%s: skipping messages to number %s", self.channel_key, number)
                    continue
                names = {
                    c.get("wa_id"): (c.get("profile") or {}).get("name")
                    for c in value.get("contacts") or []
                    if isinstance(c, dict)
                }
                for message in value.get("messages") or []:
                    text = _text_of(message) if isinstance(message, dict) else None
                    if not isinstance(text, str) or not text.strip():
                        continue
                    sender = field(message, "from")
                    found.append(
                        InboundMessage(
                            channel=self.channel_key,
                            external_message_id=field(message, "id"),
                            external_conversation_id=sender,
                            customer_external_id=sender,
                            text=text,
                            raw=message,
                            customer_name=names.get(sender),
                        )
                    )
        return found

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        labels = quick_replies_of(message.meta)
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.conversation_external_id,
        }
        interactive = reply_buttons(message.text, labels) if labels else None
        if interactive is not None:
            body.update(type="interactive", interactive=interactive)
        else:
            text = numbered_text(message.text, labels, MAX_TEXT)
            body.update(type="text", text={"preview_url": False, "body": text})
        if message.reply_to:
            body["context"] = {"message_id": message.reply_to}
        resp = await self.post_graph(f"{self.config.phone_number_id}/messages", body)
        return DeliveryResult(result_id(resp, "messages", "id"), resp.data)
