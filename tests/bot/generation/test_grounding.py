from __future__ import annotations

import numpy as np
import pytest

from bot.generation import grounding
from retrieval.hit import Hit

SOURCE = "You can cancel your order from the Orders page within 24 hours of purchase."


def test_copy_of_the_source_scores_high_and_unrelated_text_low():
    assert grounding.score(SOURCE, [SOURCE]) == 1.0
    related = "You can cancel the order on the Orders page within 24 hours."
    unrelated = "Our headquarters host a jazz festival with free tickets every spring."
    assert grounding.score(related, [SOURCE]) > 0.8
    assert grounding.score(unrelated, [SOURCE]) < 0.3


def test_invented_numbers_halve_the_score_unless_the_customer_gave_them():
    draft = "You can cancel order 5531 from the Orders page within 24 hours, reference 7781."
    low = grounding.score(draft, [SOURCE], given=["5531"])
    high = grounding.score(draft.replace(", reference 7781", ""), [SOURCE], given=["5531"])
    assert low < 0.5 < high
    assert grounding.score(draft.replace(", reference 7781", ""), [SOURCE]) < 0.5


@pytest.mark.parametrize(
    ("draft", "promised"),
    [
        ("Your refund of $900 has been approved.", ["refund", "$900"]),
        ("We will credit 1,250.00 euros to your account.", ["1,250.00 euros"]),
        ("You will get a voucher as a goodwill gesture.", ["voucher", "goodwill"]),
        ("Your order will arrive tomorrow.", ["tomorrow"]),
        ("It ships by Friday, or on March 3rd at the latest.", ["by friday", "march 3rd"]),
        ("You can cancel within 48 hours.", ["within 48 hours"]),
        ("We can send it 2026-12-24 at no extra cost.", ["2026-12-24", "at no extra cost"]),
    ],
)
def test_promises_no_source_states_make_a_draft_ungrounded(draft, promised):
    assert grounding.unsupported_promises(draft, [SOURCE]) == promised
    assert grounding.score(draft, [SOURCE]) == 0.0


def test_promises_the_sources_state_are_allowed():
    source = "Refunds of $1,000 or more are paid within 24 hours, by Friday at the latest."
    draft = "Your refund of $1,000 is paid within 24 hours, by Friday at the latest."
    assert grounding.unsupported_promises(draft, [source]) == []
    assert grounding.score(draft, [source]) > 0.8
    # Written in lookalike characters, the same promise is still read.
    disguised = "Your re\u200bfund of \uff04\uff19\uff10\uff10 is paid to\u00admorrow."
    assert grounding.unsupported_promises(disguised, [source]) == ["$900", "tomorrow"]


def test_hits_are_accepted_and_empty_inputs_score_zero():
    hit = Hit(pair_id=1, score=0.9, question="cancel?", answer=SOURCE)
    assert grounding.score(SOURCE, [hit]) == 1.0
    assert grounding.score("", [hit]) == 0.0
    assert grounding.score(SOURCE, []) == 0.0


class _Embedder:
    """Maps texts to fixed unit vectors, standing in for a sentence encoder."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = np.array([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_embedding_similarity_is_mixed_in():
    draft = "Cancel it from the Orders page."
    near = _Embedder({draft: [1, 0], SOURCE: [1, 0]})
    far = _Embedder({draft: [1, 0], SOURCE: [0, 1]})
    plain = grounding.score(draft, [SOURCE])
    assert grounding.score(draft, [SOURCE], near) == round(0.5 * plain + 0.5, 4)
    assert grounding.score(draft, [SOURCE], far) == round(0.5 * plain, 4)
