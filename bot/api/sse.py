"""Server-Sent Events from the event bus, their caps, and the tickets that open them.

EventSource cannot send headers, so a stream is opened with ``?ticket=``: a single-use
credential valid for seconds, issued by an authenticated POST. No widget token or API key
ever appears in a URL (where proxies and browser histories would keep it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, update
from sqlmodel import col, select

from bot.auth import Principal, hash_secret
from bot.errors import AuthError, RateLimitedError
from bot.events import CLOSED, Event, EventBus
from bot.storage.db import Database
from bot.storage.models import ApiKey, StreamTicket, utcnow

PING_SECONDS = 15.0
STREAM_OWNER = web.RequestKey("stream_owner", str)  # who a stream counts against

routes = web.RouteTableDef()


# -- tickets -------------------------------------------------------------------------------


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
            delete(StreamTicket).where(col(StreamTicket.expires_at) < now - timedelta(minutes=5))  # type: ignore[call-overload]
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
            update(StreamTicket)  # type: ignore[call-overload]
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
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@routes.post("/api/v1/agent/events/ticket")
async def agent_events_ticket(request: web.Request) -> web.Response:
    """A single-use ticket for ``GET /api/v1/agent/events?ticket=...`` (valid for seconds)."""
    from bot.api.common import bearer, principal, services

    await principal(request)
    svc = services(request)
    ttl = svc.settings.server.stream_ticket_s
    ticket = await issue_ticket(svc.db, ttl, api_key_hash=hash_secret(bearer(request)))
    return web.json_response({"ticket": ticket, "expires_in": ttl}, status=201)


# -- streams -------------------------------------------------------------------------------


class StreamCounter:
    """Open streams per owner (a conversation or an API key) and in all, in one process."""

    def __init__(self) -> None:
        self.total = 0
        self.by_owner: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, owner: str, per_owner: int, total: int) -> Any:
        if self.total >= total:
            raise RateLimitedError("too many open event streams on this server", retry_after=5)
        if self.by_owner.get(owner, 0) >= per_owner:
            raise RateLimitedError(
                f"at most {per_owner} open event streams per conversation or key; close one",
                retry_after=5,
            )
        self.total += 1
        self.by_owner[owner] = self.by_owner.get(owner, 0) + 1
        try:
            yield
        finally:
            self.total -= 1
            left = self.by_owner[owner] - 1
            if left:
                self.by_owner[owner] = left
            else:
                del self.by_owner[owner]


async def stream_events(
    request: web.Request,
    bus: EventBus,
    topic: str,
    *,
    transform: Callable[[Event], dict[str, Any] | None] | None = None,
) -> web.StreamResponse:
    """Stream ``topic`` until the client leaves or the server shuts down.

    ``transform`` turns an event into the data the client may see (None: skip the event).
    """
    from bot.api.common import services

    svc = services(request)
    cfg = svc.settings.server
    owner = request.get(STREAM_OWNER) or topic
    with svc.streams.hold(owner, cfg.max_streams_per_conversation, cfg.max_streams):
        return await _stream(request, bus, topic, transform)


async def _stream(
    request: web.Request,
    bus: EventBus,
    topic: str,
    transform: Callable[[Event], dict[str, Any] | None] | None,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    # Subscribe before the headers go out, so no event published after the client sees the
    # stream open can be missed.
    async with bus.subscribe(topic) as events:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        iterator = events.__aiter__()
        # One pending read survives the ping timeouts: cancelling an async generator's
        # __anext__ would close the generator and end the stream.
        pending: asyncio.Future[Event] = asyncio.ensure_future(iterator.__anext__())
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=PING_SECONDS)
                if not done:
                    chunk = b": ping\n\n"
                else:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        break
                    if event.type == CLOSED:
                        break
                    pending = asyncio.ensure_future(iterator.__anext__())
                    shown = event.data if transform is None else transform(event)
                    if shown is None:
                        continue
                    data = json.dumps(shown, default=str, ensure_ascii=False)
                    chunk = f"event: {event.type}\ndata: {data}\n\n".encode()
                try:
                    await response.write(chunk)
                except (ConnectionResetError, RuntimeError):
                    break
        finally:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
