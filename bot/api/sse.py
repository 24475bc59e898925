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
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    async with bus.subscribe(topic) as events:
        iterator = events.__aiter__()
        while True:
            try:
                event: Event = await asyncio.wait_for(iterator.__anext__(), PING_SECONDS)
            except TimeoutError:
                chunk = b": ping\n\n"
            except StopAsyncIteration:
                break
            else:
                if event.type == CLOSED:
                    break
                data = json.dumps(event.data, default=str, ensure_ascii=False)
                chunk = f"event: {event.type}\ndata: {data}\n\n".encode()
            try:
                await response.write(chunk)
            except (ConnectionResetError, RuntimeError):
                break
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
