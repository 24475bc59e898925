"""Server-Sent Events from the event bus, their caps, and the route that issues agent tickets.

A stream is opened with a single-use ``?ticket=`` (``bot/api/tickets.py``), because
EventSource cannot send headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.api.common import STREAM_OWNER, bearer, principal, services
from bot.api.tickets import issue_ticket
from bot.auth import hash_secret
from bot.events import CLOSED, Event, EventBus

PING_SECONDS = 15.0

routes = web.RouteTableDef()


# -- tickets -------------------------------------------------------------------------------


@routes.post("/api/v1/agent/events/ticket")
async def agent_events_ticket(request: web.Request) -> web.Response:
    """A single-use ticket for ``GET /api/v1/agent/events?ticket=...`` (valid for seconds)."""
    await principal(request)
    svc = services(request)
    ttl = svc.settings.server.stream_ticket_s
    ticket = await issue_ticket(svc.db, ttl, api_key_hash=hash_secret(bearer(request)))
    return web.json_response({"ticket": ticket, "expires_in": ttl}, status=201)


# -- streams -------------------------------------------------------------------------------


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
