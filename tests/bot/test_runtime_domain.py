"""How close a message is to the known questions (``Understanding.domain_score``) when it carries
a value the logs keep as a slot: "cancel order 5521" against "cancel order {{Order Number}}"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.dialogue.spelling import Speller
from bot.runtime import ModelRuntime, ModelSet, Query
from bot.settings import Settings
from retrieval.pairs import Pair
from retrieval.store import IndexStore
from tests.retrieval.conftest import BagOfWordsEncoder


class RecordingEncoder(BagOfWordsEncoder):
    """The bag-of-words encoder, keeping every batch of texts it was asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def encode(
        self, texts: list[str], batch_size: int = 64, max_tokens: int | None = None
    ) -> np.ndarray:
        self.batches.append(list(texts))
        return super().encode(texts, batch_size, max_tokens)


def _domain_scores(
    tmp_path: Path,
    questions: list[str],
    texts: list[str],
    encoder: BagOfWordsEncoder | None = None,
    spelling: bool = False,
) -> list[float]:
    encoder = encoder or BagOfWordsEncoder()
    pairs = [Pair(i, q, f"answer {i}", "cancel_order") for i, q in enumerate(questions, 1)]
    store = IndexStore(tmp_path / "indexes")
    store.build(pairs, encoder, version="v")
    settings = Settings(home=tmp_path, server={"parallel_encoders": False})
    runtime = ModelRuntime(settings, db=None, load_generator=False, embedder=encoder)  # type: ignore[arg-type]
    index = store.load("v", encoder)
    speller = Speller.from_questions(index.questions) if spelling else None
    runtime.models = ModelSet(embedder=encoder, index=index, speller=speller)
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


def test_messages_and_their_slot_readings_share_one_encoder_call(tmp_path: Path) -> None:
    encoder = RecordingEncoder()
    question = "cancel order {{Order Number}}"
    _domain_scores(tmp_path, [question], ["cancel order #5521", "cancel my order"], encoder)
    # One call after the index build (and the small-talk examples, read once for good).
    asked = [b for b in encoder.batches[1:] if "cancel my order" in b or question in b]
    assert asked == [["cancel order #5521", "cancel my order", question]]


def test_encoders_read_a_padded_message_single_spaced_and_cut(tmp_path: Path) -> None:
    from bot.runtime import CHARS_PER_TOKEN, SLOT_READING_CHARS

    encoder = RecordingEncoder()
    question = "cancel order {{Order Number}}"
    padded = "cancel" + "\u200b" * 3000 + " " * 3000 + "\n\t" * 500 + "order #5521"
    long_text = "cancel order #5521 " * 400  # 7,600 characters
    got = _domain_scores(tmp_path, [question], [padded, long_text], encoder)
    # The padding costs nothing and hides nothing: the words after it are read, as the slot.
    assert got[0] == pytest.approx(1.0, abs=1e-5)
    asked = encoder.batches[1]  # the first call after the index build
    settings = Settings(home=tmp_path)
    cap = max(settings.retrieval.max_query_tokens, settings.intent.max_query_tokens)
    assert asked[0] == "cancel order #5521"
    assert len(asked[1]) == cap * CHARS_PER_TOKEN < len(long_text)
    # A text longer than SLOT_READING_CHARS is read once, as typed.
    assert len(asked) == 3 and asked[2] == "cancel order {{Order Number}}"
    assert len(asked[1]) > SLOT_READING_CHARS


def test_the_encoders_read_typos_as_the_words_meant(tmp_path: Path) -> None:
    question = "cancel my purchase"
    typed = ["cancle my pucrhase", "cancel my freemium purchase"]
    got = _domain_scores(tmp_path, [question, "upgrade freemium"], typed, spelling=True)
    assert got[0] == pytest.approx(1.0, abs=1e-5)
    assert got[0] > _cos(typed[0], question) + 0.5
    # A word of the known questions is no typo, though no English dictionary holds it.
    assert got[1] == pytest.approx(_cos(typed[1], question), abs=1e-5)
