"""``X-Deskbot-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Several ``v1=`` values may be given (a sender rotating secrets); one match is enough. The
timestamp is signed, so a captured request cannot be replayed outside the window.
"""

from __future__ import annotations

import time

from bot.errors import AuthError
from connectors.signing import check_timestamp, hmac_sha256_hex, same

SIGNATURE_HEADER = "X-Deskbot-Signature"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac_sha256_hex(secret, str(timestamp).encode() + b"." + body)


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The header value for ``body``, signed now unless ``timestamp`` is given."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(secret, ts, body)}"


def verify_signature(secret: str, header: str | None, body: bytes, *, window_s: float) -> None:
    if not header:
        raise AuthError(f"missing {SIGNATURE_HEADER}")
    timestamp: str | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            macs.append(value)
    ts = check_timestamp(timestamp, window_s, header=f"{SIGNATURE_HEADER} t")
    expected = _mac(secret, ts, body)
    if not any(same(expected, mac) for mac in macs):  # every candidate compared, none early
        raise AuthError(f"wrong {SIGNATURE_HEADER}")
