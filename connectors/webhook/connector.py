"""Generic signed webhook: a documented JSON shape in both directions.

Inbound ``POST`` body::

    {"message_id": "m-1", "conversation_id": "c-9", "customer_id": "u-3",
     "text": "Where is my order?", "customer_name": "Ana"}   # customer_* optional

Outbound ``POST`` to ``callback_url``, signed with the same scheme, with header
``X-Deskbot-Delivery: <outbox id>`` that stays the same across retries (deduplicate on it)::

    {"delivery_id": 17, "conversation_id": "c-9", "text": "...", "reply_to": "m-1", "meta": {},
     "quick_replies": ["Cancel an order", "Something else"]}

``quick_replies`` (possibly empty) are choices to show as buttons; ``text`` also lists them
numbered, for receivers that only show text. A choice comes back as an ordinary inbound
message whose ``text`` is the label (or its number).

Any 2xx accepts it; 429 and 5xx are retried (``Retry-After`` honoured); other statuses fail.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.errors import InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage
from connectors.parsing import field, json_object
from connectors.quick_replies import numbered_text, quick_replies_of
from connectors.sending import call_api, raise_for_status, short
from connectors.webhook.config import WebhookConfig
from connectors.webhook.signature import SIGNATURE_HEADER, sign, verify_signature

DELIVERY_HEADER = "X-Deskbot-Delivery"


class WebhookConnector(Connector):
    config_class = WebhookConfig
    config: WebhookConfig

    async def verify(self, request: web.Request, body: bytes) -> None:
        verify_signature(
            self.config.secret,
            request.headers.get(SIGNATURE_HEADER),
            body,
            window_s=self.config.replay_window_s,
        )

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        data = json_object(body)
        text = field(data, "text")
        if not text.strip():
            raise InputError("payload field 'text' is empty")
        conversation = field(data, "conversation_id")
        customer = data.get("customer_id", conversation)
        if not isinstance(customer, str | int):
            raise InputError("payload field 'customer_id' should be str")
        return [
            InboundMessage(
                channel=self.channel_key,
                external_message_id=field(data, "message_id"),
                external_conversation_id=conversation,
                customer_external_id=str(customer),
                text=text,
                raw=data,
                customer_name=data.get("customer_name")
                if isinstance(data.get("customer_name"), str)
                else None,
            )
        ]

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        labels = quick_replies_of(message.meta)
        payload: dict[str, Any] = {
            "delivery_id": message.delivery_id,
            "conversation_id": message.conversation_external_id,
            "text": numbered_text(message.text, labels),
            "reply_to": message.reply_to,
            "meta": message.meta,
            "quick_replies": labels,
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.config.outbound_secret, body),
        }
        if message.delivery_id is not None:
            headers[DELIVERY_HEADER] = str(message.delivery_id)
        resp = await call_api(
            self.http,
            "POST",
            self.config.callback_url,
            data=body,
            headers=headers,
            platform="webhook",
        )
        if 200 <= resp.status < 300:
            data = resp.data if isinstance(resp.data, dict) else {}
            found = data.get("message_id")
            return DeliveryResult(str(found) if found is not None else None, data)
        raise_for_status(resp, platform="webhook", detail=short(resp.data))
