"""Fake chat platforms for the connector tests: real local aiohttp servers.

Each :class:`FakePlatform` records every request it gets and answers like the platform's
send API, or with scripted faults (``fail_next``). A :class:`Case` bundles, for one platform,
how to sign a webhook, which payload to post and how to read the reply back out of a
recorded send.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from connectors.meta.common import meta_signature
from connectors.slack.signature import slack_signature
from connectors.twilio.signature import twilio_signature
from connectors.webhook.signature import sign as webhook_sign

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def eventually(check: Callable[[], Any], *, within_s: float = 5.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(0.01)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakePlatform:
    """Records requests; answers with queued faults first, then ``ok(request)``."""

    def __init__(self, ok: Callable[[Recorded], tuple[int, Any]]) -> None:
        self.ok = ok
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.faults.append(Fault(status, body, headers or {}))

    async def _handle(self, request: web.Request) -> web.Response:
        rec = Recorded(
            request.method,
            request.path_qs,
            dict(request.headers),
            await request.read(),
            time.monotonic(),
        )
        self.requests.append(rec)
        if self.faults:
            fault = self.faults.pop(0)
            return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        status, body = self.ok(rec)
        return web.json_response(body, status=status)


@dataclass
class Case:
    """One platform as the shared webhook → outbox → send tests drive it."""

    connector: str
    options: Callable[[str], dict[str, Any]]  # fake platform base URL -> channel options
    payload_file: str
    ok: Callable[[Recorded], tuple[int, Any]]
    reply_of: Callable[[Recorded], str]  # the reply text in a recorded send
    recipient_of: Callable[[Recorded], str]
    expected_recipient: str
    rate_limited: Fault  # the platform's 429, asking to wait 1 s
    server_error: Fault
    timestamped: bool = False  # whether the signature carries a timestamp (replay window)
    signs_body: bool = True  # Telegram only sends a shared secret, no body signature
    form: bool = False

    @property
    def text(self) -> str:
        data = payload(self.payload_file)
        return _find_text(data)

    def body(self) -> bytes:
        data = payload(self.payload_file)
        if self.form:
            return urlencode(data).encode()
        return json.dumps(data).encode()

    def sign(self, body: bytes, url: str, *, age_s: float = 0) -> dict[str, str]:
        """The headers the platform would send with ``body`` posted to ``url``."""
        opts = self.options("http://unused")
        ts = int(time.time() - age_s)
        if self.connector == "telegram":
            return {"X-Telegram-Bot-Api-Secret-Token": opts["secret_token"]}
        if self.connector == "slack":
            return {
                "X-Slack-Request-Timestamp": str(ts),
                "X-Slack-Signature": slack_signature(opts["signing_secret"], ts, body),
            }
        if self.connector in ("messenger", "whatsapp"):
            return {"X-Hub-Signature-256": meta_signature(opts["app_secret"], body)}
        if self.connector == "twilio":
            params = parse_qsl(body.decode(), keep_blank_values=True)
            return {
                "X-Twilio-Signature": twilio_signature(opts["auth_token"], url, params),
                "Content-Type": "application/x-www-form-urlencoded",
            }
        if self.connector == "webhook":
            return {"X-Deskbot-Signature": webhook_sign(opts["secret"], body, timestamp=ts)}
        raise AssertionError(self.connector)

    def forged(self, body: bytes, url: str) -> dict[str, str]:
        """Headers signed with the wrong secret."""
        headers = self.sign(body, url)
        name = next(k for k in headers if k != "Content-Type")
        value = headers[name]
        headers[name] = value[:-6] + ("AAAAAA" if not value.endswith("AAAAAA") else "BBBBBB")
        return headers


def _find_text(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("text", "Body", "body"):
            if isinstance(data.get(key), str):
                return data[key]
        for value in data.values():
            found = _find_text(value)
            if found:
                return found
    if isinstance(data, list):
        for value in data:
            found = _find_text(value)
            if found:
                return found
    return ""


def _telegram_ok(rec: Recorded) -> tuple[int, Any]:
    sent = rec.json()
    return 200, {
        "ok": True,
        "result": {
            "message_id": 1366,
            "date": int(time.time()),
            "chat": {"id": int(sent["chat_id"]), "type": "private"},
            "text": sent["text"],
        },
    }


def _slack_ok(rec: Recorded) -> tuple[int, Any]:
    sent = rec.json()
    return 200, {
        "ok": True,
        "channel": sent["channel"],
        "ts": "1503435956.000247",
        "message": {"text": sent["text"], "type": "message", "bot_id": "B123ABC456"},
    }


def _messenger_ok(rec: Recorded) -> tuple[int, Any]:
    return 200, {"recipient_id": rec.json()["recipient"]["id"], "message_id": "m_AG5Hz2Uq7tuwNEhX"}


def _whatsapp_ok(rec: Recorded) -> tuple[int, Any]:
    to = rec.json()["to"]
    return 200, {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}],
    }


def _twilio_ok(rec: Recorded) -> tuple[int, Any]:
    form = rec.form()
    return 201, {
        "sid": "SM1f0e8ae6ade43cb3c0ce4525424e4041",
        "status": "queued",
        "to": form["To"],
        "from": form.get("From"),
        "body": form["Body"],
        "direction": "outbound-api",
        "api_version": "2010-04-01",
    }


def _webhook_ok(rec: Recorded) -> tuple[int, Any]:
    return 200, {"message_id": "remote-1"}


GRAPH_THROTTLED = {
    "error": {
        "message": "(#613) Calls to this api have exceeded the rate limit.",
        "type": "OAuthException",
        "code": 613,
        "fbtrace_id": "AbCdEf",
    }
}
GRAPH_DOWN = {
    "error": {
        "message": "An unexpected error has occurred. Please retry your request later.",
        "type": "OAuthException",
        "is_transient": True,
        "code": 2,
        "fbtrace_id": "AbCdEg",
    }
}

CASES = [
    Case(
        connector="telegram",
        options=lambda base: {
            "bot_token": "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
            "secret_token": "tg-secret_Token-1",
            "api_base": base,
        },
        payload_file="telegram/message.json",
        ok=_telegram_ok,
        reply_of=lambda r: r.json()["text"],
        recipient_of=lambda r: str(r.json()["chat_id"]),
        expected_recipient="1111111",
        rate_limited=Fault(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            },
        ),
        server_error=Fault(
            500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        ),
        signs_body=False,
    ),
    Case(
        connector="slack",
        options=lambda base: {
            "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
            "bot_token": "xoxb-test-token-0123456789",
            "api_base": base,
            "bot_user_id": "UBOT00001",
        },
        payload_file="slack/message_im.json",
        ok=_slack_ok,
        reply_of=lambda r: r.json()["text"],
        recipient_of=lambda r: r.json()["channel"],
        expected_recipient="D024BE91L",
        rate_limited=Fault(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        server_error=Fault(503, {"ok": False, "error": "service_unavailable"}),
        timestamped=True,
    ),
    Case(
        connector="messenger",
        options=lambda base: {
            "app_secret": "meta-app-secret-0123456789",
            "verify_token": "meta-verify-0123456789",
            "access_token": "EAAGpage0123456789",
            "api_base": base,
        },
        payload_file="meta/messenger_message.json",
        ok=_messenger_ok,
        reply_of=lambda r: r.json()["message"]["text"],
        recipient_of=lambda r: r.json()["recipient"]["id"],
        expected_recipient="6543210987654321",
        rate_limited=Fault(429, GRAPH_THROTTLED, {"Retry-After": "1"}),
        server_error=Fault(500, GRAPH_DOWN),
    ),
    Case(
        connector="whatsapp",
        options=lambda base: {
            "app_secret": "meta-app-secret-0123456789",
            "verify_token": "meta-verify-0123456789",
            "access_token": "EAAGwa0123456789",
            "api_base": base,
            "phone_number_id": "106540352242922",
        },
        payload_file="meta/whatsapp_text.json",
        ok=_whatsapp_ok,
        reply_of=lambda r: r.json()["text"]["body"],
        recipient_of=lambda r: r.json()["to"],
        expected_recipient="16505551234",
        rate_limited=Fault(
            429,
            {
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "code": 130429,
                    "type": "OAuthException",
                    "fbtrace_id": "x",
                }
            },
            {"Retry-After": "1"},
        ),
        server_error=Fault(500, GRAPH_DOWN),
    ),
    Case(
        connector="twilio",
        options=lambda base: {
            "account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "auth_token": "twilio-auth-token",
            "from_number": "+15017122661",
            "api_base": base,
        },
        payload_file="twilio/sms.json",
        ok=_twilio_ok,
        reply_of=lambda r: r.form()["Body"],
        recipient_of=lambda r: r.form()["To"],
        expected_recipient="+14155552671",
        rate_limited=Fault(
            429,
            {
                "code": 20429,
                "message": "Too Many Requests",
                "more_info": "https://www.twilio.com/docs/errors/20429",
                "status": 429,
            },
            {"Retry-After": "1"},
        ),
        server_error=Fault(500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
        form=True,
    ),
    Case(
        connector="webhook",
        options=lambda base: {
            "secret": "webhook-secret-0123456789",
            "callback_url": f"{base}/deskbot/replies",
        },
        payload_file="webhook/message.json",
        ok=_webhook_ok,
        reply_of=lambda r: r.json()["text"],
        recipient_of=lambda r: r.json()["conversation_id"],
        expected_recipient="conv-42",
        rate_limited=Fault(429, {"error": "slow down"}, {"Retry-After": "1"}),
        server_error=Fault(502, {"error": "bad gateway"}),
        timestamped=True,
    ),
]
