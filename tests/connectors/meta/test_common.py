"""What Messenger and WhatsApp share: the GET handshake with the verify token."""

from __future__ import annotations

from typing import Any

import pytest

from tests.connectors.harness import (
    CASE,
    Harness,
)


@pytest.mark.parametrize("name", ["messenger", "whatsapp"])
async def test_meta_get_handshake_echoes_the_challenge_for_the_right_token(
    make_harness: Any, name: str
) -> None:
    h: Harness = await make_harness(CASE[name])
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "meta-verify-0123456789",
        "hub.challenge": "1158201444",
    }
    resp = await h.client.get(h.path, params=query)
    assert resp.status == 200
    assert await resp.text() == "1158201444"
    resp = await h.client.get(h.path, params={**query, "hub.verify_token": "guess"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
