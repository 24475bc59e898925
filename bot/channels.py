"""The server's side of chat platforms: inbound webhooks into the pipeline, replies out.

Inbound: a verified platform message is stored idempotently (a platform retry of the same
message id is stored once), acknowledged at once, and answered in a tracked background task.
Outbound: every reply shown to a platform customer (bot, approved suggestion, agent) goes
through the outbox, whose worker retries until the platform has it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.events import AGENTS, Event
from bot.serialize import message_json
from bot.services import Services
from bot.storage.messages import get_or_create_conversation, store_message
from bot.storage.models import Conversation, ConversationStatus, Message, Role
from connectors.base import Connector, InboundMessage
from connectors.channels import ConnectorSet
from connectors.http import make_webhook_app
from connectors.outbox import DeliveryWorker, enqueue, outbound_for

log = logging.getLogger("deskbot.channels")


class ChannelHub:
    def __init__(self, svc: Services, connectors: ConnectorSet) -> None:
        self.svc = svc
        self.connectors = connectors
        self.worker = DeliveryWorker(svc.db, connectors, svc.settings.delivery)

    def webhook_app(self) -> web.Application:
        return make_webhook_app(self.connectors, self.on_inbound)

    async def start(self) -> None:
        await self.worker.start()

    async def on_inbound(self, connector: Connector, inbound: InboundMessage) -> bool:
        svc = self.svc
        async with svc.db.session() as s:
            conv, _ = await get_or_create_conversation(
                s,
                connector.channel_key,
                inbound.external_conversation_id,
                customer_external_id=inbound.customer_external_id,
                meta={"customer_name": inbound.customer_name} if inbound.customer_name else None,
            )
            message, created = await store_message(
                s,
                conv.id,  # type: ignore[arg-type]
                connector.channel_key,
                Role.CUSTOMER,
                inbound.text,
                external_id=inbound.external_message_id,
            )
        if created:
            await svc.bus.publish(AGENTS, Event("message", message_json(message)))
            svc.spawn(
                svc.pipeline.handle(conv.id, message.id), name=f"reply-{connector.channel_key}"
            )
        return created

    async def deliver(self, conv: Conversation, message: Message) -> None:
        """Queue ``message`` for the conversation's platform (widget messages need nothing)."""
        if conv.channel not in self.connectors or message.role == Role.CUSTOMER:
            return
        if message.role == Role.SYSTEM and conv.status != ConversationStatus.HANDOFF:
            return
        async with self.svc.db.session() as s:
            reply_to = None
            source_id = (message.details or {}).get("reply_to")
            if isinstance(source_id, int):
                source = await s.get(Message, source_id)
                reply_to = source.external_id if source is not None else None
            await enqueue(s, conv, message, outbound_for(conv, message.text, reply_to=reply_to))
        self.worker.wake()

    async def close(self) -> None:
        await self.worker.stop(grace_s=5.0)
        await self.connectors.close()


def attach(app: web.Application, svc: Services) -> ChannelHub | None:
    """Mount ``/webhooks/<connector>/<channel>`` when channels are configured."""
    connectors = ConnectorSet.from_settings(svc.settings.connectors)
    if not len(connectors):
        return None
    hub = ChannelHub(svc, connectors)
    app.add_subapp("/webhooks/", hub.webhook_app())
    return hub


__all__ = ["ChannelHub", "attach"]
