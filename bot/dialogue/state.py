"""The dialogue state a conversation carries between turns, stored as JSON on its row.

It is what makes a bare "ORD-5521" complete the question asked two turns earlier, "the second
one" pick a clarification option, and "and how long does that take?" stay on the topic. Each
customer message's decision records the state it was made in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Bumped when the JSON shape changes; an unknown version reads as a fresh state.
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class PendingSlot:
    """A value the bot asked for, and the answer waiting for it."""

    slot: str  # the answer's slot name, e.g. "Order Number"
    intent: str
    answer: str  # the retrieved answer with its {{slots}}, filled once the value comes
    question: str  # the customer's message that needs the value
    attempts: int = 0  # messages since the ask that gave no valid value


@dataclass(frozen=True, slots=True)
class Clarification:
    """Intents offered as quick replies for a message the bot was unsure about."""

    options: tuple[str, ...]
    question: str  # the message being clarified; a chosen option is answered for it
    attempts: int = 1  # clarifications offered for this question so far


@dataclass(frozen=True, slots=True)
class DialogueState:
    active_intent: str | None = None  # the topic of the conversation, for follow-ups
    topic_question: str | None = None  # the customer's message that set that topic
    topic_answer: str | None = None  # the answer (with its {{slots}}) the topic was given
    topic_score: float | None = None  # how close the topic question is to a known question
    pending: PendingSlot | None = None
    clarify: Clarification | None = None
    slots: dict[str, str] = field(default_factory=dict)  # values the customer gave
    clarifications: int = 0  # clarifications offered in the conversation
    offered_human: bool = False  # the last bot message offered a person
    last_action: str | None = None
    turns: int = 0  # customer messages the bot has handled
    handoff_at: str | None = None  # ISO time the conversation was handed off
    handoff_notified: bool = False  # the customer was told nobody took it yet

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: Any) -> DialogueState:
        """The state stored on a conversation; anything unreadable is a fresh state."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        try:
            pending = data.get("pending")
            clarify = data.get("clarify")
            return cls(
                active_intent=data.get("active_intent"),
                topic_question=data.get("topic_question"),
                topic_answer=data.get("topic_answer"),
                topic_score=data.get("topic_score"),
                pending=PendingSlot(**pending) if pending else None,
                clarify=(
                    Clarification(
                        options=tuple(clarify["options"]),
                        question=clarify["question"],
                        attempts=int(clarify.get("attempts", 1)),
                    )
                    if clarify
                    else None
                ),
                slots=dict(data.get("slots") or {}),
                clarifications=int(data.get("clarifications", 0)),
                offered_human=bool(data.get("offered_human", False)),
                last_action=data.get("last_action"),
                turns=int(data.get("turns", 0)),
                handoff_at=data.get("handoff_at"),
                handoff_notified=bool(data.get("handoff_notified", False)),
            )
        except (KeyError, TypeError, ValueError):
            return cls()

    def evolve(self, **changes: Any) -> DialogueState:
        return replace(self, **changes)
