"""Slack: Events API callbacks, signed with the app's signing secret.

Quirks: the endpoint is first checked with a signed ``url_verification`` event whose
``challenge`` must be echoed; a callback not answered within 3 s is retried with
``X-Slack-Retry-Num`` and the same event, which the message id (``<channel>:<ts>``) dedupes;
a channel message that mentions the bot arrives twice (``message`` and ``app_mention``) with
the same ``ts``, deduped the same way; the bot's own posts come back as events with
``bot_id`` (or the bot's user id) and edits/joins as ``subtype`` events, all ignored.
A conversation is a thread (``<channel>:<thread ts>``); in a direct message channel it is the
channel itself. ``chat.postMessage`` answers 200 with ``ok: false`` for most errors and a
real 429 with ``Retry-After`` when rate limited.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from bot.errors import InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage, fit_text
from connectors.parsing import field, json_object
from connectors.sending import call_api, raise_for_status, short
from connectors.slack.config import SlackConfig
from connectors.slack.signature import verify_slack

log = logging.getLogger("deskbot.connectors.slack")

MAX_TEXT = 40_000
# ok:false errors worth retrying; every other error (channel_not_found, not_in_channel,
# invalid_auth...) will fail again.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackConnector(Connector):
    config_class = SlackConfig
    config: SlackConfig

    async def verify(self, request: web.Request, body: bytes) -> None:
        verify_slack(
            self.config.signing_secret, request.headers, body, window_s=self.config.replay_window_s
        )

    async def handshake(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.method != "POST":
            return None
        payload = json_object(body)
        if payload.get("type") != "url_verification":
            return None
        return web.json_response({"challenge": field(payload, "challenge")})

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        payload = json_object(body)
        if payload.get("type") != "event_callback":
            return []
        event = field(payload, "event", dict)
        retry = request.headers.get("X-Slack-Retry-Num")
        if retry:
            log.info(
                "%s: Slack retry %s (%s) of %s",
                self.channel_key,
                retry,
                request.headers.get("X-Slack-Retry-Reason"),
                payload.get("event_id"),
            )
        if event.get("type") not in ("message", "app_mention") or self._not_customer(event):
            return []
        channel, ts = field(event, "channel"), field(event, "ts")
        text = self._strip_mention(event.get("text") or "")
        if not text:
            return []
        thread = event.get("thread_ts")
        if event.get("channel_type") == "im" and not thread:
            conversation = channel
        else:
            conversation = f"{channel}:{thread or ts}"
        return [
            InboundMessage(
                channel=self.channel_key,
                external_message_id=f"{channel}:{ts}",
                external_conversation_id=conversation,
                customer_external_id=field(event, "user"),
                text=text,
                raw=payload,
            )
        ]

    def _not_customer(self, event: dict[str, Any]) -> bool:
        return bool(
            event.get("subtype")
            or event.get("bot_id")
            or event.get("bot_profile")
            or (self.config.bot_user_id and event.get("user") == self.config.bot_user_id)
            or "user" not in event
        )

    def _strip_mention(self, text: str) -> str:
        if self.config.bot_user_id:
            text = re.sub(rf"^\s*<@{re.escape(self.config.bot_user_id)}>\s*", "", text)
        return text.strip()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        channel, _, thread_ts = message.conversation_external_id.partition(":")
        if not channel:
            raise InputError(f"bad Slack conversation id {message.conversation_external_id!r}")
        body: dict[str, Any] = {"channel": channel, "text": fit_text(message.text, MAX_TEXT)}
        if thread_ts:
            body["thread_ts"] = thread_ts
        resp = await call_api(
            self.http,
            "POST",
            f"{self.config.api_base.rstrip('/')}/chat.postMessage",
            json=body,
            headers={"Authorization": f"Bearer {self.config.bot_token}"},
            platform="slack",
        )
        data = resp.data if isinstance(resp.data, dict) else {}
        if resp.status == 200 and data.get("ok"):
            return DeliveryResult(data.get("ts"), data)
        error = str(data.get("error") or short(resp.data))
        retryable = None if resp.status != 200 else error in RETRYABLE_ERRORS
        raise_for_status(resp, platform="slack", detail=error, retryable=retryable)
