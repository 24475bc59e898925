"""The outbox table: deliveries queued with the reply that needs them, and given up ones.

:func:`enqueue` adds a delivery inside the transaction that stores the reply, so a reply
exists if and only if its delivery does. :class:`OutboxTable` is the table as the delivery
worker (``connectors/outbox.py``) reads and claims it; :func:`dead_letters` and
:func:`retry_dead_letter` are the admins' view of deliveries it gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import ConflictError, InputError, NotFoundError
from bot.storage.db import Database
from bot.storage.models import (
    Conversation,
    Message,
    Outbox,
    OutboxStatus,
    stored_id,
    utcnow,
)
from connectors.base import OutboundMessage
from connectors.outbox import DueDelivery


def outbound_for(
    conversation: Conversation,
    text: str,
    *,
    reply_to: str | None = None,
    meta: dict[str, Any] | None = None,
) -> OutboundMessage:
    """A reply to ``conversation`` through the channel it came in on (bot or agent reply)."""
    if not conversation.external_id:
        raise InputError(
            f"conversation {conversation.id} on {conversation.channel!r} has no external id"
        )
    return OutboundMessage(
        channel=conversation.channel,
        conversation_external_id=conversation.external_id,
        text=text,
        reply_to=reply_to,
        meta=dict(meta or {}),
    )


async def enqueue(
    session: AsyncSession,
    conversation: Conversation,
    message: Message | None,
    outbound: OutboundMessage,
) -> Outbox:
    """Add a delivery in the caller's transaction; it becomes visible when that commits.

    Call the delivery worker's ``wake()`` after the commit to send it without waiting a poll.
    """
    if outbound.channel != conversation.channel:
        raise InputError(
            f"outbound channel {outbound.channel!r} differs from the conversation's "
            f"{conversation.channel!r}"
        )
    if not outbound.text.strip():
        raise InputError("outbound message text is empty")
    if conversation.id is None or (message is not None and message.id is None):
        await session.flush()
    row = Outbox(
        conversation_id=stored_id(conversation),
        message_id=message.id if message is not None else None,
        channel=conversation.channel,
        payload=outbound.to_payload(),
        status=OutboxStatus.PENDING,
        next_try_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class OutboxTable:
    """:class:`connectors.outbox.OutboxStore` on the ``outbox`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # SQLite has one writer: queueing our own writes here beats colliding in its busy
        # handler, which sleeps in steps of up to 100 ms.
        self._write_lock = asyncio.Lock() if db.is_sqlite else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_OutboxTransaction]:
        async with self._write_lock, self.db.session() as s:
            yield _OutboxTransaction(s, self.db.is_sqlite)


class _OutboxTransaction:
    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self.session = session
        self.is_sqlite = is_sqlite

    async def due(self, now: datetime, limit: int) -> list[DueDelivery]:
        earlier = aliased(Outbox)
        blocked = exists().where(
            col(earlier.conversation_id) == col(Outbox.conversation_id),
            col(earlier.id) < col(Outbox.id),
            col(earlier.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        query = (
            select(Outbox)
            .where(
                col(Outbox.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                Outbox.next_try_at <= now,
                ~blocked,
            )
            .order_by(col(Outbox.next_try_at), col(Outbox.id))
            .limit(limit)
        )
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True, of=Outbox)
        return [
            DueDelivery(
                id=stored_id(row),
                status=row.status,
                attempts=row.attempts,
                channel=row.channel,
                payload=dict(row.payload),
                created_at=_aware(row.created_at),
                last_error=row.last_error,
            )
            for row in (await self.session.exec(query)).all()
        ]

    async def update(
        self, delivery_id: int, seen_status: str, seen_attempts: int, **values: Any
    ) -> bool:
        result = await self.session.exec(
            update(Outbox)
            .where(
                and_(
                    col(Outbox.id) == delivery_id,
                    col(Outbox.status) == seen_status,
                    col(Outbox.attempts) == seen_attempts,
                )
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


async def dead_letters(db: Database, limit: int = 100) -> list[Outbox]:
    """Failed deliveries (attempts, deadline or permanent error), newest first."""
    async with db.session() as s:
        rows = (
            await s.exec(
                select(Outbox)
                .where(Outbox.status == OutboxStatus.FAILED)
                .order_by(col(Outbox.id).desc())
                .limit(limit)
            )
        ).all()
    return list(rows)


async def retry_dead_letter(db: Database, outbox_id: int) -> Outbox:
    """Send a failed delivery again from scratch: attempts and its deadline start over."""
    now = utcnow()
    async with db.session() as s:
        result = await s.exec(
            update(Outbox)
            .where(col(Outbox.id) == outbox_id, col(Outbox.status) == OutboxStatus.FAILED)
            .values(status=OutboxStatus.PENDING, attempts=0, next_try_at=now, created_at=now)
            .execution_options(synchronize_session=False)
        )
        row = await s.get(Outbox, outbox_id)
        if row is None:
            raise NotFoundError("no such delivery")
        if result.rowcount != 1:
            raise ConflictError(f"delivery {outbox_id} is {row.status}, not failed")
        await s.refresh(row)
    return row
