"""Public widget routes: a customer's conversation, messages, live events and feedback."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlmodel import col, select

from bot.api.common import (
    bearer,
    client_ip,
    conversation_for_token,
    field,
    json_body,
    path_int,
    rate_limit,
    services,
    text_field,
)
from bot.api.sse import stream_events
from bot.auth import new_conversation_token, token_matches
from bot.errors import InputError, NotFoundError
from bot.events import AGENTS, Event, conversation_topic
from bot.serialize import message_json
from bot.storage.messages import load_conversation, recent_turns, store_message
from bot.storage.models import Conversation, ConversationStatus, Feedback, Message, Role

WIDGET_CHANNEL = "widget"
routes = web.RouteTableDef()


async def _ip_limit(request: web.Request) -> None:
    cfg = services(request).settings.server
    await rate_limit(
        request, f"ip:{client_ip(request)}", cfg.rate_limit_per_ip, int(cfg.rate_limit_per_ip * 2)
    )


@routes.post("/api/v1/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    """Start a conversation; the token it returns authorises this conversation only."""
    await _ip_limit(request)
    meta = {}
    if request.can_read_body and (await request.read()).strip():
        body = await json_body(request)
        meta = field(body, "meta", dict, required=False) or {}
    token, token_hash = new_conversation_token()
    async with services(request).db.session() as s:
        conv = Conversation(
            channel=WIDGET_CHANNEL,
            external_id=uuid.uuid4().hex,
            token_hash=token_hash,
            meta={"widget": meta, "ip": client_ip(request)},
        )
        s.add(conv)
        await s.flush()
    return web.json_response({"id": conv.id, "token": token}, status=201)


@routes.post("/api/v1/conversations/{conversation_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    """Store the customer's message, then answer it (or queue it for an agent)."""
    svc = services(request)
    cfg = svc.settings.server
    conv_id = path_int(request, "conversation_id")
    token = bearer(request)
    await _ip_limit(request)
    body = await json_body(request)
    text = text_field(body, "text", cfg.max_message_chars)
    assert text is not None
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not 0 < len(idem) <= 200:
        raise InputError("Idempotency-Key must be 1 to 200 characters")
    async with svc.db.session() as s:
        conv = await load_conversation(s, conv_id)
        if conv is None or not token_matches(token, conv.token_hash):
            raise NotFoundError("no such conversation")
        if conv.status == ConversationStatus.CLOSED:
            raise InputError("this conversation is closed; start a new one")
        await rate_limit(
            request, f"conv:{conv_id}", cfg.rate_limit_per_conversation, cfg.rate_limit_burst
        )
        message, created = await store_message(
            s,
            conv_id,
            WIDGET_CHANNEL,
            Role.CUSTOMER,
            text,
            external_id=f"{conv_id}:{idem}" if idem else None,
        )
        history = await recent_turns(s, conv_id, message.id) if created else []  # type: ignore[arg-type]
    msg_json = message_json(message)
    if not created:
        return web.json_response({"message": msg_json, "reply": None, "duplicate": True})
    await svc.bus.publish(conversation_topic(conv_id), Event("message", msg_json))
    await svc.bus.publish(AGENTS, Event("message", msg_json))
    # The reply runs as a tracked task: a client that disconnects does not cancel it, and
    # graceful shutdown waits for it.
    outcome = await svc.spawn(
        svc.pipeline.handle(
            conv_id,
            message.id,  # type: ignore[arg-type]
            conversation=conv,
            message=message,
            history=history,
        ),
        name=f"reply-{message.id}",
    )
    if outcome is None:
        reply = {"id": None, "text": None, "status": "handoff", "intent": None, "confidence": None}
    else:
        reply = outcome.as_json()
    return web.json_response({"message": msg_json, "reply": reply})


@routes.get("/api/v1/conversations/{conversation_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    conv_id = path_int(request, "conversation_id")
    conv = await conversation_for_token(request, conv_id)
    after_raw = request.query.get("after", "0")
    try:
        after = int(after_raw)
    except ValueError:
        raise InputError(f"'after' must be a message id, got {after_raw!r}") from None
    async with services(request).db.session() as s:
        rows = (
            await s.exec(
                select(Message)
                .where(Message.conversation_id == conv_id, Message.id > after)
                .order_by(col(Message.id))
                .limit(500)
            )
        ).all()
    return web.json_response({"messages": [message_json(m) for m in rows], "status": conv.status})


@routes.get("/api/v1/conversations/{conversation_id}/events")
async def conversation_events(request: web.Request) -> web.StreamResponse:
    """SSE: reply tokens, new messages, typing and status changes (token in ?token=)."""
    conv_id = path_int(request, "conversation_id")
    await conversation_for_token(request, conv_id, query_param="token")
    return await stream_events(request, services(request).bus, conversation_topic(conv_id))


@routes.post("/api/v1/messages/{message_id}/feedback")
async def feedback(request: web.Request) -> web.Response:
    """Thumbs or a 1-5 rating on a bot or agent message of the caller's conversation."""
    svc = services(request)
    message_id = path_int(request, "message_id")
    body = await json_body(request)
    rating_raw = field(body, "rating", (int, str))
    if rating_raw in ("up", "down"):
        rating = 5 if rating_raw == "up" else 1
    elif isinstance(rating_raw, int) and 1 <= rating_raw <= 5:
        rating = rating_raw
    else:
        raise InputError("'rating' must be 1 to 5, 'up' or 'down'")
    comment = text_field(body, "comment", svc.settings.server.max_message_chars, required=False)
    token = request.headers.get("Authorization", "")[7:].strip()
    async with svc.db.session() as s:
        message = await s.get(Message, message_id)
        conv = await s.get(Conversation, message.conversation_id) if message else None
        if message is None or conv is None or not token_matches(token, conv.token_hash):
            raise NotFoundError("no such message")
        if message.role not in (Role.BOT, Role.AGENT):
            raise InputError("feedback is for bot and agent replies")
        row = Feedback(message_id=message_id, rating=rating, comment=comment)
        s.add(row)
        await s.flush()
    return web.json_response({"id": row.id}, status=201)
