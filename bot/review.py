"""What agents do: review suggestions, write replies, take over and hand back.

An approved or edited reply is delivered on the conversation's channel as written and becomes a
knowledge pair (the customer's question → the agent's final text), added to the live index at
once. The pair is scrubbed first (:mod:`bot.scrub`): personal data in either text becomes a
typed placeholder, so nothing one customer or agent typed reaches another customer.
An intent correction is stored on the customer's message, where training reads it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from bot.errors import ConflictError, InputError, NotFoundError
from bot.events import AGENTS, Event, conversation_topic
from bot.importer import add_pair
from bot.scrub import Scrubber
from bot.serialize import conversation_json, message_json
from bot.services import Services
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Message,
    Role,
    Suggestion,
    SuggestionStatus,
    stored_id,
    utcnow,
)

log = logging.getLogger("deskbot.review")


@dataclass(frozen=True, slots=True)
class Reviewed:
    suggestion: Suggestion
    message: Message | None


def _check_intent(intent: str | None) -> str | None:
    if intent is None:
        return None
    intent = intent.strip()
    if not intent or len(intent) > 128:
        raise InputError("'intent' must be 1 to 128 characters")
    return intent


async def _queue(svc: Services, s: Any, conv: Conversation, message: Message) -> bool:
    """Queue a platform delivery in the transaction that stores ``message``."""
    return svc.connectors is not None and await svc.connectors.queue(s, conv, message)


async def _announce(svc: Services, conv: Conversation, message: Message, queued: bool) -> None:
    """After the commit: wake the outbox worker and tell the widget and the agents."""
    if queued and svc.connectors is not None:
        svc.connectors.wake()
    data = message_json(message)
    await svc.bus.publish(conversation_topic(stored_id(conv)), Event("message", data))
    await svc.bus.publish(AGENTS, Event("message", data))


async def review_suggestion(
    svc: Services,
    suggestion_id: int,
    reviewer: str,
    action: str,
    *,
    text: str | None = None,
    intent: str | None = None,
    reason: str | None = None,
) -> Reviewed:
    """Approve, edit-and-send or reject a pending suggestion."""
    intent = _check_intent(intent)
    pair = None
    queued = False
    async with svc.db.session() as s:
        sug = await s.get(Suggestion, suggestion_id, with_for_update=True)
        if sug is None:
            raise NotFoundError("no such suggestion")
        if sug.status != SuggestionStatus.PENDING:
            raise ConflictError(f"this suggestion was already {sug.status}")
        conv = await s.get(Conversation, sug.conversation_id)
        customer = await s.get(Message, sug.message_id)
        assert conv is not None and customer is not None
        if intent is not None:
            customer.corrected_intent = intent
            s.add(customer)
        sug.reviewer = reviewer
        sug.reviewed_at = utcnow()
        reply = None
        if action == "reject":
            sug.status = SuggestionStatus.REJECTED
            sug.final_text = None
            if reason:
                sug.sources = [*sug.sources, {"rejected_because": reason[:500]}]
        else:
            final = sug.draft if action == "approve" else (text or "").strip()
            if not final:
                raise InputError("an edited reply needs a non-empty 'text'")
            if "{{" in final:
                raise InputError("the reply still contains a {{placeholder}}; fill it in first")
            sug.status = (
                SuggestionStatus.APPROVED if action == "approve" else SuggestionStatus.EDITED
            )
            sug.final_text = final
            reply = Message(
                conversation_id=stored_id(conv),
                channel=conv.channel,
                role=Role.AGENT if action == "edit" else Role.BOT,
                text=final,
                intent=intent or sug.intent,
                decision=f"review:{action}",
                author=reviewer,
                details={"suggestion_id": sug.id, "reply_to": sug.message_id},
            )
            s.add(reply)
            await s.flush()
            sug.reply_message_id = reply.id
            scrubber = Scrubber.from_settings(svc.settings.learning)
            question, answer = await asyncio.to_thread(
                lambda: (scrubber(customer.text), scrubber(final))
            )
            pair = await add_pair(
                s, question, answer, intent or sug.intent, "agent", f"message:{reply.id}"
            )
            queued = await _queue(svc, s, conv, reply)
        s.add(sug)
        conv.updated_at = utcnow()
        s.add(conv)
    if reply is not None:
        await _announce(svc, conv, reply, queued)
    if pair is not None:
        await svc.runtime.add_pairs([pair])
    await svc.bus.publish(
        AGENTS, Event("queue", {"reason": f"suggestion_{action}", "conversation_id": conv.id})
    )
    return Reviewed(sug, reply)


async def _open_conversation(s: Any, conversation_id: int) -> Conversation:
    """The conversation, locked for this transaction; 404 if unknown, 409 if closed."""
    conv = await s.get(Conversation, conversation_id, with_for_update=True)
    if conv is None:
        raise NotFoundError("no such conversation")
    if conv.status == ConversationStatus.CLOSED:
        raise ConflictError("this conversation is closed")
    return conv


async def agent_reply(svc: Services, conversation_id: int, agent: str, text: str) -> Message:
    """An agent writes to the customer; the conversation is theirs until handed back."""
    async with svc.db.session() as s:
        conv = await _open_conversation(s, conversation_id)
        last_customer = (
            await s.exec(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.role == Role.CUSTOMER)
                .order_by(col(Message.id).desc())
            )
        ).first()
        was = conv.status
        conv.status = ConversationStatus.HANDOFF
        conv.assigned_agent = conv.assigned_agent or agent
        conv.updated_at = utcnow()
        message = Message(
            conversation_id=conversation_id,
            channel=conv.channel,
            role=Role.AGENT,
            text=text,
            author=agent,
            decision="agent",
            details={"reply_to": last_customer.id if last_customer else None},
        )
        s.add(message)
        s.add(conv)
        # Pending suggestions are moot once an agent answers in person.
        for sug in (
            await s.exec(
                select(Suggestion).where(
                    Suggestion.conversation_id == conversation_id,
                    Suggestion.status == SuggestionStatus.PENDING,
                )
            )
        ).all():
            sug.status = SuggestionStatus.REJECTED
            sug.reviewer = agent
            sug.reviewed_at = utcnow()
            s.add(sug)
        await s.flush()
        queued = await _queue(svc, s, conv, message)
    await _announce(svc, conv, message, queued)
    if was != ConversationStatus.HANDOFF:
        await svc.bus.publish(
            conversation_topic(conversation_id), Event("status", {"status": conv.status})
        )
    await svc.bus.publish(
        AGENTS, Event("queue", {"reason": "agent_reply", "conversation_id": conversation_id})
    )
    return message


async def set_owner(
    svc: Services, conversation_id: int, agent: str, *, take: bool
) -> dict[str, Any]:
    """Claim (take over) a conversation, or hand it back to the bot."""
    async with svc.db.session() as s:
        conv = await _open_conversation(s, conversation_id)
        if take:
            if (
                conv.assigned_agent not in (None, agent)
                and conv.status == ConversationStatus.HANDOFF
            ):
                raise ConflictError(f"{conv.assigned_agent} already handles this conversation")
            conv.status = ConversationStatus.HANDOFF
            conv.assigned_agent = agent
        else:
            conv.status = ConversationStatus.BOT
            conv.assigned_agent = None
            conv.state = {}  # the bot resumes with a fresh dialogue state
        conv.updated_at = utcnow()
        s.add(conv)
    await svc.bus.publish(
        conversation_topic(conversation_id), Event("status", {"status": conv.status})
    )
    await svc.bus.publish(
        AGENTS,
        Event(
            "queue", {"reason": "claim" if take else "handback", "conversation_id": conversation_id}
        ),
    )
    return conversation_json(conv)
