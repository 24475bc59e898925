"""The values generation takes and gives: a reply request and the draft written for it.

:class:`ReplyRequest` is defined with the prompt built from it (``finetune/generator/prompt.py``),
because fine-tuning builds its prompts from requests exactly as the server does.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetune.generator.prompt import ReplyRequest

__all__ = ["Draft", "ReplyRequest"]


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
