"""Public widget routes: a customer's conversation, messages, live events and feedback.

Everything here is open to anyone on the internet: bodies, metadata and rates are capped,
and the JSON carries only the widget contract (:data:`WIDGET_MESSAGE_KEYS`), never agents'
key names or internal scores.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
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
    token_expired,
)
from bot.api.sse import stream_events
from bot.api.tickets import issue_ticket
from bot.auth import new_conversation_token, token_matches
from bot.errors import AuthError, ConflictError, GoneError, InputError, NotFoundError
from bot.events import AGENTS, Event, conversation_topic
from bot.privacy import minimise_client_meta
from bot.recovery import hand_off, reply_slot, reply_task
from bot.serialize import message_json
from bot.storage.messages import load_conversation, recent_turns, store_message
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Feedback,
    Message,
    Role,
    stored_id,
    utcnow,
)

WIDGET_CHANNEL = "widget"
# What the widget is shown of a message (bot/web/static/widget.js reads these).
WIDGET_MESSAGE_KEYS = (
    "id",
    "conversation_id",
    "role",
    "text",
    "created_at",
    "reply_to",
    "quick_replies",
)
WIDGET_REPLY_KEYS = ("id", "text", "status", "intent", "action", "quick_replies")
routes = web.RouteTableDef()


def widget_message(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in WIDGET_MESSAGE_KEYS}


def _widget_event(event: Event) -> dict[str, Any] | None:
    if event.type == "message" and isinstance(event.data, dict):
        return widget_message(event.data)
    return event.data


async def _ip_limit(request: web.Request) -> None:
    cfg = services(request).settings.server
    await rate_limit(
        request, f"ip:{client_ip(request)}", cfg.rate_limit_per_ip, int(cfg.rate_limit_per_ip * 2)
    )


def _widget_meta(body: dict[str, Any], allowed: list[str], limit: int) -> dict[str, Any]:
    """The client's ``meta``: allowlisted keys, scalar values, at most ``limit`` bytes of JSON."""
    meta = field(body, "meta", dict, required=False) or {}
    for key, value in meta.items():
        if key not in allowed:
            raise InputError(
                f"meta key {key!r} is not accepted; allowed: {', '.join(allowed) or 'none'}"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InputError(f"meta value {key!r} must be a string, number or boolean")
    size = len(json.dumps(meta, ensure_ascii=False).encode())
    if meta and size > limit:
        raise InputError(f"meta is {size} bytes of JSON; the limit is {limit}")
    return meta


@routes.post("/api/v1/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    """Start a conversation; the token it returns authorises this conversation only."""
    await _ip_limit(request)
    cfg = services(request).settings.server
    meta: dict[str, Any] = {}
    if request.can_read_body and (await request.read()).strip():
        body = await json_body(request)
        meta = _widget_meta(body, cfg.widget_meta_keys, cfg.widget_meta_bytes)
    token, token_hash = new_conversation_token()
    async with services(request).db.session() as s:
        conv = Conversation(
            channel=WIDGET_CHANNEL,
            external_id=uuid.uuid4().hex,
            token_hash=token_hash,
            # What is kept of the visitor follows privacy.client_ip and privacy.page_url.
            meta=minimise_client_meta(
                {"widget": meta, "ip": client_ip(request)}, services(request).settings
            ),
        )
        s.add(conv)
        await s.flush()
    return web.json_response({"id": conv.id, "token": token}, status=201)


def _refuse_closed(conv: Conversation) -> None:
    if conv.status == ConversationStatus.CLOSED:
        raise GoneError("this conversation is closed; start a new one", reason="closed")


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
    # A full server refuses (or hands off) before anything is stored: nothing queues unbounded.
    async with reply_slot(svc) as slot:
        async with svc.db.session() as s:
            conv = await load_conversation(s, conv_id)
            if conv is None or not token_matches(token, conv.token_hash):
                raise NotFoundError("no such conversation")
            if token_expired(conv, cfg.conversation_idle_days):
                raise AuthError("this conversation's token has expired; start a new conversation")
            _refuse_closed(conv)
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
                # Claimed for its reply here: recovery leaves it alone while this process lives.
                reply_claimed_at=utcnow() if slot else None,
            )
            history = await recent_turns(s, conv_id, stored_id(message)) if created else []
            if created and slot:
                svc.replying.add(message.id)  # before the commit: see bot.recovery.reply_task
        msg_json = widget_message(message_json(message))
        if not created:
            return web.json_response({"message": msg_json, "reply": None, "duplicate": True})
        await svc.bus.publish(conversation_topic(conv_id), Event("message", message_json(message)))
        await svc.bus.publish(AGENTS, Event("message", message_json(message)))
        if not slot:
            notice = await hand_off(svc, conv, message)
            reply: dict[str, Any] = {
                "id": notice.id,
                "text": notice.text,
                "status": "handoff",
                "intent": None,
            }
            return web.json_response({"message": msg_json, "reply": reply})
        # The reply runs as a tracked task: a client that disconnects does not cancel it, and
        # graceful shutdown waits for it.
        outcome = await reply_task(
            svc,
            stored_id(message),
            svc.pipeline.handle(
                conv_id,
                message.id,
                conversation=conv,
                message=message,
                history=history,
            ),
        )
    if outcome is None:
        reply = {"id": None, "text": None, "status": "handoff", "intent": None}
    else:
        full = outcome.as_json()
        reply = {k: full.get(k) for k in WIDGET_REPLY_KEYS}
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
    if not 0 <= after <= 2**62:
        raise InputError("'after' must be a message id")
    async with services(request).db.session() as s:
        rows = (
            await s.exec(
                select(Message)
                .where(Message.conversation_id == conv_id, col(Message.id) > after)
                .order_by(col(Message.id))
                .limit(500)
            )
        ).all()
    return web.json_response(
        {"messages": [widget_message(message_json(m)) for m in rows], "status": conv.status}
    )


@routes.post("/api/v1/conversations/{conversation_id}/close")
async def close_conversation(request: web.Request) -> web.Response:
    """End the conversation: it refuses new messages (410) and the widget starts a new one."""
    svc = services(request)
    conv_id = path_int(request, "conversation_id")
    await _ip_limit(request)
    await conversation_for_token(request, conv_id)
    async with svc.db.session() as s:
        await s.exec(
            update(Conversation)
            .where(col(Conversation.id) == conv_id)
            .values(status=ConversationStatus.CLOSED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    status = {"status": ConversationStatus.CLOSED.value}
    await svc.bus.publish(conversation_topic(conv_id), Event("status", status))
    await svc.bus.publish(AGENTS, Event("queue", {"reason": "closed", "conversation_id": conv_id}))
    return web.json_response({"id": conv_id, **status})


@routes.post("/api/v1/conversations/{conversation_id}/events/ticket")
async def conversation_events_ticket(request: web.Request) -> web.Response:
    """A single-use ticket for the conversation's event stream (valid for seconds)."""
    svc = services(request)
    conv_id = path_int(request, "conversation_id")
    await _ip_limit(request)
    await conversation_for_token(request, conv_id)
    ttl = svc.settings.server.stream_ticket_s
    ticket = await issue_ticket(svc.db, ttl, conversation_id=conv_id)
    return web.json_response({"ticket": ticket, "expires_in": ttl}, status=201)


@routes.get("/api/v1/conversations/{conversation_id}/events")
async def conversation_events(request: web.Request) -> web.StreamResponse:
    """SSE: reply tokens, new messages, typing and status changes (``?ticket=`` from a POST
    to ``events/ticket``, or the token in an Authorization header)."""
    conv_id = path_int(request, "conversation_id")
    await conversation_for_token(request, conv_id, query_param="token")
    return await stream_events(
        request, services(request).bus, conversation_topic(conv_id), transform=_widget_event
    )


@routes.post("/api/v1/messages/{message_id}/feedback")
async def feedback(request: web.Request) -> web.Response:
    """Thumbs or a 1-5 rating on a bot or agent message of the caller's conversation.

    One rating per message: a second one replaces the first.
    """
    svc = services(request)
    cfg = svc.settings.server
    message_id = path_int(request, "message_id")
    token = bearer(request)
    await _ip_limit(request)
    body = await json_body(request)
    rating_raw = field(body, "rating", (int, str))
    if rating_raw in ("up", "down"):
        rating = 5 if rating_raw == "up" else 1
    elif isinstance(rating_raw, int) and 1 <= rating_raw <= 5:
        rating = rating_raw
    else:
        raise InputError("'rating' must be 1 to 5, 'up' or 'down'")
    comment = text_field(body, "comment", cfg.max_message_chars, required=False)
    try:
        row, replaced = await _rate(svc, request, token, message_id, rating, comment)
    except IntegrityError:  # a concurrent first rating of the same message won
        raise ConflictError("this message was rated at the same moment; try again") from None
    return web.json_response({"id": row.id, "replaced": replaced}, status=200 if replaced else 201)


async def _rate(
    svc: Any, request: web.Request, token: str, message_id: int, rating: int, comment: str | None
) -> tuple[Feedback, bool]:
    cfg = svc.settings.server
    async with svc.db.session() as s:
        message = await s.get(Message, message_id)
        conv = await s.get(Conversation, message.conversation_id) if message else None
        if message is None or conv is None or not token_matches(token, conv.token_hash):
            raise NotFoundError("no such message")
        if token_expired(conv, cfg.conversation_idle_days):
            raise AuthError("this conversation's token has expired; start a new conversation")
        if message.role not in (Role.BOT, Role.AGENT):
            raise InputError("feedback is for bot and agent replies")
        await rate_limit(
            request, f"feedback:{conv.id}", cfg.feedback_per_conversation, cfg.feedback_burst
        )
        row = (
            await s.exec(
                select(Feedback).where(Feedback.message_id == message_id).with_for_update()
            )
        ).first()
        replaced = row is not None
        if row is None:
            row = Feedback(message_id=message_id, rating=rating, comment=comment)
        else:
            row.rating, row.comment, row.created_at = rating, comment, utcnow()
        s.add(row)
        await s.flush()
    return row, replaced
