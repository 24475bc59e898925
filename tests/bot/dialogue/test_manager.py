"""The dialogue state machine as a table: state, message, reading -> action and next state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.dialogue.manager import (
    OTHER,
    Act,
    Reading,
    clarify_options,
    looks_elliptical,
    match_choice,
    plan_turn,
    split_requests,
)
from bot.dialogue.slots import SlotReading
from bot.dialogue.state import Clarification, DialogueState, PendingSlot

EXCLUDE = {"oos", "contact_human_agent"}
FRESH = DialogueState()
PENDING = DialogueState(
    active_intent="cancel_order",
    topic_question="cancel my order",
    pending=PendingSlot(
        "Order Number", "cancel_order", "Cancel {{Order Number}}.", "cancel my order"
    ),
)
CLARIFYING = DialogueState(
    clarify=Clarification(("cancel_order", "change_order"), "a question about my order")
)
TOPIC = DialogueState(
    active_intent="get_refund",
    topic_question="I want a refund",
    topic_answer="Refunds for order {{Order Number}} take 5 days.",
)
CONFIDENT_CANCEL = Reading("cancel_order", "confident", (("cancel_order", 0.9),), in_domain=True)
VALUE = SlotReading("ORD-5521", True, True)
NOTHING = SlotReading(None, False, False)
UNSURE = Reading(
    "change_order",
    "ambiguous",
    (("change_order", 0.4), ("cancel_order", 0.35), ("oos", 0.1), ("track_order", 0.05)),
    in_domain=True,
)

# (name, state, reading, expected act, expected intent, expected reason: which rule fired)
TABLE = [
    ("greeting", FRESH, Reading(smalltalk="greet"), Act.SMALLTALK, None, "small talk: greet"),
    (
        "thanks keeps the pending value",
        PENDING,
        Reading(smalltalk="thanks", slot=NOTHING),
        Act.SMALLTALK,
        None,
        "small talk: thanks",
    ),
    ("explicit human", FRESH, Reading(human=True), Act.HANDOFF, None, "customer asked for a human"),
    (
        "explicit human wins over a pending value",
        PENDING,
        Reading(human=True, slot=VALUE),
        Act.HANDOFF,
        None,
        "customer asked for a human",
    ),
    (
        "explicit human wins over a clarification",
        CLARIFYING,
        Reading(human=True, choice="cancel_order"),
        Act.HANDOFF,
        None,
        "customer asked for a human",
    ),
    ("confident question", FRESH, CONFIDENT_CANCEL, Act.ANSWER, "cancel_order", "confident intent"),
    (
        "bare value completes the pending intent",
        PENDING,
        Reading(None, "out_of_scope", slot=VALUE),
        Act.FILL,
        "cancel_order",
        "value given for the pending intent",
    ),
    (
        "value in a sentence read as another intent",
        PENDING,
        Reading("track_order", "confident", slot=VALUE),
        Act.FILL,
        "cancel_order",
        "value given for the pending intent",
    ),
    (
        "clear new question wins over the pending slot",
        PENDING,
        Reading("get_refund", "confident", slot=NOTHING),
        Act.ANSWER,
        "get_refund",
        "confident intent",
    ),
    (
        "no value: asked once more",
        PENDING,
        Reading(None, "out_of_scope", slot=SlotReading(None, True, False)),
        Act.ASK,
        "cancel_order",
        "value invalid",
    ),
    (
        "yes is no value",
        PENDING,
        Reading(smalltalk="affirm", slot=NOTHING),
        Act.ASK,
        "cancel_order",
        "value missing",
    ),
    (
        "a follow-up that gives no value: asked once more",
        PENDING,
        Reading(None, "out_of_scope", slot=NOTHING, elliptical=True),
        Act.ASK,
        "cancel_order",
        "value missing",
    ),
    (
        "asked twice already: answered without the value",
        replace(PENDING, pending=replace(PENDING.pending, attempts=1)),
        Reading(smalltalk="affirm", slot=NOTHING),
        Act.FILL,
        "cancel_order",
        "went on without the value",
    ),
    (
        "no is no value to give: answered without it",
        PENDING,
        Reading(smalltalk="deny", slot=NOTHING),
        Act.FILL,
        "cancel_order",
        "customer has no value to give",
    ),
    ("unsure in domain: clarify", FRESH, UNSURE, Act.CLARIFY, None, "unsure of the intent"),
    (
        "low confidence in domain: clarify",
        FRESH,
        replace(UNSURE, verdict="out_of_scope"),
        Act.CLARIFY,
        None,
        "unsure of the intent",
    ),
    (
        "unsure, but only excluded intents likely: capabilities",
        FRESH,
        Reading("oos", "ambiguous", (("oos", 0.6), ("contact_human_agent", 0.3)), in_domain=True),
        Act.CAPABILITIES,
        None,
        "out of domain",
    ),
    (
        "out of domain: capabilities",
        FRESH,
        Reading("oos", "out_of_scope", in_domain=False),
        Act.CAPABILITIES,
        None,
        "out of domain",
    ),
    (
        "no model, nothing known: capabilities",
        FRESH,
        Reading(),
        Act.CAPABILITIES,
        None,
        "no intent model",
    ),
    (
        "option picked",
        CLARIFYING,
        Reading(choice="change_order"),
        Act.ANSWER,
        "change_order",
        "intent picked from quick replies",
    ),
    (
        "something else hands off",
        CLARIFYING,
        Reading(choice=OTHER),
        Act.HANDOFF,
        None,
        "none of the offered intents",
    ),
    (
        "a miss clarifies again",
        CLARIFYING,
        Reading("oos", "out_of_scope", in_domain=True),
        Act.CLARIFY,
        None,
        "clarification not understood",
    ),
    (
        "a line far from the domain leaves the clarification",
        CLARIFYING,
        Reading("oos", "out_of_scope", in_domain=False),
        Act.CAPABILITIES,
        None,
        "out of domain",
    ),
    (
        "a confident new question leaves the clarification",
        CLARIFYING,
        Reading("get_refund", "confident"),
        Act.ANSWER,
        "get_refund",
        "confident intent",
    ),
    (
        "follow-up read with the topic",
        TOPIC,
        Reading("oos", "out_of_scope", context_intent="get_refund"),
        Act.ANSWER,
        "get_refund",
        "follow-up read with the previous turns",
    ),
    (
        "topic switch beats the follow-up",
        TOPIC,
        replace(CONFIDENT_CANCEL, context_intent="get_refund"),
        Act.ANSWER,
        "cancel_order",
        "confident intent",
    ),
    (
        "new value for the topic's slot",
        TOPIC,
        Reading(None, "out_of_scope", slot=VALUE, slot_name="Order Number"),
        Act.FILL,
        "get_refund",
        "new value for the current topic",
    ),
    (
        "a confident human intent is not answered",
        FRESH,
        Reading("contact_human_agent", "confident"),
        Act.CAPABILITIES,
        None,
        "out of domain",
    ),
]
ACTS_COVERED = {t[3] for t in TABLE}


@pytest.mark.parametrize(
    ("state", "reading", "act", "intent", "reason"),
    [t[1:] for t in TABLE],
    ids=[t[0] for t in TABLE],
)
def test_table(
    state: DialogueState, reading: Reading, act: Act, intent: str | None, reason: str
) -> None:
    plan = plan_turn(state, "what is this message about then", reading, exclude=EXCLUDE)
    assert (plan.act, plan.reason) == (act, reason)
    assert plan.intent == intent
    assert plan.state.turns == state.turns + 1
    if act in (Act.HANDOFF, Act.ANSWER, Act.FILL):
        # Nothing is left waiting once the bot answers or hands off.
        assert plan.state.pending is None and plan.state.clarify is None
    if act == Act.SMALLTALK:
        assert plan.state.pending == state.pending  # the value may still come next


def test_the_table_covers_every_act() -> None:
    assert ACTS_COVERED == set(Act)


def test_fill_remembers_the_value_and_clears_the_pending_slot() -> None:
    plan = plan_turn(PENDING, "ORD-5521", Reading(slot=VALUE), exclude=EXCLUDE)
    assert plan.value == "ORD-5521" and plan.answer == "Cancel {{Order Number}}."
    assert plan.state.pending is None
    assert plan.state.slots == {"Order Number": "ORD-5521"}
    assert plan.state.active_intent == "cancel_order"


def test_invalid_value_is_asked_for_once_then_the_bot_goes_on_without_it() -> None:
    bad = Reading(None, "out_of_scope", slot=SlotReading(None, True, False))
    first = plan_turn(PENDING, "55", bad, exclude=EXCLUDE)
    assert first.act == Act.ASK and first.state.pending.attempts == 1
    second = plan_turn(first.state, "I don't know", bad, exclude=EXCLUDE)
    assert second.act == Act.FILL and second.value is None
    assert second.state.pending is None


def test_clarification_offers_top_intents_without_excluded_ones() -> None:
    plan = plan_turn(FRESH, "about my order", UNSURE, exclude=EXCLUDE)
    assert plan.options == ("change_order", "cancel_order", "track_order")
    assert plan.state.clarify.question == "about my order"
    assert plan.state.clarify.attempts == 1


def test_second_failed_clarification_hands_off() -> None:
    miss = Reading("oos", "out_of_scope")
    first = plan_turn(FRESH, "about my order", UNSURE, exclude=EXCLUDE)
    again = plan_turn(first.state, "hmm", miss, exclude=EXCLUDE)
    assert again.act == Act.CLARIFY and again.state.clarify.attempts == 2
    assert again.options == first.options  # the same choices, offered again
    last = plan_turn(again.state, "what?", miss, exclude=EXCLUDE)
    assert last.act == Act.HANDOFF
    assert last.reason == "clarification failed twice"


def test_picked_option_answers_the_clarified_question() -> None:
    first = plan_turn(FRESH, "about my order", UNSURE, exclude=EXCLUDE)
    plan = plan_turn(first.state, "2", Reading(choice="cancel_order"), exclude=EXCLUDE)
    assert plan.act == Act.ANSWER and plan.question == "about my order"
    assert plan.state.clarify is None


def test_offered_person_yes_hands_off_and_no_does_not() -> None:
    ood = plan_turn(FRESH, "weather?", Reading("oos", "out_of_scope"), exclude=EXCLUDE)
    assert ood.act == Act.CAPABILITIES and ood.state.offered_human
    assert (
        plan_turn(ood.state, "yes", Reading(smalltalk="affirm"), exclude=EXCLUDE).act == Act.HANDOFF
    )
    no = plan_turn(ood.state, "no", Reading(smalltalk="deny"), exclude=EXCLUDE)
    assert no.act == Act.SMALLTALK and no.smalltalk == "declined_human"
    # The offer stands for one turn only.
    later = plan_turn(no.state, "yes", Reading(smalltalk="affirm"), exclude=EXCLUDE)
    assert later.act == Act.SMALLTALK


def test_state_round_trips_through_json() -> None:
    state = replace(PENDING, clarify=CLARIFYING.clarify, slots={"Email": "a@b.co"}, turns=3)
    assert DialogueState.from_json(state.as_json()) == state
    assert DialogueState.from_json({"version": 999, "turns": 4}) == DialogueState()
    assert DialogueState.from_json("garbage") == DialogueState()
    assert DialogueState.from_json({"version": 1, "pending": {"bad": 1}}) == DialogueState()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cancel an order", "cancel_order"),
        ("cancel an order!", "cancel_order"),
        ("2", "change_order"),
        ("the second one", "change_order"),
        ("option 1", "cancel_order"),
        ("first", "cancel_order"),
        ("3", OTHER),  # the "Something else" button's number
        ("Something else", OTHER),
        ("none of these", OTHER),
        ("the last one", "change_order"),
        ("4", None),
        ("I want to cancel", None),
        ("", None),
    ],
)
def test_match_choice(text: str, expected: str | None) -> None:
    options = ("cancel_order", "change_order")
    assert match_choice(text, options, ("Cancel an order", "Change an order")) == expected


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("cancel my order and send me the invoice", ["cancel my order", "send me the invoice"]),
        (
            "I want to cancel my order. Also, where is my refund?",
            ["I want to cancel my order.", "Also, where is my refund?"],
        ),
        ("salt and pepper", ["salt and pepper"]),
        ("track my order and", ["track my order and"]),
        ("one two three and four five six and seven eight nine and ten eleven twelve", 3),
    ],
)
def test_split_requests(text: str, parts: list[str] | int) -> None:
    got = split_requests(text)
    if isinstance(parts, int):
        assert len(got) == parts
    else:
        assert got == parts


def test_split_requests_reads_a_bounded_prefix_of_hostile_text() -> None:
    got = split_requests("and " * 100_000)
    assert 1 <= len(got) <= 3 and sum(map(len, got)) <= 1000


def test_clarify_options_skip_unlikely_and_excluded() -> None:
    top = (("oos", 0.5), ("a", 0.3), ("b", 0.01), ("c", 0.2))
    assert clarify_options(top, {"oos"}) == ("a", "c")


@pytest.mark.parametrize(
    ("text", "elliptical"),
    [
        ("and how long does that take?", True),
        ("what's the next step?", True),
        ("ok, and then?", True),
        ("what's the weather in Paris?", False),
        ("wait, how?", True),  # a bare question word asks about the last answer
        ("why?", True),
        ("how do I cancel my order?", False),
        ("tell me a joke", False),
        ("and " * 50, False),  # too long to lean on the last turn
    ],
)
def test_looks_elliptical(text: str, elliptical: bool) -> None:
    assert looks_elliptical(text) == elliptical


def test_several_requests_are_answered_together() -> None:
    reading = replace(CONFIDENT_CANCEL, also=(("get_invoice", "send me the invoice"),))
    plan = plan_turn(FRESH, "cancel my order and send me the invoice", reading, exclude=EXCLUDE)
    assert plan.act == Act.ANSWER and plan.intent == "cancel_order"
    assert plan.also == (("get_invoice", "send me the invoice"),)
