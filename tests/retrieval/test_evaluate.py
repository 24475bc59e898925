"""Retrieval figures: hit@1, hit@5, MRR by intent, and the latency fields."""

from __future__ import annotations

import pytest

from bot.errors import InputError
from retrieval.config import RetrievalSettings
from retrieval.evaluate import evaluate, score_hits
from retrieval.hit import Hit
from retrieval.store import IndexStore


def _hits(*intents: str) -> list[Hit]:
    return [Hit(i, 1.0 - i / 10, "q", "a", intent) for i, intent in enumerate(intents)]


def test_score_hits_by_first_same_intent_rank():
    results = [_hits("a", "b"), _hits("b", "a"), _hits("x", "x", "x", "x", "x", "a"), _hits("z")]
    figures = score_hits(results, ["a", "a", "a", "a"])
    assert figures["hit_at_1"] == 0.25
    assert figures["hit_at_5"] == 0.5
    assert figures["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 6) / 4)


def test_evaluate_with_and_without_predicted_intents(tmp_path, encoder, pairs):
    store = IndexStore(tmp_path, RetrievalSettings(intent_boost=1.0))
    store.build(pairs, encoder, version="v")
    index = store.load("v", encoder)
    texts = ["cancel my order please", "how long does a refund take", "new shipping address"]
    labels = ["cancel_order", "get_refund", "track_order"]  # the last is mislabelled on purpose
    plain = evaluate(index, texts, labels)
    assert plain.queries == 3
    assert plain.hit_at_1 == pytest.approx(2 / 3, abs=1e-4)
    assert plain.intent_mode == "off"
    assert 0 < plain.p50_ms <= plain.p99_ms
    steered = evaluate(
        index, texts, labels, predicted=["cancel_order", "get_refund", "track_order"]
    )
    assert steered.hit_at_1 == 1.0
    assert steered.intent_mode == "boost"
    with pytest.raises(InputError, match="as many labels"):
        evaluate(index, texts, labels[:2])
