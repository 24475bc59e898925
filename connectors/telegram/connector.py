"""Telegram: updates arrive as JSON POSTs carrying the secret given to ``setWebhook``.

Quirks: there is no body signature, only the ``X-Telegram-Bot-Api-Secret-Token`` header;
``message_id`` is unique per chat only, so the external id is ``<chat id>:<message id>``;
errors come as ``{"ok": false, "error_code", "description"}`` and a 429 carries its wait in
``parameters.retry_after`` rather than a header. Telegram redelivers an update until it gets
a 2xx, so the same update can arrive more than once.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.errors import AuthError, InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage, fit_text
from connectors.parsing import json_object
from connectors.sending import call_api, raise_for_status, short
from connectors.signing import same
from connectors.telegram.config import TelegramConfig

log = logging.getLogger("deskbot.connectors.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT = 4096


def _method_url(config: TelegramConfig, method: str) -> str:
    return f"{config.api_base.rstrip('/')}/bot{config.bot_token}/{method}"


class TelegramConnector(Connector):
    config_class = TelegramConfig
    config: TelegramConfig

    async def verify(self, request: web.Request, body: bytes) -> None:
        if not same(self.config.secret_token, request.headers.get(SECRET_HEADER)):
            raise AuthError(f"missing or wrong {SECRET_HEADER}")

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        update = json_object(body)
        if "update_id" not in update:
            raise InputError("Telegram update has no 'update_id'")
        message = update.get("message")
        if not isinstance(message, dict):
            # edited_message, channel_post, callback_query...: not customer text
            return []
        chat, sender = message.get("chat"), message.get("from") or {}
        if not isinstance(chat, dict) or "id" not in chat or "message_id" not in message:
            raise InputError("Telegram message lacks 'chat.id' or 'message_id'")
        if sender.get("is_bot"):
            return []
        text = message.get("text") or message.get("caption")
        if not isinstance(text, str) or not text.strip():
            log.info("%s: ignoring a message without text", self.channel_key)
            return []
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
        return [
            InboundMessage(
                channel=self.channel_key,
                external_message_id=f"{chat['id']}:{message['message_id']}",
                external_conversation_id=str(chat["id"]),
                customer_external_id=str(sender.get("id", chat["id"])),
                text=text,
                raw=update,
                customer_name=name or sender.get("username"),
            )
        ]

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        body: dict[str, Any] = {
            "chat_id": message.conversation_external_id,
            "text": fit_text(message.text, MAX_TEXT),
        }
        if self.config.quote_replies and message.reply_to and ":" in message.reply_to:
            body["reply_parameters"] = {
                "message_id": int(message.reply_to.rsplit(":", 1)[1]),
                "allow_sending_without_reply": True,
            }
        resp = await call_api(
            self.http,
            "POST",
            _method_url(self.config, "sendMessage"),
            json=body,
            platform="telegram",
        )
        data = resp.data if isinstance(resp.data, dict) else {}
        if resp.status == 200 and data.get("ok"):
            return DeliveryResult(str((data.get("result") or {}).get("message_id")), data)
        params = data.get("parameters") or {}
        retry_after = params.get("retry_after")
        raise_for_status(
            resp,
            platform="telegram",
            detail=str(data.get("description") or short(resp.data)),
            retry_after=float(retry_after) if retry_after is not None else None,
            retryable=None if resp.status != 200 else False,
        )


async def set_webhook(
    connector: TelegramConnector, url: str, *, drop_pending_updates: bool = False
) -> dict[str, Any]:
    """Register ``url`` with Telegram, with the channel's secret token; Telegram's answer."""
    body = {
        "url": url,
        "secret_token": connector.config.secret_token,
        "allowed_updates": ["message"],
        "drop_pending_updates": drop_pending_updates,
    }
    resp = await call_api(
        connector.http,
        "POST",
        _method_url(connector.config, "setWebhook"),
        json=body,
        platform="telegram",
    )
    data = resp.data if isinstance(resp.data, dict) else {}
    if resp.status != 200 or not data.get("ok"):
        raise InputError(
            f"telegram setWebhook refused: {data.get('description') or short(resp.data)}"
        )
    return data
