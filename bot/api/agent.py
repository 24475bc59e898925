"""Agent routes: the review queue, conversations, suggestions, replies, live updates."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlmodel import col, select

from bot.api.common import (
    field,
    json_body,
    path_int,
    principal,
    services,
    text_field,
)
from bot.api.sse import stream_events
from bot.auth import Principal
from bot.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from bot.events import AGENTS, Event, conversation_topic
from bot.review import agent_reply, review_suggestion, set_owner
from bot.serialize import conversation_json, message_json, suggestion_json
from bot.services import Services
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Message,
    Role,
    Suggestion,
    SuggestionStatus,
    utcnow,
)

log = logging.getLogger("deskbot.api")
routes = web.RouteTableDef()


@routes.get("/api/v1/agent/me")
async def me(request: web.Request) -> web.Response:
    who = await principal(request)
    return web.json_response({"name": who.name, "role": who.role})


@routes.get("/api/v1/agent/queue")
async def queue(request: web.Request) -> web.Response:
    """Pending suggestions and handed-off conversations, oldest first."""
    await principal(request)
    async with services(request).db.session() as s:
        pending = (
            await s.exec(
                select(Suggestion)
                .where(Suggestion.status == SuggestionStatus.PENDING)
                .order_by(col(Suggestion.created_at), col(Suggestion.id))
                .limit(500)
            )
        ).all()
        handoffs = (
            await s.exec(
                select(Conversation)
                .where(Conversation.status == ConversationStatus.HANDOFF)
                .order_by(col(Conversation.updated_at))
                .limit(500)
            )
        ).all()
        conv_ids = {p.conversation_id for p in pending} | {c.id for c in handoffs}
        last: dict[int, Message] = {}
        # The preview is what the customer last said, not the bot's or a handoff notice.
        for m in (
            await s.exec(
                select(Message)
                .where(col(Message.conversation_id).in_(conv_ids), Message.role == Role.CUSTOMER)
                .order_by(col(Message.id))
            )
        ).all():
            last[m.conversation_id] = m
        convs = {c.id: c for c in handoffs}
        missing = conv_ids - set(convs)
        if missing:
            for c in (
                await s.exec(select(Conversation).where(col(Conversation.id).in_(missing)))
            ).all():
                convs[c.id] = c
    items = []
    for sug in pending:
        conv = convs[sug.conversation_id]
        items.append(
            {
                "kind": "suggestion",
                "conversation_id": sug.conversation_id,
                "suggestion": suggestion_json(sug),
                "last_message": message_json(last[sug.conversation_id]),
                "waiting_since": sug.created_at.isoformat(),
                "assigned_agent": conv.assigned_agent,
            }
        )
    for conv in handoffs:
        if conv.id not in last:
            continue
        items.append(
            {
                "kind": "handoff",
                "conversation_id": conv.id,
                "last_message": message_json(last[conv.id]),
                "waiting_since": conv.updated_at.isoformat(),
                "assigned_agent": conv.assigned_agent,
            }
        )
    items.sort(key=lambda item: item["waiting_since"])
    return web.json_response({"items": items})


@routes.get("/api/v1/agent/conversations/{conversation_id}")
async def conversation(request: web.Request) -> web.Response:
    await principal(request)
    conv_id = path_int(request, "conversation_id")
    async with services(request).db.session() as s:
        conv = await s.get(Conversation, conv_id)
        if conv is None:
            raise NotFoundError("no such conversation")
        messages = (
            await s.exec(
                select(Message).where(Message.conversation_id == conv_id).order_by(col(Message.id))
            )
        ).all()
        suggestions = (
            await s.exec(
                select(Suggestion)
                .where(Suggestion.conversation_id == conv_id)
                .order_by(col(Suggestion.id))
            )
        ).all()
    return web.json_response(
        {
            "conversation": conversation_json(conv),
            "messages": [message_json(m) for m in messages],
            "suggestions": [suggestion_json(x) for x in suggestions],
        }
    )


async def _check_owner(svc: Services, conv_id: int, who: Principal, what: str) -> None:
    """An agent acts only in a conversation nobody else has claimed; an admin anywhere."""
    if who.role == "admin":
        return
    async with svc.db.session() as s:
        conv = await s.get(Conversation, conv_id)
    if conv is None:
        raise NotFoundError("no such conversation")
    owner = conv.assigned_agent
    if owner is not None and owner != who.name and conv.status == ConversationStatus.HANDOFF:
        raise ForbiddenError(
            f"{owner} has claimed this conversation; to {what} here, take it over first "
            '(POST .../claim with {"takeover": true})'
        )


async def _take_over(svc: Services, conv_id: int, who: Principal) -> dict[str, object]:
    """Claim a conversation another agent holds, recording who took it from whom."""
    async with svc.db.session() as s:
        conv = await s.get(Conversation, conv_id, with_for_update=True)
        if conv is None:
            raise NotFoundError("no such conversation")
        if conv.status == ConversationStatus.CLOSED:
            raise ConflictError("this conversation is closed")
        previous = conv.assigned_agent if conv.status == ConversationStatus.HANDOFF else None
        if previous not in (None, who.name):
            entry = {"from": previous, "to": who.name, "role": who.role, "at": utcnow().isoformat()}
            conv.meta = {**conv.meta, "takeovers": [*conv.meta.get("takeovers", []), entry]}
            log.info("conversation %s taken over by %s from %s", conv_id, who.name, previous)
        conv.status = ConversationStatus.HANDOFF
        conv.assigned_agent = who.name
        conv.updated_at = utcnow()
        s.add(conv)
    await svc.bus.publish(conversation_topic(conv_id), Event("status", {"status": conv.status}))
    await svc.bus.publish(
        AGENTS,
        Event(
            "queue",
            {"reason": "takeover", "conversation_id": conv_id, "from": previous, "to": who.name},
        ),
    )
    return {**conversation_json(conv), "taken_over_from": previous}


@routes.post("/api/v1/agent/conversations/{conversation_id}/claim")
async def claim(request: web.Request) -> web.Response:
    """Claim a conversation; ``{"takeover": true}`` takes it from the agent holding it (the
    takeover is recorded in the conversation's ``meta.takeovers``)."""
    who = await principal(request)
    svc = services(request)
    conv_id = path_int(request, "conversation_id")
    body = await json_body(request) if (await request.read()).strip() else {}
    if field(body, "takeover", bool, required=False):
        return web.json_response(await _take_over(svc, conv_id, who))
    return web.json_response(await set_owner(svc, conv_id, who.name, take=True))


@routes.post("/api/v1/agent/conversations/{conversation_id}/takeover")
async def takeover(request: web.Request) -> web.Response:
    who = await principal(request)
    return web.json_response(
        await _take_over(services(request), path_int(request, "conversation_id"), who)
    )


@routes.post("/api/v1/agent/conversations/{conversation_id}/handback")
async def handback(request: web.Request) -> web.Response:
    who = await principal(request)
    svc = services(request)
    conv_id = path_int(request, "conversation_id")
    await _check_owner(svc, conv_id, who, "hand it back")
    return web.json_response(await set_owner(svc, conv_id, who.name, take=False))


@routes.post("/api/v1/agent/conversations/{conversation_id}/messages")
async def write(request: web.Request) -> web.Response:
    who = await principal(request)
    svc = services(request)
    conv_id = path_int(request, "conversation_id")
    body = await json_body(request)
    text = text_field(body, "text", svc.settings.server.max_message_chars)
    await _check_owner(svc, conv_id, who, "reply")
    message = await agent_reply(svc, conv_id, who.name, text)
    return web.json_response({"message": message_json(message)}, status=201)


async def _review(request: web.Request, action: str) -> web.Response:
    who = await principal(request)
    svc = services(request)
    sug_id = path_int(request, "suggestion_id")
    body = await json_body(request) if (await request.read()).strip() else {}
    limit = svc.settings.server.max_message_chars
    text = text_field(body, "text", limit, required=action == "edit")
    intent = field(body, "intent", str, required=False)
    reason = field(body, "reason", str, required=False)
    async with svc.db.session() as s:
        sug = await s.get(Suggestion, sug_id)
    if sug is not None:
        await _check_owner(svc, sug.conversation_id, who, "review its suggestions")
    done = await review_suggestion(
        svc, sug_id, who.name, action, text=text, intent=intent, reason=reason
    )
    out: dict[str, object] = {"suggestion": suggestion_json(done.suggestion)}
    if done.message is not None:
        out["message"] = message_json(done.message)
    return web.json_response(out)


@routes.post("/api/v1/agent/suggestions/{suggestion_id}/approve")
async def approve(request: web.Request) -> web.Response:
    return await _review(request, "approve")


@routes.post("/api/v1/agent/suggestions/{suggestion_id}/edit")
async def edit(request: web.Request) -> web.Response:
    return await _review(request, "edit")


@routes.post("/api/v1/agent/suggestions/{suggestion_id}/reject")
async def reject(request: web.Request) -> web.Response:
    return await _review(request, "reject")


@routes.post("/api/v1/agent/messages/{message_id}/label")
async def label(request: web.Request) -> web.Response:
    """Label a customer message with its true intent (e.g. one the bot handed off); training
    reads it from ``corrected_intent``."""
    await principal(request)
    svc = services(request)
    body = await json_body(request)
    intent = (field(body, "intent", str) or "").strip()
    if not intent or len(intent) > 128:
        raise InputError("'intent' must be 1 to 128 characters")
    async with svc.db.session() as s:
        message = await s.get(Message, path_int(request, "message_id"))
        if message is None:
            raise NotFoundError("no such message")
        if message.role != Role.CUSTOMER:
            raise InputError("only customer messages carry an intent label")
        message.corrected_intent = intent
        s.add(message)
    return web.json_response({"message": message_json(message)})


@routes.get("/api/v1/agent/events")
async def agent_events(request: web.Request) -> web.StreamResponse:
    """SSE for the console: queue changes and new messages (key in ?key= for EventSource)."""
    await principal(request, query_param="key")
    return await stream_events(request, services(request).bus, AGENTS)
