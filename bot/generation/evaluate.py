"""Offline evaluation of replies: grounding, placeholder leaks, ROUGE-L, speed.

ROUGE-L here is the LCS F-measure over lower-cased word tokens. Reference answers hold slots
like ``{{Order Number}}``; both sides go through :func:`placeholders.fill` with the same
conversation before scoring, so a reply is not penalised for filling a slot the way the
customer would see it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.generation.placeholders import fill
from bot.generation.types import Draft, ReplyRequest
from retrieval.consensus import lcs_f1, words
from retrieval.hit import Hit


def rouge_l(hypothesis: str, reference: str) -> float:
    return lcs_f1(words(hypothesis), words(reference))


@dataclass(frozen=True, slots=True)
class Case:
    question: str
    reference: str
    intent: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyScores:
    n: int
    grounded_rate: float
    placeholder_leak_rate: float
    rouge_l: float
    tokens_per_s: float | None
    first_token_ms_p50: float | None
    mean_tokens: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _summarise(
    cases: Sequence[Case],
    texts: Sequence[str],
    grounded: Sequence[bool],
    drafts: Sequence[Draft | None],
    seconds: float,
) -> ReplyScores:
    n = len(cases)
    leaks = sum("{{" in t or "}}" in t for t in texts)
    rouge = [
        rouge_l(t, fill(c.reference, [("customer", c.question)], ask=False)[0])
        for t, c in zip(texts, cases, strict=True)
    ]
    real = [d for d in drafts if d is not None]
    tokens = sum(d.tokens for d in real)
    firsts = [d.first_token_ms for d in real if d.first_token_ms is not None]
    return ReplyScores(
        n=n,
        grounded_rate=round(sum(grounded) / n, 4) if n else 0.0,
        placeholder_leak_rate=round(leaks / n, 4) if n else 0.0,
        rouge_l=round(statistics.fmean(rouge), 4) if rouge else 0.0,
        tokens_per_s=round(tokens / seconds, 2) if real and seconds else None,
        first_token_ms_p50=round(statistics.median(firsts), 1) if firsts else None,
        mean_tokens=round(tokens / len(real), 1) if real else None,
        seconds=round(seconds, 2),
    )


def verbatim_scores(cases: Sequence[Case], hits: Sequence[Sequence[Hit]]) -> ReplyScores:
    """The baseline: send the best retrieved answer, placeholders handled."""
    texts = [
        fill(h[0].answer, [("customer", c.question)])[0] if h else ""
        for c, h in zip(cases, hits, strict=True)
    ]
    return _summarise(cases, texts, [bool(h) for h in hits], [None] * len(cases), 0.0)


async def evaluate_replies(
    generator: Any,
    cases: Sequence[Case],
    hits: Sequence[Sequence[Hit]],
    *,
    concurrency: int = 8,
    on_done: Callable[[int], None] | None = None,
) -> tuple[ReplyScores, list[Draft]]:
    """Generate a reply per case (``concurrency`` at a time) and score them."""
    semaphore = asyncio.Semaphore(concurrency)
    drafts: list[Draft | None] = [None] * len(cases)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with semaphore:
            request = ReplyRequest(
                message=cases[i].question, hits=tuple(hits[i]), intent=cases[i].intent
            )
            drafts[i] = await generator.generate(request)
        done += 1
        if on_done is not None:
            on_done(done)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(cases))))
    seconds = time.perf_counter() - started
    final = [d for d in drafts if d is not None]
    scores = _summarise(cases, [d.text for d in final], [d.grounded for d in final], final, seconds)
    return scores, final
