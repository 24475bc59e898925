"""How close a message is to the known questions (``Understanding.domain_score``) when it carries
a value the logs keep as a slot: "cancel order 5521" against "cancel order {{Order Number}}"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.runtime import ModelRuntime, ModelSet, Query
from bot.settings import Settings
from retrieval.pairs import Pair
from retrieval.store import IndexStore
from tests.retrieval.conftest import BagOfWordsEncoder


def _domain_scores(tmp_path: Path, questions: list[str], texts: list[str]) -> list[float]:
    encoder = BagOfWordsEncoder()
    pairs = [Pair(i, q, f"answer {i}", "cancel_order") for i, q in enumerate(questions, 1)]
    store = IndexStore(tmp_path / "indexes")
    store.build(pairs, encoder, version="v")
    settings = Settings(home=tmp_path, server={"parallel_encoders": False})
    runtime = ModelRuntime(settings, db=None, load_generator=False, embedder=encoder)  # type: ignore[arg-type]
    runtime.models = ModelSet(embedder=encoder, index=store.load("v", encoder))
    return [u.domain_score for u in runtime.understand_batch([Query(t) for t in texts])]


def _cos(a: str, b: str) -> float:
    va, vb = BagOfWordsEncoder().encode([a, b])
    return float(np.dot(va, vb))


def test_a_value_is_read_as_the_slot_the_logs_keep(tmp_path: Path) -> None:
    question = "cancel order {{Order Number}}"
    texts = ["cancel order #5521", "Cancel order ORD-5521 now", "cancel my order"]
    got = _domain_scores(tmp_path, [question], texts)
    assert got[0] == pytest.approx(1.0, abs=1e-5)
    assert got[0] > _cos(texts[0], question) + 0.1
    assert got[1] == pytest.approx(_cos("cancel order {{Order Number}} now", question), abs=1e-5)
    # A message without a value is read as it is.
    assert got[2] == pytest.approx(_cos(texts[2], question), abs=1e-5)


def test_logs_with_real_numbers_lose_nothing(tmp_path: Path) -> None:
    """Where the index keeps real numbers, the message as typed is nearer, and it counts."""
    question = "cancel order 98765"
    got = _domain_scores(tmp_path, [question], ["cancel order 98765"])
    assert got[0] == pytest.approx(1.0, abs=1e-5)
