"""HMAC helpers shared by the platforms' signature checks; every comparison is constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from bot.errors import AuthError


def hmac_sha256_hex(key: str, data: bytes) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def hmac_sha1_b64(key: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), data, hashlib.sha1).digest()).decode()


def same(expected: str, given: str | None) -> bool:
    """Constant-time equality of two strings; a missing value never matches."""
    if given is None:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def check_timestamp(raw: str | None, window_s: float, *, header: str) -> int:
    """Parse a unix timestamp header and refuse one outside the replay window."""
    if raw is None or not raw.strip():
        raise AuthError(f"missing {header} header")
    try:
        ts = int(raw.strip())
    except ValueError:
        raise AuthError(f"{header} is not a unix timestamp") from None
    if abs(time.time() - ts) > window_s:
        raise AuthError(f"{header} is outside the {window_s:g}s replay window")
    return ts
