"""Twilio: form-encoded webhooks per message; replies through the Messages REST API.

Quirks: the body is ``application/x-www-form-urlencoded``, not JSON, and the signature
covers the public URL, not the body bytes; WhatsApp senders look like
``whatsapp:+14155238886`` and carry ``ProfileName``; the webhook expects TwiML back, and an
empty ``<Response/>`` means "no synchronous reply" (the reply goes through the API so it can
be retried). The API authenticates with HTTP basic auth (account SID, auth token) and
answers 201 with the message ``sid``.

SMS has no buttons: quick replies are a numbered list appended to the text, and the
customer answers with the number or the words, an ordinary message either way.
"""

from __future__ import annotations

from aiohttp import BasicAuth, web

from bot.errors import InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage
from connectors.parsing import form_pairs
from connectors.quick_replies import numbered_text, quick_replies_of
from connectors.sending import call_api, raise_for_status, short
from connectors.twilio.config import TwilioConfig
from connectors.twilio.signature import SIGNATURE_HEADER, verify_twilio

MAX_TEXT = 1600
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class TwilioConnector(Connector):
    config_class = TwilioConfig
    config: TwilioConfig

    async def verify(self, request: web.Request, body: bytes) -> None:
        url = self.config.webhook_url or str(request.url)
        verify_twilio(
            self.config.auth_token, url, form_pairs(body), request.headers.get(SIGNATURE_HEADER)
        )

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        form = dict(form_pairs(body))
        for key in ("MessageSid", "From", "To"):
            if not form.get(key):
                raise InputError(f"Twilio webhook has no {key!r}")
        if form.get("AccountSid") != self.config.account_sid:
            raise InputError("Twilio webhook is for another AccountSid")
        text = form.get("Body", "")
        if not text.strip():
            return []  # media-only message
        return [
            InboundMessage(
                channel=self.channel_key,
                external_message_id=form["MessageSid"],
                external_conversation_id=form["From"],
                customer_external_id=form["From"],
                text=text,
                raw=form,
                customer_name=form.get("ProfileName"),
            )
        ]

    def acknowledge(self, request: web.Request) -> web.Response:
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        text = numbered_text(message.text, quick_replies_of(message.meta), MAX_TEXT)
        form = {"To": message.conversation_external_id, "Body": text}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            form["From"] = self.config.from_number
        url = (
            f"{self.config.api_base.rstrip('/')}/2010-04-01/Accounts/"
            f"{self.config.account_sid}/Messages.json"
        )
        resp = await call_api(
            self.http,
            "POST",
            url,
            data=form,
            platform="twilio",
            auth=BasicAuth(self.config.account_sid, self.config.auth_token),
        )
        data = resp.data if isinstance(resp.data, dict) else {}
        if 200 <= resp.status < 300:
            return DeliveryResult(data.get("sid"), data)
        detail = f"({data.get('code')}) {data.get('message')}" if data else short(resp.data)
        raise_for_status(resp, platform="twilio", detail=detail)
