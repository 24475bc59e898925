"""The values generation takes and gives: a reply request and the draft written for it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import InputError
from retrieval.hit import Hit

ROLES = ("customer", "bot", "agent")


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """One customer message to answer, with the conversation so far and what retrieval found.

    ``history`` holds earlier turns, oldest first, as ``(role, text)`` with role one of
    ``customer``, ``bot`` or ``agent``; it does not include ``message`` itself.
    """

    message: str
    history: tuple[tuple[str, str], ...] = ()
    hits: tuple[Hit, ...] = ()
    intent: str | None = None
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.message, str) or not self.message.strip():
            raise InputError("ReplyRequest.message must be a non-empty string")
        for i, turn in enumerate(self.history):
            if len(turn) != 2 or turn[0] not in ROLES:
                raise InputError(
                    f"ReplyRequest.history[{i}]: expected (role, text) with role in {ROLES}, "
                    f"got {turn!r}"
                )
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise InputError("ReplyRequest.max_new_tokens must be at least 1")


@dataclass(frozen=True, slots=True)
class Draft:
    """A reply written for a request, with what the decision step needs to judge it.

    ``text`` and ``fallback`` never contain ``{{``: placeholders are filled from the
    conversation or reworded, and ``missing_slots`` names the ones the customer has not given.
    ``grounded`` is false when ``unsupported_promises`` names anything.
    """

    text: str
    grounding: float
    grounded: bool
    fallback: str
    sources: tuple[int, ...]
    missing_slots: tuple[str, ...] = ()
    tokens: int = 0
    model: str = ""
    first_token_ms: float | None = None
    elapsed_ms: float | None = None
    finish_reason: str = "stop"
    # What the draft promises (money, refunds, dates) that no source states: it is ungrounded.
    unsupported_promises: tuple[str, ...] = ()
