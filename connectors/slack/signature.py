"""Slack request signing, v0: ``v0=`` + hex HMAC-SHA256(signing secret, ``v0:{ts}:{body}``)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import AuthError
from connectors.signing import check_timestamp, hmac_sha256_hex, same

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


def slack_signature(secret: str, timestamp: str | int, body: bytes) -> str:
    return "v0=" + hmac_sha256_hex(secret, b"v0:" + str(timestamp).encode() + b":" + body)


def verify_slack(
    secret: str, headers: Mapping[str, str], body: bytes, *, window_s: float = 300.0
) -> None:
    """Raise ``AuthError`` unless the request is signed and fresh (replays are refused)."""
    ts = check_timestamp(headers.get(TIMESTAMP_HEADER), window_s, header=TIMESTAMP_HEADER)
    if not same(slack_signature(secret, ts, body), headers.get(SIGNATURE_HEADER)):
        raise AuthError(f"missing or wrong {SIGNATURE_HEADER}")
