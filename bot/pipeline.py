"""The reply path for one stored customer message: intent → retrieve → generate → decide.

The customer's message is already persisted (idempotently) by the caller. The pipeline reads
the conversation, asks the runtime for intent and retrieved pairs (batched with concurrent
requests), writes a draft, decides by policy, and records everything it used: intent,
confidence, verdict, sources with scores, grounding, model versions, decision and timings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.dialogue import smalltalk as smalltalk_labels
from bot.dialogue.config import DialogueConfig
from bot.dialogue.handoff import BusinessHours
from bot.dialogue.handoff import due as handoff_due
from bot.dialogue.manager import (
    Act,
    Plan,
    Reading,
    looks_elliptical,
    match_choice,
    plan_turn,
    split_requests,
)
from bot.dialogue.slots import SlotSpec, norm_slot, read_slot
from bot.dialogue.state import DialogueState, PendingSlot
from bot.events import AGENTS, Event, EventBus, conversation_topic
from bot.generation.placeholders import SLOT, fill
from bot.metrics import DECISIONS, REPLY_FAILURES, REPLY_LATENCY
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
    stored_id,
    utcnow,
)
from finetune.intent.classifier import IntentPrediction
from retrieval.hit import Hit

log = logging.getLogger("deskbot.pipeline")

HANDOFF_NOTICE = "Thanks, I've passed this to our support team. An agent will reply here soon."


class Outbox(Protocol):
    """Where replies to chat-platform conversations are queued (``bot.channel_hub.ChannelHub``)."""

    async def queue(self, session: AsyncSession, conv: Conversation, message: Message) -> bool: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    status: Literal["sent", "pending_review", "handoff"]
    message: Message | None  # what the customer was sent (bot reply or handoff notice)
    suggestion: Suggestion | None
    intent: str | None  # the intent the reply is about (None for small talk)
    confidence: float | None
    action: str = "answer"  # the dialogue act: answer, fill, ask, smalltalk, clarify...
    quick_replies: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.message.id if self.message is not None else None,
            "text": self.message.text if self.message is not None else None,
            "status": self.status,
            "intent": self.intent,
            "confidence": self.confidence,
            "action": self.action,
            "quick_replies": list(self.quick_replies),
        }


@dataclass(frozen=True, slots=True)
class _Draft:
    text: str
    fallback: str
    grounding: float
    grounded: bool
    model: str | None
    missing_slots: tuple[str, ...] = ()


class _AlreadyDecided(Exception):
    """The message got its decision from another process meanwhile."""


@dataclass(frozen=True, slots=True)
class _Turn:
    """What the bot does with one message, ready to be recorded."""

    plan: Plan
    decision: Decision
    text: str | None  # the reply (or suggestion) text; None for a handoff
    state: DialogueState  # the conversation's state after this message
    quick_replies: tuple[str, ...] = ()
    draft: _Draft | None = None
    understood: Understanding | None = None  # what the answer was retrieved from
    answered: bool = False  # an answer from the knowledge (not small talk or a question)


_FOLLOW_UP_WORDS = 8  # a follow-up question is short; a longer one stands on its own


def _verdict(pred: IntentPrediction | None, sure: bool) -> str | None:
    """The verdict the dialogue acts on: a model confident about a message unlike any known
    question is out of scope."""
    if pred is None:
        return None
    if sure:
        return "confident"
    return "out_of_scope" if pred.verdict == "confident" else pred.verdict


def _customer_slots(
    template: str,
    specs: Mapping[str, SlotSpec],
    history: Sequence[tuple[str, str]] | None = None,
    facts: Mapping[str, str] | None = None,
) -> list[str]:
    """The slots of ``template`` the bot can ask for; with ``history``, only those that the
    conversation (or ``facts``) does not fill."""
    if history is None:
        names = [m.group(1) for m in SLOT.finditer(template)]
    else:
        names = fill(template, history, facts=facts, ask=False)[1]
    return [n for n in dict.fromkeys(names) if norm_slot(n) in specs]


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
# Only an undecided message is decided: a second process answering it (recovery after a long
# pause) changes nothing.
_UPDATE_MESSAGE = update(Message).where(
    col(Message.id) == bindparam("row_id"), col(Message.decision).is_(None)
)
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
        self.dialogue = DialogueConfig.from_settings(settings)
        self.hours = BusinessHours.parse(settings.handoff.hours, settings.handoff.timezone)

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
            conversation_topic(stored_id(conv)), Event("typing", {"who": "bot", "on": True})
        )
        try:
            understood = await self.runtime.understand(
                Query(msg.text, context if self.settings.retrieval.context_turns else ())
            )
            state = DialogueState.from_json(conv.state)
            reading, found = await self._read(state, msg.text, understood)
            understand_ms = (time.perf_counter() - started) * 1000
            plan = plan_turn(
                state,
                msg.text,
                reading,
                exclude=self.dialogue.exclude,
                max_clarifications=self.settings.dialogue.max_clarifications,
                clarify_most=self.settings.dialogue.clarify_options,
            )
            gen_start = time.perf_counter()
            turn = await self._carry_out(conv, msg, turns, understood, found, state, plan)
            generate_ms = (time.perf_counter() - gen_start) * 1000
            timings = {
                "understand_ms": round(understand_ms, 2),
                "generate_ms": round(generate_ms, 2),
                "total_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            outcome = await self._record(conv, msg, understood, state, turn, timings)
            REPLY_LATENCY.observe(time.perf_counter() - started)
            DECISIONS.labels(outcome.status).inc()
            return outcome
        except _AlreadyDecided:
            log.info("message %s was already answered elsewhere", msg.id)
            return None
        except Exception:
            # No message is left without an outcome: a person takes it. If even that cannot
            # be written, the error goes up and recovery answers the message later.
            log.exception("the reply to message %s failed; handing the conversation off", msg.id)
            REPLY_FAILURES.labels("reply").inc()
            return await self._fail_safe(conv, msg)
        finally:
            await self.bus.publish(
                conversation_topic(stored_id(conv)), Event("typing", {"who": "bot", "on": False})
            )

    # -- reading a message in its conversation ---------------------------------------------

    def _sure(self, u: Understanding) -> bool:
        """Whether ``u``'s intent can be answered: the model is confident, or its best guess
        is also the intent of the nearest known question and that question is close. The
        second opinion recovers right answers that calibration put under the threshold."""
        p = u.prediction
        if p is None or p.intent in self.dialogue.exclude:
            return False
        if p.verdict == "confident":
            return u.domain_score >= self.settings.dialogue.sure_domain_score or not u.hits
        return (
            bool(u.hits)
            and u.hits[0].intent == p.intent
            and u.domain_score >= self.settings.dialogue.agree_score
        )

    def _asks_for_human(
        self, u: Understanding, sure: bool, pointing_back: bool = False, bare: bool = False
    ) -> bool:
        """An explicit request for a person: the small-talk model says so, or the intent model
        does and something agrees (its confidence, the small-talk model, the nearest question).
        A ``bare`` value ("#28088") asks for nothing, whatever the intent model makes of it."""
        cfg, p, guess = self.settings.dialogue, u.prediction, u.smalltalk
        said = guess is not None and guess.label == smalltalk_labels.HUMAN
        if (
            said
            and guess is not None
            and guess.score >= cfg.human_threshold
            and guess.score + cfg.smalltalk_margin >= u.domain_score
        ):
            # "Customer service representative please" is a request, however sure the intent
            # model is of "contact customer service"; "how do I reach customer service?" is
            # closer to a known question and stays one.
            return True
        if bare or (p is not None and p.intent not in self.dialogue.exclude and sure):
            return False  # a value on its own, or a confident question of the deployment's own
        if (
            guess is not None
            and guess.label in smalltalk_labels.CHAT
            and (
                guess.closed
                or (
                    guess.score >= cfg.smalltalk_threshold
                    and guess.score >= guess.human_score + cfg.smalltalk_margin
                )
            )
        ):
            # "hi, is anyone there?" is a greeting, whatever the intent model makes of it.
            return False
        if said and guess is not None and guess.score >= cfg.human_threshold:
            return True
        if p is None or p.intent not in self.dialogue.human_labels:
            return False
        near = bool(u.hits) and u.hits[0].intent in self.dialogue.human_labels
        if pointing_back:
            # "what about by phone?" after a question leans on the topic, not on a person.
            return False
        weak = said and guess is not None and guess.score >= cfg.human_threshold - 0.2
        return (
            p.verdict == "confident"
            or p.confidence >= cfg.human_guess
            or weak
            or (near and u.domain_score >= cfg.agree_score)
        )

    def _bare_value(self, text: str) -> bool:
        """Whether ``text`` is little besides an order number, an email or another value."""
        return any(
            (got := read_slot(text, name, self.dialogue.slots)).value is not None
            and got.mostly_value
            for name, spec in self.dialogue.slots.items()
            if spec.kind != "text"
        )

    async def _read(
        self, state: DialogueState, text: str, understood: Understanding
    ) -> tuple[Reading, dict[str, Understanding]]:
        """What the message says in this conversation: small talk, a value, a choice, a
        follow-up, further requests. Returns the reading and what was retrieved for intents
        other than the message's own (keyed by intent)."""
        cfg = self.settings.dialogue
        pred = understood.prediction
        sure = self._sure(understood)
        guess = understood.smalltalk
        points_back = looks_elliptical(text)
        pointing_back = bool(state.active_intent) and points_back
        # Off the event loop: reading every slot of a 4,000-character message costs milliseconds.
        bare = await asyncio.to_thread(self._bare_value, text)
        human = self._asks_for_human(understood, sure, pointing_back, bare)
        smalltalk = None
        closed = guess is not None and guess.closed
        if (
            not human
            and guess is not None
            and guess.label != smalltalk_labels.HUMAN
            and (
                closed
                or (
                    not sure
                    and guess.score >= cfg.smalltalk_threshold
                    # A question that merely opens with "hi" is closer to a known question.
                    and guess.score >= understood.domain_score + cfg.smalltalk_margin
                )
            )
        ):
            smalltalk = guess.label
        # Chat about anything but the business is out of domain, however close the words.
        elsewhere = smalltalk == smalltalk_labels.ELSEWHERE
        reading = Reading(
            intent=pred.intent if pred else None,
            verdict=_verdict(pred, sure),
            top_k=pred.top_k if pred else (),
            smalltalk=None if elsewhere else smalltalk,
            human=human,
            in_domain=not elsewhere and understood.domain_score >= cfg.in_domain_score,
            elliptical=not elsewhere and not closed and points_back,
        )
        if elsewhere:
            return reading, {}
        found: dict[str, Understanding] = {}
        if state.pending is not None:
            reading = replace(
                reading, slot=read_slot(text, state.pending.slot, self.dialogue.slots)
            )
        elif state.topic_answer and state.active_intent:
            # A bare value after the topic's answer: a correction for the slot that answer
            # used, or a detail for the same topic ("uh 954487" after a delivery question).
            slots = _customer_slots(state.topic_answer, self.dialogue.slots) or [
                name for name, spec in self.dialogue.slots.items() if spec.kind != "text"
            ]
            for slot in slots:
                got = read_slot(text, slot, self.dialogue.slots)
                if got.value and got.mostly_value:
                    reading = replace(reading, slot=got, slot_name=slot)
                    break
        if state.clarify is not None:
            labels = [self.dialogue.title(i) for i in state.clarify.options]
            choice = match_choice(text, state.clarify.options, labels)
            if choice is None and sure and pred is not None:
                if pred.intent in state.clarify.options:
                    choice = pred.intent
            reading = replace(reading, choice=choice)
        # "ok, and then?" reads as a yes but leans on the topic; an unsure "ok so what now?"
        # may be a follow-up too: both get the follow-up reading first.
        chat = (
            smalltalk is not None
            and smalltalk not in (smalltalk_labels.AFFIRM, smalltalk_labels.DENY)
            and (
                not reading.elliptical or (guess is not None and guess.score >= cfg.smalltalk_sure)
            )
        )
        settled = (
            human
            or chat
            or reading.choice is not None
            or (reading.slot is not None and reading.slot.value is not None)
        )
        if settled:
            return reading, found
        short_question = (
            text.rstrip().endswith("?")
            and len(text.split()) <= _FOLLOW_UP_WORDS
            and understood.domain_score >= cfg.follow_up_question_score
        )
        if (
            not sure
            and cfg.follow_ups
            and state.active_intent
            and state.topic_question
            and pred is not None
            and (reading.elliptical or short_question)
        ):
            joined = f"{state.topic_question} {text}"
            again = await self.runtime.understand(Query(joined))
            p2 = again.prediction
            # Read with the topic, the message stays on it, and adds nothing that takes the
            # topic away from what the bot knows ("and who wrote Pride and Prejudice?").
            drop = (state.topic_score or 0.0) - again.domain_score
            most = cfg.follow_up_drop if reading.elliptical else cfg.follow_up_question_drop
            if p2 is not None and p2.intent == state.active_intent and drop <= most:
                found[p2.intent] = again
                reading = replace(reading, context_intent=p2.intent, smalltalk=None)
        # Read the parts of a message on their own only when a second intent shows in the
        # whole: each part costs an encoder pass.
        second = pred.top_k[1][1] if pred is not None and len(pred.top_k) > 1 else 0.0
        if (
            cfg.split_requests
            and pred is not None
            and reading.verdict != "out_of_scope"
            and (not sure or second >= cfg.second_request)
        ):
            parts = split_requests(text)
            if len(parts) > 1:
                reading = await self._several(reading, parts, found)
        return reading, found

    async def _several(
        self, reading: Reading, parts: list[str], found: dict[str, Understanding]
    ) -> Reading:
        """A message holding several requests: the first is answered as the message's intent
        and the others with it ("cancel my order and send me the invoice")."""
        read = await asyncio.gather(*(self.runtime.understand(Query(p)) for p in parts))
        wanted: list[tuple[str, str]] = []
        for part, u in zip(parts, read, strict=True):
            p = u.prediction
            if p is None or not self._sure(u):
                continue
            if all(p.intent != i for i, _ in wanted):
                wanted.append((p.intent, part))
                found.setdefault(p.intent, u)
        if len(wanted) < 2:
            return reading
        first = wanted[0][0]
        if reading.verdict == "confident" and reading.intent in dict(wanted):
            first = reading.intent
        also = tuple((i, t) for i, t in wanted if i != first)
        return replace(reading, intent=first, verdict="confident", also=also)

    # -- carrying a plan out -------------------------------------------------------------------

    async def _carry_out(
        self,
        conv: Conversation,
        msg: Message,
        turns: tuple[tuple[str, str], ...],
        understood: Understanding,
        found: dict[str, Understanding],
        state: DialogueState,
        plan: Plan,
    ) -> _Turn:
        policy = self.settings.server.policy
        known = self._known_intents()
        if plan.act == Act.HANDOFF:
            return _Turn(plan, Decision(Action.HANDOFF, plan.reason), None, plan.state)
        if plan.act == Act.SMALLTALK:
            key = plan.smalltalk or "greet"
            text = self.dialogue.say(key, known)
            return _Turn(plan, Decision(Action.SEND, plan.reason), text, plan.state)
        if plan.act == Act.CAPABILITIES:
            text = self.dialogue.say("out_of_domain", known)
            replies: tuple[str, ...] = (self.dialogue.say("talk_to_person"),)
            return _Turn(plan, Decision(Action.SEND, plan.reason), text, plan.state, replies)
        if plan.act == Act.CLARIFY and policy == "assist" and plan.options:
            # Under assist every answer is reviewed: the agent gets the best guess to fix.
            guess = plan.options[0]
            plan = replace(
                plan,
                act=Act.ANSWER,
                intent=guess,
                question=msg.text,
                state=replace(
                    plan.state, clarify=None, active_intent=guess, topic_question=msg.text
                ),
            )
            return await self._answer(conv, msg, turns, understood, found, plan)
        if plan.act == Act.CLARIFY:
            key = (
                "clarify"
                if plan.state.clarify and plan.state.clarify.attempts == 1
                else "clarify_again"
            )
            labels = tuple(self.dialogue.title(i) for i in plan.options)
            replies = (*labels, self.dialogue.say("something_else"))
            # The options travel as quick replies: buttons, or numbered text where a channel
            # has none (the connector adds the numbers).
            text = self.dialogue.say(key, known)
            return _Turn(plan, Decision(Action.SEND, plan.reason), text, plan.state, replies)
        if plan.act == Act.ASK:
            pending = plan.state.pending
            assert pending is not None
            spec = self.dialogue.slots.get(norm_slot(pending.slot))
            phrase = spec.phrase if spec else pending.slot.lower()
            key = "ask_slot_again" if plan.reason == "value invalid" else "ask_slot_missing"
            text = self.dialogue.say(key, known, slot=phrase, example=spec.example if spec else "")
            return _Turn(plan, Decision(Action.SEND, plan.reason), text, plan.state)
        if plan.act == Act.FILL:
            history = (*turns, (Role.CUSTOMER.value, msg.text))
            facts = {**self.settings.generation.facts, **plan.state.slots}
            template = plan.answer or ""
            if plan.value is not None and plan.slot is not None:
                template = await self._template_with(plan, template)
            # Filling reads the customer's text with patterns: off the event loop.
            text, _ = await asyncio.to_thread(fill, template, history, facts=facts, ask=False)
            if plan.value is not None and plan.value not in text:
                # No answer of the topic uses the value: say it was taken, then answer.
                spec = self.dialogue.slots.get(norm_slot(plan.slot or ""))
                phrase = spec.phrase if spec else (plan.slot or "").lower()
                noted = self.dialogue.say("slot_noted", slot=phrase, value=plan.value)
                text = f"{noted}\n\n{text}" if text else noted
            plan = replace(plan, answer=template)
            decision = decide(
                policy,
                intent=plan.intent,
                verdict="confident",
                grounded=True,
                has_answer=bool(text),
                human_label=self.settings.intent.human_label,
            )
            return _Turn(
                plan, decision, text, plan.state.evolve(topic_answer=plan.answer), answered=True
            )
        return await self._answer(conv, msg, turns, understood, found, plan)

    async def _template_with(self, plan: Plan, template: str) -> str:
        """``template``, or where it lacks the slot just given, the topic's nearest answer
        that uses it."""
        slot = norm_slot(plan.slot or "")
        if any(norm_slot(n) == slot for n in _customer_slots(template, self.dialogue.slots)):
            return template
        u = await self.runtime.understand(Query(plan.question or "", intent=plan.intent))
        for hit in u.hits:
            names = _customer_slots(hit.answer, self.dialogue.slots)
            if hit.intent == plan.intent and any(norm_slot(n) == slot for n in names):
                return hit.answer
        return template

    async def _answer(
        self,
        conv: Conversation,
        msg: Message,
        turns: tuple[tuple[str, str], ...],
        understood: Understanding,
        found: dict[str, Understanding],
        plan: Plan,
    ) -> _Turn:
        """Answer ``plan.intent``: ask first for a value the answer needs, else the reply
        path as before (draft, grounding, policy)."""
        history = (*turns, (Role.CUSTOMER.value, msg.text))
        facts = {**self.settings.generation.facts, **plan.state.slots}
        assert plan.intent is not None and plan.question is not None
        pred = understood.prediction
        own = pred is not None and plan.intent == pred.intent and plan.question == msg.text
        if own:
            u = understood
        elif plan.intent in found:
            u = found[plan.intent]
        else:
            u = await self.runtime.understand(Query(plan.question, intent=plan.intent))
        hits = tuple(h for h in u.hits if h.intent == plan.intent) or u.hits
        # A chosen intent (clarified, a follow-up, a second request) is as good as confident;
        # so is one the nearest known question agrees with (see _sure).
        verdict = pred.verdict if own and pred is not None else "confident"
        if own and self._sure(understood):
            verdict = "confident"
        if not hits:
            decision = Decision(Action.HANDOFF, "nothing relevant retrieved")
            return _Turn(plan, decision, None, plan.state, understood=u)
        template = hits[0].answer
        for intent, _ in plan.also:
            extra = found.get(intent)
            same = [h for h in extra.hits if h.intent == intent] if extra else []
            if same:
                template += f"\n\n{self.dialogue.title(intent)}: {same[0].answer}"
        state = plan.state.evolve(topic_answer=template)
        if plan.question == plan.state.topic_question:
            state = state.evolve(topic_score=u.domain_score)
        pre = decide(
            self.settings.server.policy,
            intent=plan.intent,
            verdict=verdict,
            grounded=True,
            has_answer=True,
            human_label=self.settings.intent.human_label,
        )
        if pre.action == Action.SEND:
            # Only an answer that would go out asks for its value; a suggestion is the agent's.
            wanted = await asyncio.to_thread(
                _customer_slots, template, self.dialogue.slots, history, facts
            )
            given = {}
            for slot in wanted:
                # "track #20570": an identifier in the question itself is the value.
                got = read_slot(msg.text, slot, self.dialogue.slots)
                if got.value:
                    given[slot] = got.value
            if given:
                facts = {**facts, **given}
                state = state.evolve(slots={**state.slots, **given})
            ask = next((w for w in wanted if w not in given), None)
            if ask is not None:
                spec = self.dialogue.slots[norm_slot(ask)]
                pending = PendingSlot(ask, plan.intent, template, plan.question)
                text = self.dialogue.say("ask_slot", slot=spec.phrase)
                decision = Decision(Action.SEND, f"asks for the {ask}")
                asked = replace(plan, act=Act.ASK)
                return _Turn(asked, decision, text, state.evolve(pending=pending), understood=u)
        if pre.action == Action.HANDOFF:
            return _Turn(plan, pre, None, state, understood=u)
        focused = Understanding(
            u.prediction if not own else pred,
            hits,
            u.intent_source,
            u.smalltalk,
            u.domain_score,
        )
        try:
            draft = await self._draft(
                conv,
                msg,
                turns,
                focused,
                sending=pre.action == Action.SEND,
                generate=not pre.use_fallback and not plan.also,
                template=template,
                facts=facts,
            )
        except Exception:
            # The generator (or a remote LLM) failed: the retrieved answer, grounded by
            # construction, is the reply where the policy sends one.
            log.exception("drafting the reply to message %s failed", msg.id)
            REPLY_FAILURES.labels("draft").inc()
            fallback, missing = await asyncio.to_thread(fill, template, history, facts=facts)
            draft = _Draft(fallback, fallback, 1.0, True, None, tuple(missing))
            await self.bus.publish(
                conversation_topic(stored_id(conv)), Event("retract", {"reply_to": msg.id})
            )
        decision = decide(
            self.settings.server.policy,
            intent=plan.intent,
            verdict=verdict,
            grounded=draft.grounded,
            has_answer=True,
            human_label=self.settings.intent.human_label,
        )
        text = draft.fallback if decision.use_fallback else draft.text
        return _Turn(plan, decision, text, state, draft=draft, understood=u, answered=True)

    def _known_intents(self) -> list[str]:
        intent = self.runtime.models.intent
        if intent is not None:
            return list(intent.labels)
        index = self.runtime.models.index
        if index is not None:
            return [i for i, _ in sorted(index.intents().items(), key=lambda kv: -kv[1])]
        return []

    async def _draft(
        self,
        conv: Conversation,
        msg: Message,
        turns: tuple[tuple[str, str], ...],
        understood: Understanding,
        *,
        sending: bool,
        generate: bool = True,
        template: str | None = None,
        facts: Mapping[str, str] | None = None,
    ) -> _Draft:
        """The reply to ``msg``; ``sending``: it goes to the customer unless it is ungrounded.

        A draft that will be sent streams its tokens to the conversation as they come. Without
        ``generate`` (or a generator) the reply is the best retrieved answer, filled.
        """
        history = (*turns, (Role.CUSTOMER.value, msg.text))
        best = template if template is not None else understood.hits[0].answer
        facts = {**self.settings.generation.facts, **(facts or {})}
        fallback, missing = await asyncio.to_thread(fill, best, history, facts=facts)
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
        topic = conversation_topic(stored_id(conv))
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
        before: DialogueState,
        turn: _Turn,
        timings: dict[str, float],
    ) -> ReplyOutcome:
        pred = understood.prediction
        draft, decision, plan = turn.draft, turn.decision, turn.plan
        versions = {k: v for k, v in self.runtime.models.versions.items() if v}
        if draft is not None and draft.model:
            versions["generator"] = draft.model
        guess = understood.smalltalk
        details: dict[str, Any] = {
            "sources": _sources((turn.understood or understood).hits),
            "intent_source": understood.intent_source,
            "top_k": [list(x) for x in pred.top_k] if pred else [],
            "grounding": draft.grounding if draft else None,
            "decision_reason": decision.reason,
            "dialogue": {
                "act": plan.act.value,
                "reason": plan.reason,
                "intent": plan.intent,
                "also": [i for i, _ in plan.also],
                "smalltalk": [guess.label, round(guess.score, 4)] if guess else None,
                "domain_score": round(understood.domain_score, 4),
            },
            "state": before.as_json(),  # the state the decision was made in
            **timings,
        }
        text = turn.text
        state = turn.state
        notice = HANDOFF_NOTICE
        if decision.action == Action.HANDOFF:
            now = datetime.now(UTC)
            closed = not self.hours.is_open(now)
            if closed:
                notice = self.dialogue.say("handoff_closed", hours=self.hours.text)
            state = replace(
                state, handoff_at=now.isoformat(), handoff_notified=closed, last_action="handoff"
            )
        else:
            state = replace(state, last_action=plan.act.value)
        intent = plan.intent
        if intent is None and decision.action == Action.HANDOFF and pred is not None:
            intent = pred.intent
        reply: Message | None = None
        suggestion: Suggestion | None = None
        async with self.db.session() as s:
            # Core statements on the session's connection: the ORM's bulk-update and
            # unit-of-work paths cost more CPU than everything else in this transaction.
            conn = await s.connection()
            decided = await conn.execute(
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
            if decided.rowcount == 0:
                raise _AlreadyDecided(msg.id)  # rolls the transaction back
            conv_values: dict[str, Any] = {"updated_at": utcnow(), "state": state.as_json()}
            if decision.action == Action.SEND:
                assert text is not None
                reply_details: dict[str, Any] = {**details, "reply_to": msg.id}
                if turn.quick_replies:
                    reply_details["quick_replies"] = list(turn.quick_replies)
                reply = await insert_message(
                    s,
                    {
                        "conversation_id": conv.id,
                        "channel": conv.channel,
                        "role": Role.BOT,
                        "text": text,
                        "intent": intent,
                        "confidence": pred.confidence if pred else None,
                        "verdict": pred.verdict if pred else None,
                        "decision": decision.action.value,
                        "model_versions": versions,
                        "details": reply_details,
                        "created_at": utcnow(),
                    },
                )
            elif decision.action == Action.SUGGEST:
                assert text is not None
                suggestion = Suggestion(
                    conversation_id=stored_id(conv),
                    message_id=stored_id(msg),
                    draft=text,
                    sources=details["sources"],
                    intent=intent,
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
                        "text": notice,
                        "decision": decision.action.value,
                        "model_versions": {},
                        "details": {"reason": decision.reason, "reply_to": msg.id},
                        "created_at": utcnow(),
                    },
                )
            await conn.execute(_UPDATE_CONVERSATION, {"row_id": conv.id, **conv_values})
            await s.flush()
            conv.state = conv_values["state"]
            if "status" in conv_values:
                conv.status = conv_values["status"]
            queued = (
                reply is not None
                and self.outbox is not None
                and await self.outbox.queue(s, conv, reply)
            )
        if queued and self.outbox is not None:
            self.outbox.wake()
        statuses: dict[Action, Literal["sent", "pending_review", "handoff"]] = {
            Action.SEND: "sent",
            Action.SUGGEST: "pending_review",
            Action.HANDOFF: "handoff",
        }
        status = statuses[decision.action]
        await self._announce(conv, reply, suggestion, decision)
        return ReplyOutcome(
            status,
            reply,
            suggestion,
            intent,
            pred.confidence if pred else None,
            plan.act.value,
            turn.quick_replies if decision.action == Action.SEND else (),
        )

    async def _fail_safe(self, conv: Conversation, msg: Message) -> ReplyOutcome | None:
        state = DialogueState.from_json(conv.state)
        plan = Plan(Act.HANDOFF, "the reply failed", state)
        turn = _Turn(plan, Decision(Action.HANDOFF, "the reply failed"), None, state)
        empty = Understanding(None, (), "none")
        try:
            return await self._record(conv, msg, empty, state, turn, {})
        except _AlreadyDecided:
            return None

    async def tell_waiting_handoffs(self, now: datetime | None = None) -> int:
        """Tell customers whose handoff nobody took within ``handoff.wait_s`` so, once each.

        Returns how many were told.
        """
        now = now or datetime.now(UTC)
        wait_s = self.settings.handoff.wait_s
        async with self.db.session() as s:
            rows = (
                await s.exec(
                    select(Conversation.id, Conversation.state)
                    .where(
                        Conversation.status == ConversationStatus.HANDOFF,
                        col(Conversation.assigned_agent).is_(None),
                    )
                    .order_by(col(Conversation.updated_at))
                    .limit(500)
                )
            ).all()
        due = [
            cid
            for cid, raw in rows
            if cid is not None
            and not (raw or {}).get("handoff_notified")
            and handoff_due((raw or {}).get("handoff_at"), now, wait_s)
        ]
        told = 0
        for cid in due:
            told += await self._tell_waiting(cid, now)
        return told

    async def _tell_waiting(self, conversation_id: int, now: datetime) -> int:
        text = self.dialogue.say("handoff_wait")
        async with self.db.session() as s:
            # The row lock (PostgreSQL; SQLite has one writer) makes one process tell it.
            conv = (
                await s.exec(
                    select(Conversation).where(Conversation.id == conversation_id).with_for_update()
                )
            ).one_or_none()
            if conv is None or conv.status != ConversationStatus.HANDOFF or conv.assigned_agent:
                return 0
            state = DialogueState.from_json(conv.state)
            if state.handoff_notified:
                return 0
            conv.state = replace(state, handoff_notified=True).as_json()
            conv.updated_at = utcnow()
            s.add(conv)
            notice = await insert_message(
                s,
                {
                    "conversation_id": conv.id,
                    "channel": conv.channel,
                    "role": Role.SYSTEM,
                    "text": text,
                    "decision": None,
                    "model_versions": {},
                    "details": {"reason": "no agent took the handoff"},
                    "created_at": utcnow(),
                },
            )
            await s.flush()
            queued = self.outbox is not None and await self.outbox.queue(s, conv, notice)
        if queued and self.outbox is not None:
            self.outbox.wake()
        await self.bus.publish(
            conversation_topic(conversation_id), Event("message", message_json(notice))
        )
        await self.bus.publish(
            AGENTS,
            Event("queue", {"reason": "handoff_waiting", "conversation_id": conversation_id}),
        )
        return 1

    async def _announce(
        self,
        conv: Conversation,
        reply: Message | None,
        suggestion: Suggestion | None,
        decision: Decision,
    ) -> None:
        topic = conversation_topic(stored_id(conv))
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
