"""The dialogue state machine: given the state, a message and what the models read in it,
what the bot does next.

:func:`plan_turn` is pure (no I/O, no models), so its rules are table-tested; the pipeline
(bot/pipeline.py) gathers the :class:`Reading` and carries the :class:`Plan` out. Handing off
is the last resort: small talk is answered, a missing value is asked for once, an unsure
message gets the likely intents as quick replies, and an out-of-domain one is told what the
bot can do. An explicit request for a person hands off at once, always.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from bot.dialogue import smalltalk as st
from bot.dialogue.slots import SlotReading
from bot.dialogue.state import Clarification, DialogueState, PendingSlot

OTHER = "__other__"  # the "Something else" quick reply


class Act(enum.StrEnum):
    ANSWER = "answer"  # answer an intent from what was retrieved for it
    FILL = "fill"  # the pending answer, completed with the value just given
    ASK = "ask"  # ask (again) for the pending value
    SMALLTALK = "smalltalk"
    CLARIFY = "clarify"  # offer the likely intents as quick replies
    CAPABILITIES = "capabilities"  # out of domain: say what the bot can do, offer a person
    HANDOFF = "handoff"


@dataclass(frozen=True, slots=True)
class Reading:
    """What the models and parsers read in one customer message."""

    intent: str | None = None  # the intent model's best guess for the message alone
    verdict: str | None = None  # confident, ambiguous, out_of_scope (None: no model)
    top_k: tuple[tuple[str, float], ...] = ()
    smalltalk: str | None = None  # a small-talk label when the message is small talk
    human: bool = False  # an explicit request for a person
    in_domain: bool = False  # close to questions the bot has answers for
    context_intent: str | None = None  # confident intent of the message read after the topic
    slot: SlotReading | None = None  # the value for the pending (or current topic's) slot
    slot_name: str | None = None  # which slot ``slot`` reads, when nothing is pending
    choice: str | None = None  # a clarification option picked (an intent, or OTHER)
    also: tuple[tuple[str, str], ...] = ()  # further requests in the message: (intent, text)
    elliptical: bool = False  # short and pointing back ("and how long does that take?")


@dataclass(frozen=True, slots=True)
class Plan:
    act: Act
    reason: str
    state: DialogueState  # the state after this turn (ASK from ANSWER is completed later)
    intent: str | None = None
    question: str | None = None  # the text to answer (ANSWER), or whose answer waits (FILL)
    smalltalk: str | None = None
    options: tuple[str, ...] = ()  # intents offered (CLARIFY)
    value: str | None = None  # the slot value given (FILL); None: go on without it
    slot: str | None = None  # the slot ``value`` is for (FILL)
    answer: str | None = None  # the answer template to complete (FILL)
    also: tuple[tuple[str, str], ...] = ()  # further requests answered with this one


def clarify_options(
    top_k: Sequence[tuple[str, float]], exclude: Collection[str], most: int = 3
) -> tuple[str, ...]:
    """The likely intents worth offering, best first."""
    out: list[str] = []
    for intent, p in top_k:
        if intent in exclude or intent in out or p < 0.02:
            continue
        out.append(intent)
        if len(out) == most:
            break
    return tuple(out)


def plan_turn(
    state: DialogueState,
    text: str,
    r: Reading,
    *,
    exclude: Collection[str] = (),
    max_clarifications: int = 2,
    clarify_most: int = 3,
) -> Plan:
    """The bot's next move. ``exclude``: labels never offered as options (out of scope, human)."""
    s = replace(state, turns=state.turns + 1, offered_human=False)

    def handoff(reason: str) -> Plan:
        return Plan(Act.HANDOFF, reason, replace(s, pending=None, clarify=None))

    def answer(intent: str, question: str, reason: str) -> Plan:
        return Plan(
            Act.ANSWER,
            reason,
            replace(s, active_intent=intent, topic_question=question, pending=None, clarify=None),
            intent=intent,
            question=question,
            also=r.also,
        )

    if r.human:
        return handoff("customer asked for a human")
    if state.offered_human and r.smalltalk == st.AFFIRM:
        return handoff("customer accepted a person")
    if state.offered_human and r.smalltalk == st.DENY:
        return Plan(Act.SMALLTALK, "customer declined a person", s, smalltalk="declined_human")

    # A pending clarification: a picked option is answered for the question it clarified.
    if state.clarify is not None:
        if r.choice == OTHER:
            return handoff("none of the offered intents")
        if r.choice is not None:
            return answer(r.choice, state.clarify.question, "intent picked from quick replies")

    # A pending value: the message gives it, unless it is clearly a new question.
    pending = state.pending
    if pending is not None:
        slot = r.slot
        mostly_value = slot is not None and slot.mostly_value
        new_question = (
            r.verdict == "confident"
            and r.intent is not None
            and r.intent != pending.intent
            and not mostly_value
            and r.smalltalk is None
        )
        if slot is not None and slot.value and not new_question:
            return _fill(s, pending, slot.value, "value given for the pending intent")
        if new_question:
            s = replace(s, pending=None)
        elif r.smalltalk == st.DENY:
            return _fill(s, pending, None, "customer has no value to give")
        elif (slot is not None and slot.attempted) or r.smalltalk == st.AFFIRM or r.elliptical:
            # An answer to the question that gives no valid value ("55", "yes", "I can't
            # find it"): ask once more, then answer without it.
            if pending.attempts < 1:
                again = replace(pending, attempts=pending.attempts + 1)
                bad = slot is not None and slot.attempted and r.smalltalk is None
                return Plan(
                    Act.ASK,
                    "value invalid" if bad else "value missing",
                    replace(s, pending=again),
                    intent=pending.intent,
                )
            return _fill(s, pending, None, "went on without the value")
        # Anything else (small talk, an off-topic line) is answered as such; the value may
        # still come next.

    # A new value for the slot the current topic's answer used ("ORD-5521" after the answer).
    other_topic = r.verdict == "confident" and r.intent is not None and r.intent != s.active_intent
    if (
        pending is None
        and r.slot is not None
        and r.slot.value
        and r.slot.mostly_value
        and r.slot_name
        and s.active_intent
        and s.topic_answer
        and not other_topic  # "help me download my invoice #12588" is a new question
    ):
        redo = PendingSlot(r.slot_name, s.active_intent, s.topic_answer, s.topic_question or "")
        return _fill(s, redo, r.slot.value, "new value for the current topic")

    if r.smalltalk is not None:
        return Plan(Act.SMALLTALK, f"small talk: {r.smalltalk}", s, smalltalk=r.smalltalk)

    if r.verdict == "confident" and r.intent is not None and r.intent not in exclude:
        return answer(r.intent, text, "confident intent")
    if r.context_intent is not None:
        joined = f"{state.topic_question or ''} {text}".strip()
        plan = answer(r.context_intent, joined, "follow-up read with the previous turns")
        # The topic stays the question that set it, so later follow-ups join to it too.
        return replace(plan, state=replace(plan.state, topic_question=state.topic_question))

    # Unsure: offer the likely intents, once more after a miss, then a person. A message far
    # from anything the bot knows is no reply to the options: it is told what the bot can do.
    attempt = r.in_domain or r.elliptical or len(text.split()) <= 3  # "hmm", "the other"
    if (state.clarify is not None and attempt) or (
        r.verdict is not None and (r.verdict == "ambiguous" or r.in_domain)
    ):
        attempts = state.clarify.attempts + 1 if state.clarify is not None else 1
        if attempts > max_clarifications:
            return handoff("clarification failed twice")
        options = (
            state.clarify.options
            if state.clarify is not None
            else clarify_options(r.top_k, exclude, clarify_most)
        )
        if options:
            question = state.clarify.question if state.clarify is not None else text
            clarify = Clarification(options, question, attempts)
            return Plan(
                Act.CLARIFY,
                "unsure of the intent" if attempts == 1 else "clarification not understood",
                replace(s, clarify=clarify, clarifications=s.clarifications + 1),
                options=options,
            )
    return Plan(
        Act.CAPABILITIES,
        "out of domain" if r.verdict else "no intent model",
        replace(s, clarify=None, offered_human=True),
    )


def _fill(s: DialogueState, pending: PendingSlot, value: str | None, reason: str) -> Plan:
    slots = dict(s.slots)
    if value is not None:
        slots[pending.slot] = value
    return Plan(
        Act.FILL,
        reason,
        replace(
            s,
            pending=None,
            clarify=None,
            slots=slots,
            active_intent=pending.intent,
            topic_question=pending.question or s.topic_question,
        ),
        intent=pending.intent,
        question=pending.question,
        value=value,
        slot=pending.slot,
        answer=pending.answer,
    )


_PUNCT = ".,;:!?()[]\"'`*"
_OTHER_WORDS = frozenset(
    {
        "something else",
        "none",
        "none of these",
        "none of them",
        "neither",
        "other",
        "another thing",
        "no",
        "nope",
    }
)
_ORDINALS = {
    "1": 0, "one": 0, "first": 0, "1st": 0,
    "2": 1, "two": 1, "second": 1, "2nd": 1,
    "3": 2, "three": 2, "third": 2, "3rd": 2,
    "4": 3, "four": 3, "fourth": 3, "4th": 3,
}  # fmt: skip
_CHOICE_FILLER = frozenset(
    {
        "the",
        "one",
        "option",
        "number",
        "no",
        "#",
        "please",
        "i",
        "mean",
        "meant",
        "it's",
        "its",
        "is",
        "that",
        "a",
    }
)


def _words(text: str) -> list[str]:
    return [w.strip(_PUNCT) for w in text[:500].lower().split() if w.strip(_PUNCT)]


def match_choice(text: str, options: Sequence[str], labels: Sequence[str]) -> str | None:
    """The option a reply to a clarification picks: its label, a number or an ordinal
    ("2", "the second one"), or :data:`OTHER` for "something else"; None if it picks none.

    ``labels`` are the quick-reply texts shown for ``options``, in the same order; the last
    label shown after them is "Something else".
    """
    words = _words(text)
    if not words:
        return None
    said = " ".join(words)
    if said in _OTHER_WORDS:
        return OTHER
    for option, label in zip(options, labels, strict=True):
        if said == " ".join(_words(label)):
            return option
    if said == "last" or said == "the last one":
        return options[-1]
    rest = [w for w in words if w not in _CHOICE_FILLER]
    if len(rest) == 1 and rest[0] in _ORDINALS:
        index = _ORDINALS[rest[0]]
        if index < len(options):
            return options[index]
        if index == len(options):
            return OTHER  # the "Something else" button's number
    return None


_SPLIT_WORDS = frozenset({"and", "also", "plus"})


def split_requests(text: str, most: int = 3) -> list[str]:
    """The parts of a message that may each be a request ("cancel my order and send me the
    invoice"): split at sentence ends and at "and"/"also"/"plus", keeping parts of at least
    three words. Linear in the text; one part when there is nothing to split."""
    parts: list[list[str]] = [[]]
    for raw in text[:1000].split():
        word = raw.strip(_PUNCT).lower()
        if word in _SPLIT_WORDS and len(parts[-1]) >= 3:
            parts.append([])
            continue
        parts[-1].append(raw)
        if raw[-1] in ".?!;" and len(parts[-1]) >= 3:
            parts.append([])
    clauses = [" ".join(p) for p in parts if len(p) >= 3]
    if len(clauses) < 2:
        return [text]
    return clauses[:most]


# Words that make a short message lean on what was said before ("and how long does *that*
# take?", "what's the *next* step?", "ok, and *then*?").
_ANAPHORA = frozenset(
    "and also but so then it its it's that this those these them they one ones there "
    "next step steps exactly more else same too instead either about".split()
)


def looks_elliptical(text: str, most_words: int = 8) -> bool:
    """Whether a message reads as a follow-up to the previous turn rather than on its own:
    short and pointing back, or a bare question word ("how?", "wait, why?")."""
    words = _words(text)
    if 0 < len(words) <= 2 and any(w in st.QUESTION_WORDS for w in words):
        return True
    return 0 < len(words) <= most_words and any(w in _ANAPHORA for w in words)
