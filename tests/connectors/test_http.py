"""The webhook app itself: unknown channels, wrong methods, body caps, a failing store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.registration import get_connector_class
from tests.connectors.fakes import CASES, Case
from tests.connectors.harness import CASE, Harness


async def test_unknown_channel_is_404_and_post_only_platforms_refuse_get(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(CASE["telegram"])
    resp = await h.client.post("/webhooks/telegram/nope", data=b"{}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await h.client.get(h.path)
    assert resp.status == 405


async def test_a_failing_store_is_500_so_the_platform_retries(db: Any, aiohttp_client: Any) -> None:
    from aiohttp import web

    from connectors.connector_set import ConnectorSet
    from connectors.http import make_webhook_app
    from connectors.registration import build_channel_config

    case = CASE["webhook"]
    config = build_channel_config("webhook", case.options("http://127.0.0.1:9"))
    connectors = ConnectorSet.from_configs({"main": ("webhook", config)})

    async def broken(connector: Any, msg: Any) -> bool:
        raise RuntimeError("database is down")

    app = web.Application()
    app.add_subapp("/webhooks/", make_webhook_app(connectors, broken))
    client = await aiohttp_client(app)
    body = case.body()
    resp = await client.post("/webhooks/webhook/main", data=body, headers=case.sign(body, "unused"))
    assert resp.status == 500
    assert "database is down" not in await resp.text()  # no internals leak
    await connectors.close()


def padded(case: Case, size: int) -> bytes:
    """The platform's recorded payload padded to exactly ``size`` bytes, still valid: JSON
    takes trailing spaces, a form one more field."""
    body = case.body() + (b"&Pad=" if case.form else b"")
    assert len(body) <= size
    return body + (b"x" if case.form else b" ") * (size - len(body))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.connector)
async def test_a_body_one_byte_past_the_platform_cap_is_413(make_harness: Any, case: Case) -> None:
    h: Harness = await make_harness(case)
    cap = get_connector_class(case.connector).max_body_bytes
    fits = padded(case, cap)
    assert (await h.post(fits, case.sign(fits, h.url))).status == 200
    over = padded(case, cap + 1)
    resp = await h.post(over, case.sign(over, h.url))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "request_entity_too_large"
    assert len(h.inbound_calls) == 1  # only the body that fit


async def test_a_streamed_body_without_length_is_cut_off_at_the_cap(make_harness: Any) -> None:
    case = CASE["webhook"]
    h: Harness = await make_harness(case)
    over = padded(case, get_connector_class("webhook").max_body_bytes + 1)

    async def chunks() -> AsyncIterator[bytes]:  # sent chunked: no Content-Length to refuse
        for start in range(0, len(over), 4096):
            yield over[start : start + 4096]

    resp = await h.client.post(h.path, data=chunks(), headers=case.sign(over, h.url))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "request_entity_too_large"
    assert h.inbound_calls == []
