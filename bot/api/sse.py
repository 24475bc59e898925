"""Server-Sent Events from the event bus."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from bot.events import CLOSED, Event, EventBus

PING_SECONDS = 15.0


async def stream_events(request: web.Request, bus: EventBus, topic: str) -> web.StreamResponse:
    """Stream ``topic`` until the client leaves or the server shuts down."""
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
                    data = json.dumps(event.data, default=str, ensure_ascii=False)
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
