"""Idempotent writes of conversations and messages.

A platform may deliver the same message twice, and two server processes may receive it at the
same moment. Inserts therefore go through ``INSERT ... ON CONFLICT DO NOTHING`` on the unique
(channel, external_id) keys, and the winner's row is read back: exactly one row results and
every caller learns whether it was the one that created it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Conversation, ConversationStatus, Message, utcnow


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


async def get_or_create_conversation(
    session: AsyncSession,
    channel: str,
    external_id: str,
    *,
    customer_external_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[Conversation, bool]:
    """The conversation a platform calls ``external_id`` on ``channel``, created if new."""
    now = utcnow()
    stmt = (
        _insert(session, Conversation)
        .values(
            channel=channel,
            external_id=external_id,
            customer_external_id=customer_external_id,
            status=ConversationStatus.BOT,
            meta=meta or {},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Conversation.id)
    )
    created_id = (await session.exec(stmt)).scalar_one_or_none()  # type: ignore[call-overload]
    row = (
        await session.exec(
            select(Conversation).where(
                Conversation.channel == channel, Conversation.external_id == external_id
            )
        )
    ).scalar_one()  # type: ignore[attr-defined]
    return row, created_id is not None


async def store_message(
    session: AsyncSession,
    conversation_id: int,
    channel: str,
    role: str,
    text: str,
    *,
    external_id: str | None = None,
    **fields: Any,
) -> tuple[Message, bool]:
    """Insert a message; with ``external_id`` a second delivery returns the first row, False."""
    values = {
        "conversation_id": conversation_id,
        "channel": channel,
        "role": role,
        "text": text,
        "external_id": external_id,
        "model_versions": fields.pop("model_versions", {}),
        "details": fields.pop("details", {}),
        "created_at": utcnow(),
        **fields,
    }
    if external_id is None:
        message = Message(**values)
        session.add(message)
        await session.flush()
        return message, True
    stmt = (
        _insert(session, Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Message.id)
    )
    created_id = (await session.exec(stmt)).scalar_one_or_none()  # type: ignore[call-overload]
    row = (
        await session.exec(
            select(Message).where(Message.channel == channel, Message.external_id == external_id)
        )
    ).scalar_one()  # type: ignore[attr-defined]
    return row, created_id is not None
