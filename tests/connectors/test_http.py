"""The webhook app itself: unknown channels, wrong methods, and a failing store."""

from __future__ import annotations

from typing import Any

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
