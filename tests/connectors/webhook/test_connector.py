"""The generic webhook beyond the shared flow: signed replies with a stable delivery id,
numbered text and structured choices."""

from __future__ import annotations

from typing import Any

from connectors.webhook.signature import verify_signature
from tests.connectors.fakes import eventually
from tests.connectors.harness import (
    CASE,
    LABELS,
    NUMBERED,
    Harness,
    offer,
)


async def test_webhook_reply_is_signed_with_a_stable_delivery_id(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["webhook"])
    h.fake.fail_next(503, {"error": "busy"})
    assert (await h.post_valid()).status == 200
    await eventually(lambda: len(h.fake.requests) == 2)
    first, second = h.fake.requests
    assert first.headers["X-Deskbot-Delivery"] == second.headers["X-Deskbot-Delivery"]
    verify_signature(
        "webhook-secret-0123456789", second.headers["X-Deskbot-Signature"], second.body, window_s=60
    )
    assert second.json()["reply_to"] == "msg-20240101-0001"


async def test_webhook_posts_numbered_text_and_the_structured_choices(make_harness: Any) -> None:
    h: Harness = await make_harness(CASE["webhook"], quick_replies=LABELS)
    sent = (await offer(h)).json()
    assert sent["text"] == "echo: Where is my order?" + NUMBERED
    assert sent["quick_replies"] == LABELS
    assert sent["meta"] == {"quick_replies": LABELS}
