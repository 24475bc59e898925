"""The one held-out rule: which texts training never sees, chosen by a hash of the text.

A text's side depends only on the text, so every copy of a question lands on the same side, on
every run and machine, and a text keeps its side as data grows. Generator fine-tuning, the
retraining gate and the conversation set (``benchmarks/conversation_set.py``) all hold out by
it, so none trains on what another scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

_DIGITS = 6


def text_hash(text: str, salt: str = "") -> int:
    """sha1 of the stripped, lower-cased text (after ``salt``), as an integer.

    Spacing inside the text counts: the conversation set hashes Bitext questions as written,
    and collapsing it would move some of its held-out questions. Callers whose copies of a
    text may differ in spacing pass it single-spaced.
    """
    key = text.strip().lower()
    if salt:
        key = f"{salt}\0{key}"
    return int(hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest(), 16)


def is_held_out(text: str, fraction: float = 0.1, salt: str = "") -> bool:
    """Whether ``text`` falls in the held-out ``fraction``; another ``salt``, another split.

    The hash's last decimal digits, read from the last one, place the text in [0, 1); it is held
    out below ``fraction``. A tenth is then exactly the texts whose hash ends in 0 (the rule the
    conversation set was built with), and a larger fraction holds out a superset.
    """
    position = int(f"{text_hash(text, salt) % 10**_DIGITS:0{_DIGITS}d}"[::-1])
    return position < fraction * 10**_DIGITS


def split_held_out(
    items: Iterable[T], text: Callable[[T], str], fraction: float = 0.1, salt: str = ""
) -> tuple[list[T], list[T]]:
    """``(kept, held_out)``: the items whose ``text(item)`` :func:`is_held_out`, and the rest."""
    kept: list[T] = []
    held: list[T] = []
    for item in items:
        (held if is_held_out(text(item), fraction, salt) else kept).append(item)
    return kept, held
