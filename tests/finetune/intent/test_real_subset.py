"""The bundled encoder fine-tuned on a small real subset: 4 banking intents + out of scope.

Slow: fine-tuning the real encoder, even on 150 examples, takes 30 s on 2 idle cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from finetune.intent.classifier import IntentClassifier
from finetune.intent.data import Examples
from finetune.intent.evaluate import evaluate
from tests.finetune.intent.helpers import (
    BANKING_INTENTS,
    HANDWRITTEN_OOS,
    OFF_TOPIC,
    OOS,
    write_csv,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classifier(real_model: Path) -> IntentClassifier:
    return IntentClassifier.load(real_model)


def test_accuracy_is_far_above_chance(classifier: IntentClassifier, banking_test: Examples) -> None:
    figures = evaluate(classifier, banking_test.texts, banking_test.labels, OOS)
    chance = 1 / (len(BANKING_INTENTS) + 1)
    assert figures["accuracy"] >= 0.85 > 3 * chance
    assert figures["in_scope_accuracy"] >= 0.85
    assert figures["oos_recall"] >= 0.8


def test_out_of_scope_sentences_get_out_of_scope(
    classifier: IntentClassifier, banking_train: Examples
) -> None:
    assert set(HANDWRITTEN_OOS).isdisjoint(banking_train.texts)
    in_scope = "my new card still has not arrived, when will it come?"
    preds = classifier.predict([*HANDWRITTEN_OOS, *OFF_TOPIC, in_scope])
    n = len(HANDWRITTEN_OOS)
    assert [p.verdict for p in preds[:n]] == ["out_of_scope"] * n
    assert all(p.verdict != "confident" for p in preds[n:-1])
    assert preds[-1].intent == "card_arrival"
    assert preds[-1].verdict != "out_of_scope"


def test_cli_eval_json_reports_every_figure(
    real_model: Path, banking_test: Examples, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "test.csv", banking_test)
    result = CliRunner().invoke(
        cli, ["eval", "intent", "--model", str(real_model), "--data", str(data), "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{") :])
    for key in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "ece", "predict_ms_p50"):
        assert isinstance(figures[key], float), key
    assert set(figures["per_intent"]) == {*BANKING_INTENTS, OOS}
    assert {"precision", "recall", "f1", "support"} <= figures["per_intent"][OOS].keys()


def test_cli_eval_report_writes_confusion_png_and_errors_csv(
    real_model: Path, banking_test: Examples, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "held_out.csv", banking_test, label_col="category")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "intent",
            "--model",
            str(real_model),
            "--data",
            str(data),
            "--label-col",
            "category",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "oos recall" in result.output
    png = real_model / "reports" / "held_out_confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = (real_model / "reports" / "held_out_errors.csv").read_text().splitlines()
    assert errors[0] == "text,gold,predicted,confidence"
