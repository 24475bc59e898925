"""The connector test harness: an echo ``on_inbound`` storing into a temp database, a
webhook app, a delivery worker and a fake platform wired together."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import func, select

from bot.storage.db import Database
from bot.storage.deliveries import OutboxTable, enqueue, outbound_for
from bot.storage.messages import get_or_create_conversation, store_message
from bot.storage.models import Message, Outbox, Role
from connectors.base import Connector, InboundMessage
from connectors.config import DeliverySettings
from connectors.connector_set import ConnectorSet
from connectors.outbox import DeliveryWorker
from connectors.quick_replies import quick_replies_meta
from tests.connectors.fakes import CASES, Case, FakePlatform, Recorded, eventually

FAST_DELIVERY = DeliverySettings(
    max_attempts=6,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    lease_s=4.0,
    poll_interval_s=0.02,
    batch_size=20,
)


def echo_on_inbound(
    db: Database, wake: Callable[[], None], quick_replies: list[str] | None = None
) -> Callable[..., Awaitable[bool]]:
    """Stores the customer message and an echo reply with its outbox row, in one transaction,
    idempotently on the platform's message id (what the server's pipeline will do). With
    ``quick_replies``, the echo offers them, queued as ``ChannelHub.queue`` does."""

    async def on_inbound(connector: Connector, msg: InboundMessage) -> bool:
        async with db.session() as s:
            conv, _ = await get_or_create_conversation(
                s,
                msg.channel,
                msg.external_conversation_id,
                customer_external_id=msg.customer_external_id,
            )
            _, created = await store_message(
                s,
                conv.id,
                msg.channel,
                Role.CUSTOMER,
                msg.text,
                external_id=msg.external_message_id,
            )
            if not created:
                return False
            reply = Message(
                conversation_id=conv.id,
                channel=msg.channel,
                role=Role.BOT,
                text=f"echo: {msg.text}",
                details={"quick_replies": quick_replies} if quick_replies else {},
            )
            s.add(reply)
            await s.flush()
            outbound = outbound_for(
                conv,
                reply.text,
                reply_to=msg.external_message_id,
                meta=quick_replies_meta(reply.details),
            )
            await enqueue(s, conv, reply, outbound)
        wake()
        return True

    return on_inbound


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as s:
        return (await s.exec(select(func.count()).select_from(model).where(*where))).one()


async def outbox_rows(db: Database) -> list[Outbox]:
    async with db.session() as s:
        return list((await s.exec(select(Outbox).order_by(Outbox.id))).all())


@dataclass
class Harness:
    case: Case
    db: Database
    fake: FakePlatform
    connectors: ConnectorSet
    client: TestClient
    worker: DeliveryWorker
    fake_server: TestServer | None
    base_url: str
    path: str
    inbound_calls: list[InboundMessage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.client.make_url(self.path))

    async def post(self, body: bytes, headers: dict[str, str]) -> Any:
        return await self.client.post(self.path, data=body, headers=headers)

    async def post_valid(self, **extra_headers: str) -> Any:
        body = self.case.body()
        headers = {**self.case.sign(body, self.url), **extra_headers}
        return await self.post(body, headers)

    async def restart_worker(self, settings: DeliverySettings = FAST_DELIVERY) -> None:
        """Stop the worker and start a new instance on the same database (a restart)."""
        await self.worker.stop()
        self.worker = DeliveryWorker(OutboxTable(self.db), self.connectors, settings)
        await self.worker.start()


async def customer_messages(db: Database) -> int:
    return await count(db, Message, Message.role == Role.CUSTOMER)


# Shared by the per-platform test files.

CASE = {c.connector: c for c in CASES}

LABELS = ["Cancel an order", "Change an order", "Something else"]

# The second label is longer than Messenger's and WhatsApp's 20-character button titles.
LONG_LABELS = ["Cancel an order", "Change the delivery address", "Something else"]

NUMBERED = "\n\n1. Cancel an order\n2. Change an order\n3. Something else\nReply with a number."


async def post_payload(h: Harness, data: dict[str, Any], **extra: str) -> Any:
    """Post ``data`` signed, as the platform sends it (a form or JSON)."""
    body = urlencode(data).encode() if h.case.form else json.dumps(data).encode()
    return await h.post(body, {**h.case.sign(body, h.url), **extra})


async def outbox_status(h: Harness, status: str) -> Any:
    """The outbox rows once every one has ``status``, else None (for ``eventually``)."""
    rows = await outbox_rows(h.db)
    return rows if rows and all(r.status == status for r in rows) else None


async def offer(h: Harness) -> Recorded:
    """The customer writes; the echo reply, offering the harness's quick replies, is sent."""
    assert (await h.post_valid()).status == 200
    await eventually(lambda: h.fake.requests)
    return h.fake.requests[0]


async def post_json(h: Harness, data: dict[str, Any]) -> Any:
    body = json.dumps(data).encode()
    return await h.post(body, h.case.sign(body, h.url))


async def answered(h: Harness, n: int) -> Recorded:
    """The ``n``-th send (1-based): the echo of the ``n``-th customer message."""
    await eventually(lambda: len(h.fake.requests) >= n)
    return h.fake.requests[n - 1]
