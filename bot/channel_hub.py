"""The server's side of chat platforms: inbound webhooks into the pipeline, replies out.

Inbound: a verified platform message is stored idempotently (a platform retry of the same
message id is stored once), acknowledged at once, and answered in a tracked background task.
Outbound: every reply shown to a platform customer (bot, approved suggestion, agent) goes
through the outbox, whose worker retries until the platform has it.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.events import AGENTS, Event
from bot.metrics import DEAD_LETTERS, INBOUND_DROPPED
from bot.recovery import hand_off, release_slot, reply_task, take_slot
from bot.serialize import message_json
from bot.services import Services
from bot.storage.deliveries import OutboxTable, enqueue, outbound_for
from bot.storage.messages import get_or_create_conversation, recent_turns, store_message
from bot.storage.models import Conversation, ConversationStatus, Message, Role, utcnow
from connectors.base import Connector, InboundMessage
from connectors.connector_set import ConnectorSet
from connectors.http import make_webhook_app
from connectors.outbox import DeliveryWorker
from connectors.quick_replies import quick_replies_meta

log = logging.getLogger("deskbot.channels")


class ChannelHub:
    def __init__(self, svc: Services, connectors: ConnectorSet) -> None:
        self.svc = svc
        self.connectors = connectors
        self.worker = DeliveryWorker(
            OutboxTable(svc.db),
            connectors,
            svc.settings.delivery,
            on_dead_letter=lambda reason: DEAD_LETTERS.labels(reason).inc(),
        )

    def webhook_app(self) -> web.Application:
        return make_webhook_app(self.connectors, self.on_inbound)

    async def start(self) -> None:
        await self.worker.start()

    async def on_inbound(self, connector: Connector, inbound: InboundMessage) -> bool:
        svc = self.svc
        cfg = svc.settings.server
        # The widget's limits hold here too. A refused message is acknowledged (a platform
        # retrying it would only be refused again) and stored nowhere.
        if len(inbound.text) > cfg.max_message_chars:
            INBOUND_DROPPED.labels("too_long").inc()
            log.warning(
                "%s: message of %d characters refused (limit %d)",
                connector.channel_key,
                len(inbound.text),
                cfg.max_message_chars,
            )
            return False
        wait = await svc.limiter.hit(
            f"chan:{connector.channel_key}:{inbound.external_conversation_id}",
            cfg.rate_limit_per_conversation,
            cfg.rate_limit_burst,
        )
        if wait > 0:
            INBOUND_DROPPED.labels("rate_limited").inc()
            log.warning(
                "%s: conversation over its rate limit; message refused", connector.channel_key
            )
            return False
        # A full server answers 503 before storing ("reject": the platform retries later) or
        # hands the message to an agent ("handoff").
        slot = take_slot(svc)
        try:
            async with svc.db.session() as s:
                conv, _ = await get_or_create_conversation(
                    s,
                    connector.channel_key,
                    inbound.external_conversation_id,
                    customer_external_id=inbound.customer_external_id,
                    meta={"customer_name": inbound.customer_name}
                    if inbound.customer_name
                    else None,
                )
                message, created = await store_message(
                    s,
                    conv.id,  # type: ignore[arg-type]
                    connector.channel_key,
                    Role.CUSTOMER,
                    inbound.text,
                    external_id=inbound.external_message_id,
                    reply_claimed_at=utcnow() if slot else None,  # see bot/recovery.py
                )
                history = await recent_turns(s, conv.id, message.id) if created else []  # type: ignore[arg-type]
                if created and slot:
                    svc.replying.add(message.id)  # type: ignore[arg-type]
        except BaseException:
            if slot:
                release_slot(svc)
            raise
        if not created:
            if slot:
                release_slot(svc)
            return False
        await svc.bus.publish(AGENTS, Event("message", message_json(message)))
        if not slot:
            if conv.status == ConversationStatus.BOT:
                await hand_off(svc, conv, message)
            return True

        async def reply() -> None:
            try:
                await svc.pipeline.handle(
                    conv.id,
                    message.id,
                    conversation=conv,
                    message=message,
                    history=history,
                )
            finally:
                release_slot(svc)

        reply_task(svc, message.id, reply())  # type: ignore[arg-type]
        return True

    async def queue(self, session: AsyncSession, conv: Conversation, message: Message) -> bool:
        """Put ``message`` in the outbox inside the caller's transaction (the one storing it).

        Storing a reply and queueing its delivery commit together, so a crash cannot lose one
        without the other. Call :meth:`wake` after the commit. Widget conversations, customer
        messages and system notices outside a handoff need no delivery: False.
        """
        if conv.channel not in self.connectors or message.role == Role.CUSTOMER:
            return False
        if message.role == Role.SYSTEM and conv.status != ConversationStatus.HANDOFF:
            return False
        reply_to = None
        source_id = (message.details or {}).get("reply_to")
        if isinstance(source_id, int):
            source = await session.get(Message, source_id)
            reply_to = source.external_id if source is not None else None
        meta = quick_replies_meta(message.details)
        outbound = outbound_for(conv, message.text, reply_to=reply_to, meta=meta)
        await enqueue(session, conv, message, outbound)
        return True

    def wake(self) -> None:
        """Tell the delivery worker that committed outbox rows are waiting."""
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
