"""No customer message without an outcome: recovery of undecided messages, overload handoffs.

A customer message is stored before its reply is worked out; a process killed in between
leaves it without a decision. :func:`recover_once` finds such messages and answers each
exactly once, however many processes run it: a message is taken with a conditional
``UPDATE`` (``decision IS NULL`` and no live claim), which one process wins. It runs at
start-up and every ``server.recovery_interval_s``.

Which messages count as abandoned: older than ``server.recovery_grace_s`` (another process may
still be replying to a younger one), in a conversation the bot still answers (an agent owns a
handed-off one), and not being replied to by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select

from bot.errors import OverloadedError
from bot.events import AGENTS, Event, conversation_topic
from bot.importer import IMPORT_CHANNEL
from bot.metrics import OVERLOADED, RECOVERED
from bot.serialize import message_json
from bot.storage.messages import insert_message
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Message,
    Role,
    utcnow,
)

log = logging.getLogger("deskbot.recovery")

# Only messages this recent are looked at: older undecided ones were refused or left on purpose
# long ago, and the scan stays on the created_at index.
WINDOW = timedelta(days=2)
# A recovery claim is its process's for this long; a process that died mid-recovery leaves
# the message to be claimed again after it.
CLAIM_LEASE = timedelta(minutes=5)
OVERLOAD_NOTICE = (
    "We're very busy right now, so I've passed your message to our support team. "
    "An agent will reply here soon."
)


def take_slot(svc: Any) -> bool:
    """Take one of the process's reply slots (``server.max_replies_in_flight``).

    True with a slot taken (give it back with :func:`release_slot`). When every slot is
    taken: OverloadedError (503 with Retry-After) under ``server.overload = "reject"``, else
    False (the caller hands the message to an agent instead). Nothing waits in a queue.
    """
    cfg = svc.settings.server
    if svc.replies_in_flight >= cfg.max_replies_in_flight:
        OVERLOADED.labels(cfg.overload).inc()
        if cfg.overload == "reject":
            raise OverloadedError(
                "the server is busy; retry shortly", retry_after=cfg.overload_retry_after_s
            )
        return False
    svc.replies_in_flight += 1
    return True


def release_slot(svc: Any) -> None:
    svc.replies_in_flight -= 1


@contextlib.asynccontextmanager
async def reply_slot(svc: Any) -> AsyncIterator[bool]:
    """:func:`take_slot` for the length of a block."""
    slot = take_slot(svc)
    try:
        yield slot
    finally:
        if slot:
            release_slot(svc)


def reply_task(svc: Any, message_id: int, coro: Coroutine[Any, Any, Any]) -> Any:
    """Spawn a reply for a just-stored message, marked in flight so recovery leaves it alone.

    Call it inside the transaction that stores the message (before the commit), so no
    recovery pass can see the message committed but not yet marked.
    """

    async def run() -> Any:
        try:
            return await coro
        finally:
            svc.replying.discard(message_id)

    svc.replying.add(message_id)
    return svc.spawn(run(), name=f"reply-{message_id}")


async def claim(db: Any, message_id: int) -> bool:
    """Take an undecided message for recovery; True for the one process that wins it."""
    now = utcnow()
    async with db.session() as s:
        result = await s.exec(
            update(Message)  # type: ignore[call-overload]
            .where(
                col(Message.id) == message_id,
                col(Message.decision).is_(None),
                or_(
                    col(Message.reply_claimed_at).is_(None),
                    col(Message.reply_claimed_at) < now - CLAIM_LEASE,
                ),
            )
            .values(reply_claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)


async def undecided(db: Any, grace_s: float, limit: int = 200) -> list[tuple[int, int]]:
    """``(conversation_id, message_id)`` of abandoned customer messages, oldest first."""
    now = utcnow()
    async with db.session() as s:
        rows = (
            await s.exec(
                select(Message.conversation_id, Message.id)
                .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
                .where(
                    Message.role == Role.CUSTOMER,
                    col(Message.decision).is_(None),
                    col(Message.created_at) >= now - WINDOW,
                    col(Message.created_at) <= now - timedelta(seconds=grace_s),
                    Conversation.status == ConversationStatus.BOT,
                    Conversation.channel != IMPORT_CHANNEL,  # history, never answered
                    or_(
                        col(Message.reply_claimed_at).is_(None),
                        col(Message.reply_claimed_at) < now - CLAIM_LEASE,
                    ),
                )
                .order_by(col(Message.id))
                .limit(limit)
            )
        ).all()
    return [(int(c), int(m)) for c, m in rows]


async def recover_once(svc: Any) -> int:
    """Answer every abandoned message this process can claim; how many it answered."""
    answered = 0
    grace = svc.settings.server.recovery_grace_s
    for conv_id, message_id in await undecided(svc.db, grace):
        if message_id in svc.replying or svc.closing:
            continue
        if not await claim(svc.db, message_id):
            continue  # another process took it
        log.warning("answering message %s of conversation %s left undecided", message_id, conv_id)
        svc.replying.add(message_id)
        try:
            await svc.pipeline.handle(conv_id, message_id)
        except Exception:
            # The claim lapses after CLAIM_LEASE and a later pass tries again.
            log.exception("recovering message %s failed", message_id)
            continue
        finally:
            svc.replying.discard(message_id)
        RECOVERED.inc()
        answered += 1
    return answered


async def run_recovery(svc: Any, every_s: float) -> None:
    """Recover at start-up, then every ``every_s`` seconds (0: start-up only)."""
    while True:
        try:
            await recover_once(svc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("recovery pass failed")
        if every_s <= 0:
            return
        await asyncio.sleep(every_s)


async def hand_off(
    svc: Any, conv: Conversation, message: Message, reason: str = "overloaded"
) -> Message:
    """Give a stored customer message to the agents without a bot reply (the overload path).

    Records the decision, a notice to the customer and the handoff in one transaction, the
    way the reply pipeline records its own handoffs.
    """
    async with svc.db.session() as s:
        await s.exec(
            update(Message)  # type: ignore[call-overload]
            .where(col(Message.id) == message.id, col(Message.decision).is_(None))
            .values(decision="handoff", details={"decision_reason": reason})
            .execution_options(synchronize_session=False)
        )
        notice = await insert_message(
            s,
            {
                "conversation_id": conv.id,
                "channel": conv.channel,
                "role": Role.SYSTEM,
                "text": OVERLOAD_NOTICE,
                "decision": "handoff",
                "model_versions": {},
                "details": {"reason": reason, "reply_to": message.id},
                "created_at": utcnow(),
            },
        )
        await s.exec(
            update(Conversation)  # type: ignore[call-overload]
            .where(col(Conversation.id) == conv.id)
            .values(status=ConversationStatus.HANDOFF, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        conv.status = ConversationStatus.HANDOFF
        queued = svc.connectors is not None and await svc.connectors.queue(s, conv, notice)
    if queued:
        svc.connectors.wake()
    topic = conversation_topic(conv.id)  # type: ignore[arg-type]
    await svc.bus.publish(topic, Event("message", message_json(notice)))
    await svc.bus.publish(topic, Event("status", {"status": ConversationStatus.HANDOFF.value}))
    await svc.bus.publish(AGENTS, Event("queue", {"reason": reason, "conversation_id": conv.id}))
    return notice
