"""How well a draft is supported by the answers it was written from.

The score mixes two signals, each in [0, 1]:

- *content overlap*: the share of the draft's content words (stop words removed, crude
  stemming) that appear in the sources or the conversation;
- *embedding similarity*: the best cosine similarity between the draft and one source, when an
  embedder (``encode(list[str]) -> normalised array``) is given.

Numbers are checked on their own: a number in the draft that appears in no source and not in
the conversation (an invented price, date or phone number) halves the score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from retrieval.hit import Hit


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d[\d.,:/-]*\d|\d")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    let me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own please same she should so some such than that the their theirs them themselves then
    there
    these they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves i'm i'll i've you're you'll
    you've we're we'll it's that's there's let's can't don't won't also may might must shall us
    sure thank thanks help assist happy glad understand""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS}


def overlap(draft: str, sources: Sequence[str]) -> float:
    """Share of the draft's content words found in the sources (1.0 for an empty draft)."""
    words = content_words(draft)
    if not words:
        return 1.0
    supported = set().union(*(content_words(s) for s in sources)) if sources else set()
    return len(words & supported) / len(words)


def unsupported_numbers(draft: str, sources: Sequence[str]) -> list[str]:
    known = " ".join(sources)
    return [n for n in _NUMBER.findall(draft) if n not in known]


def _texts(sources: Sequence[Any]) -> list[str]:
    return [s.answer if isinstance(s, Hit) else str(s) for s in sources]


def score(
    draft: str,
    sources: Sequence[str | Hit],
    embedder: Embedder | None = None,
    *,
    context: Sequence[str] = (),
) -> float:
    """Grounding of ``draft`` in ``sources`` (answers or hits), in [0, 1].

    ``context`` holds conversation texts whose facts the draft may repeat (an order number
    the customer gave); it counts for overlap and numbers but not for similarity.
    """
    texts = _texts(sources)
    if not draft.strip():
        return 0.0
    if not texts:
        return 0.0
    value = overlap(draft, [*texts, *context])
    if embedder is not None:
        vectors = np.asarray(embedder.encode([draft, *texts]), dtype=np.float32)
        similarity = float(np.clip((vectors[1:] @ vectors[0]).max(), 0.0, 1.0))
        value = 0.5 * value + 0.5 * similarity
    if unsupported_numbers(draft, [*texts, *context]):
        value *= 0.5
    return round(float(value), 4)
