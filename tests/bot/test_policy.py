"""decide(), where replies are decided, as a table: every branch, every policy."""

from __future__ import annotations

import itertools

import pytest

from bot.policy import Action, Decision, decide

HUMAN = "contact_human_agent"
ORDER = "cancel_order"
SEND, SUGGEST, HANDOFF = Action.SEND, Action.SUGGEST, Action.HANDOFF

# (policy, intent, verdict, grounded, has_answer) -> (action, reason, use_fallback)
TABLE = [
    # A request for a person is handed off in every policy, answer or not...
    ("auto", HUMAN, "confident", True, True, HANDOFF, "customer asked for a human", False),
    ("hybrid", HUMAN, "ambiguous", False, True, HANDOFF, "customer asked for a human", False),
    ("assist", HUMAN, "confident", True, False, HANDOFF, "customer asked for a human", False),
    ("hybrid", HUMAN, None, True, True, HANDOFF, "customer asked for a human", False),
    # ...but a human label the model itself calls out of scope is just out of scope.
    ("auto", HUMAN, "out_of_scope", True, True, HANDOFF, "out of scope", False),
    ("auto", ORDER, "out_of_scope", True, True, HANDOFF, "out of scope", False),
    ("assist", ORDER, "out_of_scope", True, True, HANDOFF, "out of scope", False),
    # No intent model (no verdict) is out of scope too.
    ("hybrid", None, None, True, True, HANDOFF, "out of scope", False),
    # Nothing retrieved: nothing to send or suggest.
    ("auto", ORDER, "confident", True, False, HANDOFF, "nothing relevant retrieved", False),
    ("assist", ORDER, "confident", True, False, HANDOFF, "nothing relevant retrieved", False),
    # assist: always a suggestion; an ungrounded draft is replaced by the retrieved answer.
    ("assist", ORDER, "confident", True, True, SUGGEST, "assist policy", False),
    ("assist", ORDER, "confident", False, True, SUGGEST, "assist policy", True),
    ("assist", ORDER, "ambiguous", True, True, SUGGEST, "assist policy", False),
    # Confident and grounded: sent as drafted under auto and hybrid.
    ("auto", ORDER, "confident", True, True, SEND, "confident and grounded", False),
    ("hybrid", ORDER, "confident", True, True, SEND, "confident and grounded", False),
    # auto sends the best retrieved answer whenever it cannot send the draft.
    ("auto", ORDER, "confident", False, True, SEND, "confident; best retrieved answer", True),
    ("auto", ORDER, "ambiguous", True, True, SEND, "ambiguous; best retrieved answer", True),
    ("auto", ORDER, "ambiguous", False, True, SEND, "ambiguous; best retrieved answer", True),
    # hybrid suggests instead, keeping a grounded draft.
    ("hybrid", ORDER, "ambiguous", True, True, SUGGEST, "ambiguous intent", False),
    ("hybrid", ORDER, "ambiguous", False, True, SUGGEST, "ambiguous intent", True),
    ("hybrid", ORDER, "confident", False, True, SUGGEST, "draft not grounded", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "intent", "verdict", "grounded", "has_answer", "action", "reason", "fallback"),
    TABLE,
    ids=[f"{t[0]}-{t[1]}-{t[2]}-{'grounded' if t[3] else 'ungrounded'}-{t[4]}" for t in TABLE],
)
def test_table(
    policy: str,
    intent: str | None,
    verdict: str | None,
    grounded: bool,
    has_answer: bool,
    action: Action,
    reason: str,
    fallback: bool,
) -> None:
    got = decide(
        policy,
        intent=intent,
        verdict=verdict,
        grounded=grounded,
        has_answer=has_answer,
        human_label=HUMAN,
    )
    assert got == Decision(action, reason, use_fallback=fallback)


ALL_INPUTS = list(
    itertools.product(
        ("auto", "hybrid", "assist"),
        (None, ORDER, HUMAN),
        (None, "confident", "ambiguous", "out_of_scope"),
        (True, False),
        (True, False),
    )
)


@pytest.mark.parametrize(("policy", "intent", "verdict", "grounded", "has_answer"), ALL_INPUTS)
def test_rules_that_hold_for_every_input(
    policy: str, intent: str | None, verdict: str | None, grounded: bool, has_answer: bool
) -> None:
    got = decide(
        policy,
        intent=intent,
        verdict=verdict,
        grounded=grounded,
        has_answer=has_answer,
        human_label=HUMAN,
    )
    if not grounded and got.action is not HANDOFF:
        assert got.use_fallback, "an ungrounded draft went out as written"
    if verdict in (None, "out_of_scope") or not has_answer or intent == HUMAN:
        assert got.action is HANDOFF
    if policy == "assist":
        assert got.action is not SEND, "assist sent a reply without an agent"
    if got.action is SEND and not got.use_fallback:
        assert verdict == "confident" and grounded and policy != "assist"
