"""Telegram: updates arrive as JSON POSTs carrying the secret given to ``setWebhook``.

Quirks: there is no body signature, only the ``X-Telegram-Bot-Api-Secret-Token`` header;
``message_id`` is unique per chat only, so the external id is ``<chat id>:<message id>``;
errors come as ``{"ok": false, "error_code", "description"}`` and a 429 carries its wait in
``parameters.retry_after`` rather than a header. Telegram redelivers an update until it gets
a 2xx, so the same update can arrive more than once.

Quick replies are an inline keyboard. A press arrives as a ``callback_query`` update (only
if ``setWebhook`` allowed it), not as a message: it becomes a customer message whose text
is the pressed button's label, with the external id ``callback:<query id>``. Telegram
clients show a spinner until the query is answered; the webhook's 200 carries that answer
(``{"method": "answerCallbackQuery", ...}``, the Bot API's "reply to a webhook with a
method call"), so no extra request is needed.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.errors import AuthError, InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage, fit_text
from connectors.parsing import json_object
from connectors.quick_replies import quick_replies_of
from connectors.sending import call_api, raise_for_status, short
from connectors.signing import same
from connectors.telegram.config import TelegramConfig

log = logging.getLogger("deskbot.connectors.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT = 4096
CALLBACK_DATA_BYTES = 64  # InlineKeyboardButton.callback_data: 1-64 bytes
# Where parse() leaves a callback query's id for acknowledge() to answer.
CALLBACK_QUERY_KEY = web.RequestKey("deskbot_telegram_callback_query", str)


def _method_url(config: TelegramConfig, method: str) -> str:
    return f"{config.api_base.rstrip('/')}/bot{config.bot_token}/{method}"


def callback_payloads(labels: list[str]) -> list[str]:
    """Each button's ``callback_data``: the label itself when it fits the 64 bytes, else its
    number (which the dialogue manager also accepts); all numbers if that would repeat one.

    The press is read back from the keyboard the update carries (:func:`_pressed`), so the
    number only reaches the bot when Telegram no longer has the message.
    """
    data = [
        label if len(label.encode()) <= CALLBACK_DATA_BYTES else str(i)
        for i, label in enumerate(labels, 1)
    ]
    if len(set(data)) < len(data):
        data = [str(i) for i in range(1, len(labels) + 1)]
    return data


def inline_keyboard(labels: list[str]) -> dict[str, Any]:
    """One button per row: labels run to 40 characters, too long to sit side by side."""
    return {
        "inline_keyboard": [
            [{"text": label, "callback_data": data}]
            for label, data in zip(labels, callback_payloads(labels), strict=True)
        ]
    }


def _pressed(query: dict[str, Any], data: str) -> str:
    """The label of the button whose ``callback_data`` is ``data`` in the message's keyboard."""
    message = query.get("message")
    markup = message.get("reply_markup") if isinstance(message, dict) else None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            label = button.get("text") if isinstance(button, dict) else None
            if isinstance(label, str) and label.strip() and button.get("callback_data") == data:
                return label
    return data


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
        query = update.get("callback_query")
        if isinstance(query, dict):
            return self._parse_callback(request, update, query)
        message = update.get("message")
        if not isinstance(message, dict):
            # edited_message, channel_post...: not customer text
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

    def _parse_callback(
        self, request: web.Request, update: dict[str, Any], query: dict[str, Any]
    ) -> list[InboundMessage]:
        sender = query.get("from")
        if "id" not in query or not isinstance(sender, dict) or "id" not in sender:
            raise InputError("Telegram callback_query lacks 'id' or 'from.id'")
        request[CALLBACK_QUERY_KEY] = str(query["id"])
        data = query.get("data")
        if not isinstance(data, str) or not data.strip():
            return []  # a game button: nothing the customer said
        message = query.get("message")
        chat = message.get("chat") if isinstance(message, dict) else None
        # Without the message (too old), the press came from a private chat with the sender.
        chat_id = chat["id"] if isinstance(chat, dict) and "id" in chat else sender["id"]
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
        return [
            InboundMessage(
                channel=self.channel_key,
                external_message_id=f"callback:{query['id']}",
                external_conversation_id=str(chat_id),
                customer_external_id=str(sender["id"]),
                text=_pressed(query, data),
                raw=update,
                customer_name=name or sender.get("username"),
            )
        ]

    def acknowledge(self, request: web.Request) -> web.Response:
        query_id = request.get(CALLBACK_QUERY_KEY)
        if query_id:
            return web.json_response(
                {"method": "answerCallbackQuery", "callback_query_id": query_id}
            )
        return super().acknowledge(request)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        body: dict[str, Any] = {
            "chat_id": message.conversation_external_id,
            "text": fit_text(message.text, MAX_TEXT),
        }
        labels = quick_replies_of(message.meta)
        if labels:
            body["reply_markup"] = inline_keyboard(labels)
        # Only a message can be quoted: a button press ("callback:<id>") has nothing to quote.
        chat, _, quoted = (message.reply_to or "").rpartition(":")
        if self.config.quote_replies and chat and quoted.isascii() and quoted.isdigit():
            body["reply_parameters"] = {
                "message_id": int(quoted),
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
        "allowed_updates": ["message", "callback_query"],
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
