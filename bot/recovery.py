"""No customer message without an outcome: recovery of undecided messages, overload handoffs.

A customer message is stored before its reply is worked out; a process killed in between
leaves it without a decision. :func:`recover_once` finds such messages and answers each
exactly once, however many processes run it.

Claims make this safe: the process that stores a message claims it in the same row
(``reply_claimed_at``), and renews the claims of the replies it is still working on at every
pass (:func:`renew_claims`), so a slow reply is never taken from a live process. A message
whose claim has lapsed (``server.recovery_lease_s``: its process died), or that was never
claimed and is older than ``server.recovery_grace_s``, is taken with a conditional ``UPDATE``
which one process wins. Only conversations the bot still answers are looked at (an agent owns
a handed-off one), never imported history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, update
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
    stored_id,
    utcnow,
)

log = logging.getLogger("deskbot.recovery")

# Only messages this recent are looked at: older undecided ones were refused or left on purpose
# long ago, and the scan stays on the created_at index.
WINDOW = timedelta(days=2)
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


def _lapsed(now: Any, lease_s: float) -> Any:
    return col(Message.reply_claimed_at) < now - timedelta(seconds=lease_s)


async def claim(db: Any, message_id: int, lease_s: float) -> bool:
    """Take an undecided message whose claim (if any) has lapsed; True for the one winner."""
    now = utcnow()
    async with db.session() as s:
        result = await s.exec(
            update(Message)
            .where(
                col(Message.id) == message_id,
                col(Message.decision).is_(None),
                or_(col(Message.reply_claimed_at).is_(None), _lapsed(now, lease_s)),
            )
            .values(reply_claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)


async def renew_claims(db: Any, message_ids: set[int]) -> None:
    """Keep the claims of the replies this process is working on from lapsing."""
    if not message_ids:
        return
    async with db.session() as s:
        await s.exec(
            update(Message)
            .where(col(Message.id).in_(sorted(message_ids)), col(Message.decision).is_(None))
            .values(reply_claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def undecided(
    db: Any, grace_s: float, lease_s: float, limit: int = 200
) -> list[tuple[int, int]]:
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
                    Conversation.status == ConversationStatus.BOT,
                    Conversation.channel != IMPORT_CHANNEL,  # history, never answered
                    or_(
                        and_(
                            col(Message.reply_claimed_at).is_(None),
                            col(Message.created_at) <= now - timedelta(seconds=grace_s),
                        ),
                        _lapsed(now, lease_s),
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
    cfg = svc.settings.server
    await renew_claims(svc.db, set(svc.replying))
    for conv_id, message_id in await undecided(svc.db, cfg.recovery_grace_s, cfg.recovery_lease_s):
        if message_id in svc.replying or svc.closing:
            continue
        if not await claim(svc.db, message_id, cfg.recovery_lease_s):
            continue  # another process took it
        log.warning("answering message %s of conversation %s left undecided", message_id, conv_id)
        svc.replying.add(message_id)
        try:
            await svc.pipeline.handle(conv_id, message_id)
        except Exception:
            # The claim lapses after the lease and a later pass tries again.
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
            update(Message)
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
            update(Conversation)
            .where(col(Conversation.id) == conv.id)
            .values(status=ConversationStatus.HANDOFF, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        conv.status = ConversationStatus.HANDOFF
        queued = svc.connectors is not None and await svc.connectors.queue(s, conv, notice)
    if queued:
        svc.connectors.wake()
    topic = conversation_topic(stored_id(conv))
    await svc.bus.publish(topic, Event("message", message_json(notice)))
    await svc.bus.publish(topic, Event("status", {"status": ConversationStatus.HANDOFF.value}))
    await svc.bus.publish(AGENTS, Event("queue", {"reason": reason, "conversation_id": conv.id}))
    return notice
