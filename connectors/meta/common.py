"""What Messenger and WhatsApp share: the signature, the GET handshake and Graph errors.

Quirks: one app has one callback URL per product, verified once by a GET with
``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge`` (echo the challenge as
plain text); every POST is signed with ``X-Hub-Signature-256: sha256=<hex HMAC of the raw
body with the app secret>`` (Meta escapes non-ASCII as ``\\uXXXX``, so only the raw bytes
verify); one POST may batch several entries and messages. Graph errors are
``{"error": {"code", "message"}}``; throttling codes come with HTTP 400 or 429.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.errors import AuthError, ForbiddenError
from connectors.base import Connector
from connectors.meta.config import MetaConfig
from connectors.sending import ApiResponse, call_api, raise_for_status, short
from connectors.signing import hmac_sha256_hex, same

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Graph error codes that clear with time: unknown/service errors and rate limits
# (app, user, page, WhatsApp pair and throughput limits).
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131048, 131056})


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256_hex(app_secret, body)


class MetaConnector(Connector):
    config: MetaConfig
    # One POST may batch several messages, each with its non-ASCII escaped.
    max_body_bytes = 256 * 1024

    async def verify(self, request: web.Request, body: bytes) -> None:
        if not same(
            meta_signature(self.config.app_secret, body), request.headers.get(SIGNATURE_HEADER)
        ):
            raise AuthError(f"missing or wrong {SIGNATURE_HEADER}")

    async def handshake(self, request: web.Request, body: bytes) -> web.Response | None:
        if request.method != "GET":
            return None
        q = request.query
        if q.get("hub.mode") != "subscribe" or not same(
            self.config.verify_token, q.get("hub.verify_token")
        ):
            raise ForbiddenError("hub.mode must be 'subscribe' with the channel's verify_token")
        return web.Response(text=q.get("hub.challenge", ""), content_type="text/plain")

    async def post_graph(self, path: str, body: dict[str, Any]) -> ApiResponse:
        resp = await call_api(
            self.http,
            "POST",
            self.config.graph_url(path),
            json=body,
            headers={"Authorization": f"Bearer {self.config.access_token}"},
            platform=self.name,
        )
        if 200 <= resp.status < 300:
            return resp
        error = resp.data.get("error") if isinstance(resp.data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        retryable = None if resp.status >= 429 else (code in RETRYABLE_CODES)
        raise_for_status(
            resp,
            platform=self.name,
            detail=f"({code}) {error.get('message')}" if error else short(resp.data),
            retryable=retryable,
        )


def result_id(resp: ApiResponse, *path: str) -> str | None:
    value: Any = resp.data
    for step in path:
        if isinstance(value, list):
            value = value[0] if value else None
        value = value.get(step) if isinstance(value, dict) else None
    return str(value) if value is not None else None
