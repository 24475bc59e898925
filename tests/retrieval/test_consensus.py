"""Leading with the retrieved answer the others agree with (retrieval/consensus.py)."""

from __future__ import annotations

import random

from retrieval.consensus import consensus_order, lcs_f1, order_answers, words
from retrieval.hit import Hit


def lcs_f1_by_hand(a: list[str], b: list[str]) -> float:
    """The textbook dynamic programme, to check rapidfuzz's LCS on word lists."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    lcs = table[-1][-1]
    return 2 * lcs / (len(a) + len(b)) if lcs else 0.0


def test_lcs_f1_counts_words_in_order() -> None:
    a = words("To cancel your order, open Orders and press Cancel.")
    b = words("Open Orders, then press cancel to cancel the order")
    assert a == ["to", "cancel", "your", "order", "open", "orders", "and", "press", "cancel"]
    # LCS: open orders press cancel (4 words) of 9 and 9 words.
    assert lcs_f1(a, b) == lcs_f1_by_hand(a, b) == 2 * 4 / 18
    assert lcs_f1(a, []) == 0.0 and lcs_f1(a, a) == 1.0
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(12)]
    for _ in range(50):
        x = rng.choices(vocab, k=rng.randint(1, 30))
        y = rng.choices(vocab, k=rng.randint(1, 30))
        assert abs(lcs_f1(x, y) - lcs_f1_by_hand(x, y)) < 1e-12


MAJORITY = "You can cancel your order from the Orders page: choose the order and press Cancel."


def hit(pair_id: int, score: float, answer: str) -> Hit:
    return Hit(pair_id, score, f"question {pair_id}", answer, "cancel_order")


def test_the_answer_most_others_agree_with_leads() -> None:
    hits = [
        hit(1, 0.91, "Our shop ships worldwide; delivery takes three to five days."),
        hit(2, 0.90, MAJORITY),
        hit(3, 0.88, MAJORITY.replace("press Cancel", "click the Cancel button")),
        hit(4, 0.85, "Go to the Orders page, choose the order and press Cancel to cancel it."),
        hit(5, 0.80, "Please contact us by phone."),
    ]
    ordered = consensus_order(hits)
    assert [h.pair_id for h in ordered][:3] == [2, 3, 4]
    assert sorted(ordered, key=lambda h: h.pair_id) == hits  # same hits, scores untouched
    assert order_answers(hits, "consensus") == ordered
    assert order_answers(hits, "score") == tuple(hits)


def test_relevance_still_counts() -> None:
    # Two copies of an irrelevant answer agree with each other, but a score near zero cannot
    # lead: agreement is weighted by the hit's own score.
    off_topic = "Our shop ships worldwide; delivery takes three to five days."
    hits = [
        hit(1, 0.9, MAJORITY),
        hit(2, 0.05, off_topic),
        hit(3, 0.04, off_topic),
        hit(4, 0.6, "Cancel it on the Orders page."),
    ]
    assert consensus_order(hits)[0].pair_id == 1


def test_too_few_hits_keep_their_order() -> None:
    hits = [hit(1, 0.9, "a b c"), hit(2, 0.5, MAJORITY)]
    assert consensus_order(hits) == tuple(hits)
    assert consensus_order([]) == ()
