"""The runtime classifier: loading, verdicts, batching and thread safety."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.errors import ModelError
from finetune.intent.classifier import IntentClassifier, IntentPrediction
from tests.finetune.intent.helpers import SAMPLE_QUERIES, with_config

TEXTS = [*SAMPLE_QUERIES, "hi"]


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> IntentClassifier:
    return IntentClassifier.load(model_dir)


def test_predictions_follow_the_contract(classifier: IntentClassifier, model_dir: Path) -> None:
    preds = classifier.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    assert classifier.path == model_dir
    assert classifier.version.startswith("intent-")
    assert set(classifier.labels) == {
        "card_arrival",
        "exchange_rate",
        "lost_or_stolen_card",
        "oos",
        "top_up_failed",
    }
    for p in preds:
        assert isinstance(p, IntentPrediction)
        assert p.intent == p.top_k[0][0]
        assert p.confidence == pytest.approx(p.top_k[0][1], abs=1e-6)
        assert [s for _, s in p.top_k] == sorted((s for _, s in p.top_k), reverse=True)
        assert len(p.top_k) == 5
        assert p.verdict in ("confident", "ambiguous", "out_of_scope")
        if p.intent == "oos":
            assert p.verdict == "out_of_scope"


def test_batch_equals_one_by_one_and_keeps_order(classifier: IntentClassifier) -> None:
    batch = classifier.probabilities(TEXTS)
    for i, text in enumerate(TEXTS):
        single = classifier.probabilities([text])[0]
        assert single.argmax() == batch[i].argmax()
        assert (single - batch[i]).abs().max() < 2e-2  # bf16 rounding differs with padding


def test_empty_batch_and_blank_text(classifier: IntentClassifier) -> None:
    assert classifier.predict([]) == []
    assert len(classifier.predict(["   "])) == 1


def test_threshold_above_every_confidence_makes_everything_out_of_scope(
    model_dir: Path, tmp_path: Path
) -> None:
    strict = with_config(model_dir, tmp_path, oos_threshold=1.01)
    assert {p.verdict for p in strict.predict(TEXTS)} == {"out_of_scope"}


def test_wide_margin_makes_in_scope_answers_ambiguous(model_dir: Path, tmp_path: Path) -> None:
    wide = with_config(model_dir, tmp_path, oos_threshold=0.0, ambiguity_margin=1.0)
    for p in wide.predict(TEXTS):
        assert p.verdict == ("out_of_scope" if p.intent == "oos" else "ambiguous")


def test_temperature_changes_confidence_not_ranking(model_dir: Path, tmp_path: Path) -> None:
    hot = with_config(model_dir, tmp_path, temperature=50.0)
    base = IntentClassifier.load(model_dir)
    for a, b in zip(base.predict(TEXTS), hot.predict(TEXTS), strict=True):
        assert [i for i, _ in a.top_k] == [i for i, _ in b.top_k]
        assert b.confidence < a.confidence
    # softmax(z / 50) is softmax(z / t) raised to t / 50 and renormalised, whatever the logits'
    # scale (an assertion on the confidence alone would depend on how far training pushed them).
    t = json.loads((model_dir / "intent_config.json").read_text())["temperature"]
    expected = base.probabilities(TEXTS).double() ** (t / 50.0)
    expected /= expected.sum(dim=-1, keepdim=True)
    assert (hot.probabilities(TEXTS).double() - expected).abs().max() < 1e-3


def test_concurrent_threads_get_the_sequential_answers(classifier: IntentClassifier) -> None:
    expected = [classifier.predict([t]) for t in TEXTS]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: classifier.predict([t]), TEXTS * 3))
    assert got == expected * 3


def test_missing_or_incomplete_artifact_is_a_model_error(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        IntentClassifier.load(tmp_path / "nothing")
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "head.safetensors").unlink()
    with pytest.raises(ModelError, match=r"incomplete: missing head.safetensors"):
        IntentClassifier.load(broken)
