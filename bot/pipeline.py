"""The reply path for one stored customer message: intent → retrieve → generate → decide.

The customer's message is already persisted (idempotently) by the caller. The pipeline reads
the conversation, asks the runtime for intent and retrieved pairs (batched with concurrent
requests), writes a draft, decides by policy, and records everything it used: intent,
confidence, verdict, sources with scores, grounding, model versions, decision and timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import bindparam, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.events import AGENTS, Event, EventBus, conversation_topic
from bot.generation.placeholders import fill
from bot.metrics import DECISIONS, REPLY_LATENCY
from bot.policy import Action, Decision, decide
from bot.runtime import ModelRuntime, Query, Understanding
from bot.serialize import message_json, suggestion_json
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.messages import HISTORY_TURNS, insert_message, recent_turns
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Message,
    Role,
    Suggestion,
    utcnow,
)
from retrieval.hit import Hit

log = logging.getLogger("deskbot.pipeline")

HANDOFF_NOTICE = "Thanks, I've passed this to our support team. An agent will reply here soon."


class Outbox(Protocol):
    """Where replies to chat-platform conversations are queued (``bot.channels.ChannelHub``)."""

    async def queue(self, session: AsyncSession, conv: Conversation, message: Message) -> bool: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    status: Literal["sent", "pending_review", "handoff"]
    message: Message | None  # what the customer was sent (bot reply or handoff notice)
    suggestion: Suggestion | None
    intent: str | None
    confidence: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.message.id if self.message is not None else None,
            "text": self.message.text if self.message is not None else None,
            "status": self.status,
            "intent": self.intent,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class _Draft:
    text: str
    fallback: str
    grounding: float
    grounded: bool
    model: str | None
    missing_slots: tuple[str, ...] = ()


def _sources(hits: tuple[Hit, ...]) -> list[dict[str, Any]]:
    return [
        {
            "pair_id": h.pair_id,
            "score": round(h.score, 4),
            "question": h.question,
            "answer": h.answer,
            "intent": h.intent,
        }
        for h in hits
    ]


# Built once and executed with parameters (the SET columns are the parameters' other keys):
# rebuilding a statement per message cost more CPU than running it.
_UPDATE_MESSAGE = update(Message).where(col(Message.id) == bindparam("row_id"))
_UPDATE_CONVERSATION = update(Conversation).where(col(Conversation.id) == bindparam("row_id"))


class ReplyPipeline:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        runtime: ModelRuntime,
        bus: EventBus,
        outbox: Outbox | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.runtime = runtime
        self.bus = bus
        self.outbox = outbox

    async def _load(
        self,
        conversation_id: int,
        message_id: int,
        conv: Conversation | None,
        msg: Message | None,
        history: Sequence[tuple[str, str]] | None,
    ) -> tuple[Conversation, Message, Sequence[tuple[str, str]]]:
        if conv is not None and msg is not None and history is not None:
            return conv, msg, history
        async with self.db.session() as s:
            if conv is None:
                conv = await s.get(Conversation, conversation_id)
            if msg is None:
                msg = await s.get(Message, message_id)
            if history is None:
                history = await recent_turns(s, conversation_id, message_id, HISTORY_TURNS)
        assert conv is not None and msg is not None
        return conv, msg, history

    async def handle(
        self,
        conversation_id: int,
        message_id: int,
        *,
        conversation: Conversation | None = None,
        message: Message | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> ReplyOutcome | None:
        """Answer one stored customer message; None when an agent owns the conversation.

        Callers that have just stored the message pass the rows, and the ``(role, text)`` turns
        before it (:func:`~bot.storage.messages.recent_turns`, read in the same transaction),
        to save a second transaction.
        """
        started = time.perf_counter()
        conv, msg, history = await self._load(
            conversation_id, message_id, conversation, message, history
        )
        if conv.status != ConversationStatus.BOT:
            await self.bus.publish(
                AGENTS, Event("queue", {"reason": "customer_message", "conversation_id": conv.id})
            )
            return None
        turns = tuple((r, t) for r, t in history if r in (Role.CUSTOMER, Role.BOT, Role.AGENT))
        context = tuple(t for r, t in turns if r == Role.CUSTOMER)[
            -max(1, self.settings.retrieval.context_turns) :
        ]
        await self.bus.publish(
            conversation_topic(conv.id), Event("typing", {"who": "bot", "on": True})
        )
        try:
            understood = await self.runtime.understand(
                Query(msg.text, context if self.settings.retrieval.context_turns else ())
            )
            understand_ms = (time.perf_counter() - started) * 1000
            pred = understood.prediction
            intent = pred.intent if pred else None
            verdict = pred.verdict if pred else None
            pre = decide(
                self.settings.server.policy,
                intent=intent,
                verdict=verdict,
                grounded=True,
                has_answer=bool(understood.hits),
                human_label=self.settings.intent.human_label,
            )
            draft: _Draft | None = None
            gen_start = time.perf_counter()
            if pre.action != Action.HANDOFF:
                # When the policy sends the best retrieved answer whatever a draft would say
                # (auto, ambiguous intent), no draft is written: it would stream to the
                # customer and then be replaced.
                draft = await self._draft(
                    conv,
                    msg,
                    turns,
                    understood,
                    sending=pre.action == Action.SEND,
                    generate=not pre.use_fallback,
                )
            generate_ms = (time.perf_counter() - gen_start) * 1000
            decision = (
                pre
                if draft is None
                else decide(
                    self.settings.server.policy,
                    intent=intent,
                    verdict=verdict,
                    grounded=draft.grounded,
                    has_answer=True,
                    human_label=self.settings.intent.human_label,
                )
            )
            timings = {
                "understand_ms": round(understand_ms, 2),
                "generate_ms": round(generate_ms, 2),
                "total_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            outcome = await self._record(conv, msg, understood, draft, decision, timings)
            REPLY_LATENCY.observe(time.perf_counter() - started)
            DECISIONS.labels(outcome.status).inc()
            return outcome
        finally:
            await self.bus.publish(
                conversation_topic(conv.id), Event("typing", {"who": "bot", "on": False})
            )

    async def _draft(
        self,
        conv: Conversation,
        msg: Message,
        turns: tuple[tuple[str, str], ...],
        understood: Understanding,
        *,
        sending: bool,
        generate: bool = True,
    ) -> _Draft:
        """The reply to ``msg``; ``sending``: it goes to the customer unless it is ungrounded.

        A draft that will be sent streams its tokens to the conversation as they come. Without
        ``generate`` (or a generator) the reply is the best retrieved answer, filled.
        """
        history = (*turns, (Role.CUSTOMER.value, msg.text))
        best = understood.hits[0]
        fallback, missing = fill(best.answer, history)
        generator = self.runtime.models.generator if generate else None
        if (
            sending
            and generator is not None
            and generator.bundled_base
            and not self.settings.generation.send_base_drafts
        ):
            generator = None  # see generation.send_base_drafts
        if generator is None:
            # The best retrieved answer is the reply, grounded by construction.
            return _Draft(fallback, fallback, 1.0, True, None, tuple(missing))
        from bot.generation import ReplyRequest

        request = ReplyRequest(
            message=msg.text,
            history=tuple((r if r != "system" else "bot", t) for r, t in turns),
            hits=understood.hits,
            intent=understood.prediction.label if understood.prediction else None,
        )
        topic = conversation_topic(conv.id)
        if sending:
            pieces = generator.stream(request)
            async for piece in pieces:
                if piece:
                    await self.bus.publish(
                        topic, Event("token", {"reply_to": msg.id, "text": piece})
                    )
            draft = await pieces.draft
        else:
            draft = await generator.generate(request)
        if sending and not draft.grounded:
            await self.bus.publish(topic, Event("retract", {"reply_to": msg.id}))
        return _Draft(
            draft.text,
            draft.fallback,
            draft.grounding,
            draft.grounded,
            draft.model,
            tuple(draft.missing_slots),
        )

    async def _record(
        self,
        conv: Conversation,
        msg: Message,
        understood: Understanding,
        draft: _Draft | None,
        decision: Decision,
        timings: dict[str, float],
    ) -> ReplyOutcome:
        pred = understood.prediction
        versions = {k: v for k, v in self.runtime.models.versions.items() if v}
        if draft is not None and draft.model:
            versions["generator"] = draft.model
        details = {
            "sources": _sources(understood.hits),
            "intent_source": understood.intent_source,
            "top_k": [list(x) for x in pred.top_k] if pred else [],
            "grounding": draft.grounding if draft else None,
            "decision_reason": decision.reason,
            **timings,
        }
        text = None
        if draft is not None:
            text = draft.fallback if decision.use_fallback else draft.text
        reply: Message | None = None
        suggestion: Suggestion | None = None
        async with self.db.session() as s:
            # Core statements on the session's connection: the ORM's bulk-update and
            # unit-of-work paths cost more CPU than everything else in this transaction.
            conn = await s.connection()
            await conn.execute(
                _UPDATE_MESSAGE,
                {
                    "row_id": msg.id,
                    "intent": pred.intent if pred else None,
                    "confidence": pred.confidence if pred else None,
                    "verdict": pred.verdict if pred else None,
                    "decision": decision.action.value,
                    "model_versions": versions,
                    "details": details,
                },
            )
            conv_values: dict[str, Any] = {"updated_at": utcnow()}
            if decision.action == Action.SEND:
                assert text is not None
                reply = await insert_message(
                    s,
                    {
                        "conversation_id": conv.id,
                        "channel": conv.channel,
                        "role": Role.BOT,
                        "text": text,
                        "intent": pred.intent if pred else None,
                        "confidence": pred.confidence if pred else None,
                        "verdict": pred.verdict if pred else None,
                        "decision": decision.action.value,
                        "model_versions": versions,
                        "details": {**details, "reply_to": msg.id},
                        "created_at": utcnow(),
                    },
                )
            elif decision.action == Action.SUGGEST:
                assert text is not None
                suggestion = Suggestion(
                    conversation_id=conv.id,
                    message_id=msg.id,
                    draft=text,
                    sources=details["sources"],
                    intent=pred.intent if pred else None,
                    confidence=pred.confidence if pred else None,
                    grounding=details["grounding"],
                )
                s.add(suggestion)
            else:
                conv_values["status"] = ConversationStatus.HANDOFF
                reply = await insert_message(
                    s,
                    {
                        "conversation_id": conv.id,
                        "channel": conv.channel,
                        "role": Role.SYSTEM,
                        "text": HANDOFF_NOTICE,
                        "decision": decision.action.value,
                        "model_versions": {},
                        "details": {"reason": decision.reason, "reply_to": msg.id},
                        "created_at": utcnow(),
                    },
                )
            await conn.execute(_UPDATE_CONVERSATION, {"row_id": conv.id, **conv_values})
            await s.flush()
            if "status" in conv_values:
                conv.status = conv_values["status"]
            queued = (
                reply is not None
                and self.outbox is not None
                and await self.outbox.queue(s, conv, reply)
            )
        if queued:
            self.outbox.wake()  # type: ignore[union-attr]
        status: Literal["sent", "pending_review", "handoff"] = {
            Action.SEND: "sent",
            Action.SUGGEST: "pending_review",
            Action.HANDOFF: "handoff",
        }[decision.action]  # type: ignore[assignment]
        await self._announce(conv, reply, suggestion, decision)
        return ReplyOutcome(
            status,
            reply,
            suggestion,
            pred.intent if pred else None,
            pred.confidence if pred else None,
        )

    async def _announce(
        self,
        conv: Conversation,
        reply: Message | None,
        suggestion: Suggestion | None,
        decision: Decision,
    ) -> None:
        topic = conversation_topic(conv.id)
        if reply is not None:
            await self.bus.publish(topic, Event("message", message_json(reply)))
        if decision.action == Action.HANDOFF:
            await self.bus.publish(
                topic, Event("status", {"status": ConversationStatus.HANDOFF.value})
            )
            await self.bus.publish(
                AGENTS, Event("queue", {"reason": "handoff", "conversation_id": conv.id})
            )
        elif suggestion is not None:
            await self.bus.publish(
                AGENTS,
                Event(
                    "queue",
                    {
                        "reason": "suggestion",
                        "conversation_id": conv.id,
                        "suggestion": suggestion_json(suggestion),
                    },
                ),
            )
