"""Idempotent writes of conversations and messages.

A platform may deliver the same message twice, and two server processes may receive it at the
same moment. Inserts therefore go through ``INSERT ... ON CONFLICT DO NOTHING`` on the unique
(channel, external_id) keys, and the winner's row is read back: exactly one row results and
every caller learns whether it was the one that created it.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Conversation, ConversationStatus, Message, table_of, utcnow


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
    created_id = (await session.exec(stmt)).scalar_one_or_none()
    row = (
        await session.exec(
            select_rows(Conversation).where(
                col(Conversation.channel) == channel, col(Conversation.external_id) == external_id
            )
        )
    ).one()
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
        return await insert_message(session, values), True
    stmt = (
        _insert(session, Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Message.id)
    )
    created_id = (await session.exec(stmt)).scalar_one_or_none()
    row = (
        await session.exec(
            select_rows(Message).where(
                col(Message.channel) == channel, col(Message.external_id) == external_id
            )
        )
    ).one()
    return row, created_id is not None


# How many earlier messages the reply path reads (prompt history and retrieval context).
HISTORY_TURNS = 12


async def insert_message(session: AsyncSession, values: dict[str, Any]) -> Message:
    """Insert one message row with a Core statement and return it as a detached ``Message``.

    The reply path stores two messages per customer message; through the ORM's unit of work
    an insert cost several times what the statement itself does.
    """
    conn = await session.connection()
    new_id = (await conn.execute(_INSERT_MESSAGE, values)).scalar_one()
    return Message(id=new_id, **values)


# Built once: a statement with its values inline is rebuilt, re-coerced and re-keyed for the
# compiled cache on every call, which cost more than executing it.
_INSERT_MESSAGE = insert(Message).returning(col(Message.id))


async def recent_turns(
    session: AsyncSession, conversation_id: int, before_id: int, limit: int = HISTORY_TURNS
) -> list[tuple[str, str]]:
    """``(role, text)`` of the conversation's last ``limit`` messages before ``before_id``.

    Oldest first. Reads two columns, not whole rows: the reply path needs only these, and
    building ORM objects for a dozen messages cost more than the query itself.
    """
    conn = await session.connection()
    rows = (
        await conn.execute(
            _recent_turns_statement(limit), {"conv_id": conversation_id, "before_id": before_id}
        )
    ).all()
    return [(str(role), str(text)) for role, text in reversed(rows)]


@functools.lru_cache(maxsize=8)
def _recent_turns_statement(limit: int) -> Select[str, str]:
    return (
        select(col(Message.role), col(Message.text))
        .where(
            col(Message.conversation_id) == bindparam("conv_id"),
            col(Message.id) < bindparam("before_id"),
        )
        .order_by(col(Message.id).desc())
        .limit(limit)
    )


async def load_conversation(session: AsyncSession, conversation_id: int) -> Conversation | None:
    """The conversation row as a detached ``Conversation`` (read-only use), or None."""
    conn = await session.connection()
    row = (await conn.execute(_CONVERSATION_BY_ID, {"conv_id": conversation_id})).first()
    return Conversation(**row._mapping) if row is not None else None


_CONVERSATION_BY_ID = select(table_of(Conversation)).where(
    table_of(Conversation).c.id == bindparam("conv_id")
)
