"""The generic webhook's signature: several v1 values, replays refused."""

from __future__ import annotations

import time

import pytest

from bot.errors import AuthError
from connectors.webhook.signature import sign, verify_signature


def test_webhook_signature_accepts_any_listed_v1_and_refuses_replays() -> None:
    body = b'{"text": "hi"}'
    good = sign("s" * 16, body)
    ts = good.split(",")[0]
    verify_signature("s" * 16, f"{ts},v1={'0' * 64},{good.split(',')[1]}", body, window_s=300)
    with pytest.raises(AuthError, match="replay window"):
        verify_signature(
            "s" * 16, sign("s" * 16, body, timestamp=int(time.time()) - 301), body, window_s=300
        )
    with pytest.raises(AuthError, match="missing"):
        verify_signature("s" * 16, None, body, window_s=300)
