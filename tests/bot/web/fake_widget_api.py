"""A small real aiohttp server speaking the widget half of the API, with knobs the real server
does not offer a test: replies streamed slowly token by token, event streams dropped or refused
on demand. It records what the widget sent. The pages themselves come from the real routes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.web import add_page_routes

TOKEN = "fake-token"
CONV_ID = 7


@dataclass
class FakeWidgetApi:
    reply_pieces: tuple[str, ...] = ("Hello", " there", ", friend!")
    piece_delay_s: float = 0.4
    messages: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    after_values: list[int] = field(default_factory=list)
    stream_opens: int = 0
    refuse_streams: int = 0  # answer the next N event-stream requests with 503
    # Set: after streaming its pieces, a reply waits for this event, then answers that the
    # draft went to review (the test publishes what the server would meanwhile).
    hold_for_review: asyncio.Event | None = None
    _streams: list[asyncio.Queue[str | None]] = field(default_factory=list)
    _tickets: set[str] = field(default_factory=set)
    _tickets_issued: int = 0

    def add_message(self, role: str, text: str) -> dict[str, Any]:
        message = {
            "id": len(self.messages) + 1,
            "conversation_id": CONV_ID,
            "role": role,
            "text": text,
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.messages.append(message)
        return message

    def publish(self, event: str, data: dict[str, Any]) -> None:
        chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in self._streams:
            queue.put_nowait(chunk)

    def drop_streams(self) -> int:
        """End every open event stream, as a network drop would."""
        dropped = len(self._streams)
        for queue in self._streams:
            queue.put_nowait(None)
        return dropped

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # -- handlers ------------------------------------------------------------------------

    def _check(self, request: web.Request, token: str | None = None) -> None:
        given = token if token is not None else request.headers.get("Authorization", "")[7:]
        if given != TOKEN:
            raise web.HTTPUnauthorized()

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response({"id": CONV_ID, "token": TOKEN}, status=201)

    async def post_message(self, request: web.Request) -> web.Response:
        self._check(request)
        body = await request.json()
        mine = self.add_message("customer", body["text"])
        self.publish("typing", {"who": "bot", "on": True})
        for piece in self.reply_pieces:
            await asyncio.sleep(self.piece_delay_s)
            self.publish("token", {"reply_to": mine["id"], "text": piece})
        if self.hold_for_review is not None:
            await self.hold_for_review.wait()
            self.publish("typing", {"who": "bot", "on": False})
            review = {"id": None, "text": None, "status": "pending_review"}
            return web.json_response(
                {"message": mine, "reply": {**review, "intent": None, "confidence": None}}
            )
        reply = self.add_message("bot", "".join(self.reply_pieces))
        reply["reply_to"] = mine["id"]
        self.publish("message", reply)
        self.publish("typing", {"who": "bot", "on": False})
        return web.json_response(
            {
                "message": mine,
                "reply": {
                    "id": reply["id"],
                    "text": reply["text"],
                    "status": "sent",
                    "intent": "greeting",
                    "confidence": 0.9,
                },
            }
        )

    async def list_messages(self, request: web.Request) -> web.Response:
        self._check(request)
        after = int(request.query.get("after", "0"))
        self.after_values.append(after)
        return web.json_response(
            {"messages": [m for m in self.messages if m["id"] > after], "status": "bot"}
        )

    async def ticket(self, request: web.Request) -> web.Response:
        self._check(request)
        self._tickets_issued += 1
        ticket = f"ticket-{self._tickets_issued}"
        self._tickets.add(ticket)
        return web.json_response({"ticket": ticket, "expires_in": 60}, status=201)

    async def events(self, request: web.Request) -> web.StreamResponse:
        # Like the real server: a single-use ticket, never the token, opens the stream.
        ticket = request.query.get("ticket", "")
        if "token" in request.query or ticket not in self._tickets:
            raise web.HTTPUnauthorized()
        self._tickets.discard(ticket)
        if self.refuse_streams > 0:
            self.refuse_streams -= 1
            raise web.HTTPServiceUnavailable()
        self.stream_opens += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"retry: 300\n\n")
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._streams.append(queue)
        try:
            while (chunk := await queue.get()) is not None:
                await response.write(chunk.encode())
        finally:
            self._streams.remove(queue)
        return response

    async def rate(self, request: web.Request) -> web.Response:
        self._check(request)
        body = await request.json()
        self.feedback.append({"message_id": int(request.match_info["mid"]), **body})
        return web.json_response({"id": len(self.feedback)}, status=201)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/conversations", self.create)
        app.router.add_post("/api/v1/conversations/{cid}/messages", self.post_message)
        app.router.add_get("/api/v1/conversations/{cid}/messages", self.list_messages)
        app.router.add_get("/api/v1/conversations/{cid}/events", self.events)
        app.router.add_post("/api/v1/conversations/{cid}/events/ticket", self.ticket)
        app.router.add_post("/api/v1/messages/{mid}/feedback", self.rate)
        add_page_routes(app)

        async def end_streams(app: web.Application) -> None:
            self.drop_streams()

        app.on_shutdown.append(end_streams)
        return app
