"""Stream tickets: single-use credentials that open one event stream.

EventSource cannot send headers, so a stream is opened with ``?ticket=``: a credential valid
for seconds, issued by an authenticated POST. No widget token or API key ever appears in a
URL (where proxies and browser histories would keep it).
"""

from __future__ import annotations

import secrets
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col, select

from bot.auth import Principal, hash_secret
from bot.errors import AuthError
from bot.storage.db import Database
from bot.storage.models import ApiKey, StreamTicket, utcnow


async def issue_ticket(
    db: Database,
    ttl_s: float,
    *,
    conversation_id: int | None = None,
    api_key_hash: str | None = None,
) -> str:
    """A new ticket for one stream; only its hash is stored."""
    ticket = "stk_" + secrets.token_urlsafe(24)
    now = utcnow()
    async with db.session() as s:
        # Expired tickets are useless: each issue sweeps them, so the table stays small.
        await s.exec(
            delete(StreamTicket).where(col(StreamTicket.expires_at) < now - timedelta(minutes=5))
        )
        s.add(
            StreamTicket(
                ticket_hash=hash_secret(ticket),
                conversation_id=conversation_id,
                api_key_hash=api_key_hash,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )
    return ticket


async def redeem_ticket(db: Database, ticket: str) -> StreamTicket:
    """Use a ticket once; AuthError when it is unknown, expired or already used.

    The use is a conditional update, so two processes racing for one ticket cannot both win.
    """
    now = utcnow()
    digest = hash_secret(ticket)
    async with db.session() as s:
        row = (await s.exec(select(StreamTicket).where(StreamTicket.ticket_hash == digest))).first()
        if row is None or row.used_at is not None or _aware(row.expires_at) <= now:
            raise AuthError("invalid, expired or used stream ticket; request a new one")
        result = await s.exec(
            update(StreamTicket)
            .where(col(StreamTicket.id) == row.id, col(StreamTicket.used_at).is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise AuthError("invalid, expired or used stream ticket; request a new one")
    return row


async def principal_for_ticket(db: Database, ticket: StreamTicket) -> Principal:
    """The agent or admin whose key was shown to issue ``ticket``, if that key is still active."""
    if ticket.api_key_hash is None:
        raise AuthError("this stream ticket is not for the agent stream")
    async with db.session() as s:
        row = (
            await s.exec(
                select(ApiKey).where(
                    ApiKey.key_hash == ticket.api_key_hash,
                    ApiKey.active == True,  # noqa: E712
                )
            )
        ).first()
    if row is None:
        raise AuthError("unknown or revoked API key")
    return Principal(name=row.name, role=row.role)  # type: ignore[arg-type]


def _aware(value: Any) -> Any:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
