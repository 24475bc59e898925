"""Which retrieved answer to lead with: the one the other retrieved answers agree with most.

The nearest question's answer is one agent's wording on one day. Among the top retrieved
answers, the one that shares the most words, in order, with the others (score-weighted) is the
team's usual answer: a minimum-Bayes-risk choice under ROUGE-L, closer to the real answer than
the nearest one on held-out Bitext questions (``benchmarks/generation.py``).

Word overlap is the longest common subsequence of lower-cased word tokens (rapidfuzz's C++
LCS), the measure of :func:`bot.generation.evaluate.rouge_l`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz.distance import LCSseq

from retrieval.hit import Hit

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_f1(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two word sequences (symmetric)."""
    if not a or not b:
        return 0.0
    return 2 * LCSseq.similarity(a, b) / (len(a) + len(b))


def agreement(hits: Sequence[Hit]) -> list[float]:
    """Per hit: its score times the score-weighted mean overlap of its answer with the others'."""
    texts = [words(h.answer) for h in hits]
    weights = [max(h.score, 0.0) for h in hits]
    n = len(hits)
    overlap = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            overlap[i][j] = overlap[j][i] = lcs_f1(texts[i], texts[j])
    out = []
    for i in range(n):
        total = sum(weights[j] for j in range(n) if j != i)
        support = sum(weights[j] * overlap[i][j] for j in range(n) if j != i)
        out.append(weights[i] * (support / total if total > 0 else 1.0))
    return out


def consensus_order(hits: Sequence[Hit]) -> tuple[Hit, ...]:
    """``hits`` with the most agreed-on answer first, the rest by agreement (ties: by score).

    Scores are kept: callers that show relevance still can. With fewer than three hits there is
    no majority to find and the order is unchanged.
    """
    if len(hits) < 3:
        return tuple(hits)
    values = agreement(hits)
    order = sorted(range(len(hits)), key=lambda i: (-values[i], -hits[i].score, i))
    return tuple(hits[i] for i in order)


def order_answers(hits: Sequence[Hit], order: str) -> tuple[Hit, ...]:
    """``hits`` in the order setting ``retrieval.answer_order`` names ("consensus" or "score")."""
    return consensus_order(hits) if order == "consensus" else tuple(hits)
