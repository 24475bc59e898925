"""Fixtures for the connector tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.storage.db import Database
from bot.storage.deliveries import OutboxTable
from connectors.base import Connector, InboundMessage
from connectors.config import DeliverySettings
from connectors.connector_set import ConnectorSet
from connectors.http import make_webhook_app
from connectors.outbox import DeliveryWorker
from connectors.registration import get_connector_class
from tests.connectors.fakes import Case, FakePlatform
from tests.connectors.harness import FAST_DELIVERY, Harness, echo_on_inbound

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
async def db(tmp_path: Any) -> AsyncIterator[Database]:
    database = Database("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def make_harness(
    db: Database, aiohttp_client: Any, aiohttp_server: Any
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def make(
        case: Case,
        *,
        fake_port: int | None = None,
        start_fake: bool = True,
        settings: DeliverySettings = FAST_DELIVERY,
        quick_replies: list[str] | None = None,
    ) -> Harness:
        fake = FakePlatform(case.ok)
        server = None
        if start_fake:
            server = await aiohttp_server(fake.app, port=fake_port)
            base = str(server.make_url("")).rstrip("/")
        else:
            base = f"http://127.0.0.1:{fake_port}"
        config = get_connector_class(case.connector).config_class.from_options(case.options(base))
        connectors = ConnectorSet.from_configs({"main": (case.connector, config)})
        holder: dict[str, Harness] = {}

        def wake() -> None:
            holder["h"].worker.wake()

        inner = echo_on_inbound(db, wake, quick_replies)
        calls: list[InboundMessage] = []

        async def on_inbound(connector: Connector, msg: InboundMessage) -> bool:
            calls.append(msg)
            return await inner(connector, msg)

        app = web.Application()
        app.add_subapp("/webhooks/", make_webhook_app(connectors, on_inbound))
        client = await aiohttp_client(app)
        worker = DeliveryWorker(OutboxTable(db), connectors, settings)
        await worker.start()
        harness = Harness(
            case,
            db,
            fake,
            connectors,
            client,
            worker,
            server,
            base,
            f"/webhooks/{case.connector}/main",
            calls,
        )
        holder["h"] = harness
        made.append(harness)
        return harness

    yield make
    for h in made:
        await h.worker.stop()
        await h.connectors.close()
