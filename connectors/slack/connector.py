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

Quick replies are Block Kit buttons under the text (a ``section`` block, since ``text`` is
then only the notification fallback). A press is a ``block_actions`` interaction posted to
the app's Interactivity Request URL, which must be this same webhook URL: form-encoded
``payload=<JSON>``, signed like events. It becomes a customer message whose text is the
button's ``value`` (the full label), with the external id ``<channel>:action:<action_ts>``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from bot.errors import InputError
from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage, fit_text
from connectors.parsing import field, form_pairs, json_object
from connectors.quick_replies import quick_replies_of, shorten
from connectors.sending import call_api, raise_for_status, short
from connectors.slack.config import SlackConfig
from connectors.slack.signature import verify_slack

log = logging.getLogger("deskbot.connectors.slack")

MAX_TEXT = 40_000
MAX_SECTION_TEXT = 3000  # a section block's text
MAX_BUTTON_TEXT = 75  # a button's plain_text label
ACTION_PREFIX = "deskbot_qr_"  # action_id of our quick-reply buttons
# ok:false errors worth retrying; every other error (channel_not_found, not_in_channel,
# invalid_auth...) will fail again.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackConnector(Connector):
    config_class = SlackConfig
    config: SlackConfig
    # A button press carries back our own message, text and blocks, form-encoded.
    max_body_bytes = 128 * 1024

    async def verify(self, request: web.Request, body: bytes) -> None:
        verify_slack(
            self.config.signing_secret, request.headers, body, window_s=self.config.replay_window_s
        )

    async def handshake(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.method != "POST" or _is_form(request):
            return None
        payload = json_object(body)
        if payload.get("type") != "url_verification":
            return None
        return web.json_response({"challenge": field(payload, "challenge")})

    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        if _is_form(request):
            return self._parse_interaction(_interaction(body))
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

    def acknowledge(self, request: web.Request) -> web.Response:
        if _is_form(request):
            # Interactions get the empty 200 that Slack's own SDKs answer with (ack()).
            return web.Response(status=200)
        return super().acknowledge(request)

    def _parse_interaction(self, payload: dict[str, Any]) -> list[InboundMessage]:
        if payload.get("type") != "block_actions":
            return []  # shortcuts, modals: not customer text
        user = field(payload, "user.id")
        container, message = _dict(payload.get("container")), _dict(payload.get("message"))
        channel = container.get("channel_id")
        if not isinstance(channel, str) or not channel:
            channel = field(payload, "channel.id")
        thread = message.get("thread_ts") or container.get("thread_ts")
        if thread:
            conversation = f"{channel}:{thread}"
        elif channel.startswith("D"):  # a direct message channel, answered outside threads
            conversation = channel
        else:
            ts = message.get("ts") or container.get("message_ts")
            conversation = f"{channel}:{ts}" if ts else channel
        found: list[InboundMessage] = []
        for action in field(payload, "actions", list):
            if not isinstance(action, dict) or action.get("type") != "button":
                continue
            if not str(action.get("action_id", "")).startswith(ACTION_PREFIX):
                continue
            label = action.get("value") or _dict(action.get("text")).get("text")
            if not isinstance(label, str) or not label.strip():
                continue
            found.append(
                InboundMessage(
                    channel=self.channel_key,
                    external_message_id=f"{channel}:action:{field(action, 'action_ts')}",
                    external_conversation_id=conversation,
                    customer_external_id=user,
                    text=label,
                    raw=payload,
                    customer_name=_dict(payload.get("user")).get("name"),
                )
            )
        return found

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
        labels = quick_replies_of(message.meta)
        if labels:
            body["blocks"] = quick_reply_blocks(body["text"], labels)
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


def quick_reply_blocks(text: str, labels: list[str]) -> list[dict[str, Any]]:
    """The text as section blocks, then one actions block with a button per label."""
    sections = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[i : i + MAX_SECTION_TEXT]}}
        for i in range(0, len(text), MAX_SECTION_TEXT)
    ]
    buttons = [
        {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}{i}",
            "text": {"type": "plain_text", "text": shorten(label, MAX_BUTTON_TEXT)},
            "value": label,
        }
        for i, label in enumerate(labels, 1)
    ]
    return [*sections, {"type": "actions", "elements": buttons}]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_form(request: web.Request) -> bool:
    return request.content_type == "application/x-www-form-urlencoded"


def _interaction(body: bytes) -> dict[str, Any]:
    """The JSON of an interaction request: Slack posts it form-encoded as ``payload=``."""
    payload = dict(form_pairs(body)).get("payload")
    if not payload:
        raise InputError("Slack interaction has no 'payload' field")
    return json_object(payload.encode())
