"""Training on a tiny random encoder: artifact layout, round trip, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peft import PeftConfig

from bot.errors import InputError
from finetune.intent.classifier import IntentClassifier
from finetune.intent.data import Examples, split_dev
from finetune.intent.evaluate import evaluate
from finetune.intent.train import train_intent
from tests.finetune.intent.helpers import TINY_HP


def test_artifact_is_a_plain_hf_peft_directory(tiny_model: Path) -> None:
    for name in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "tokenizer/tokenizer.json",
        "head.safetensors",
        "labels.json",
        "intent_config.json",
        "hyperparams.json",
        "metrics.json",
    ):
        assert (tiny_model / name).is_file(), name
    assert PeftConfig.from_pretrained(tiny_model / "adapter").r == TINY_HP.lora_r
    config = json.loads((tiny_model / "intent_config.json").read_text())
    assert config["temperature"] > 0
    assert 0 <= config["oos_threshold"] <= 1
    assert json.loads((tiny_model / "labels.json").read_text()) == config["labels"]
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert len(metrics["data_sha256"]) == 64
    assert metrics["training_seconds"] > 0
    assert {"accuracy", "macro_f1", "ece", "oos_recall"} <= metrics["dev"].keys()
    assert len(metrics["history"]) == TINY_HP.epochs
    assert not tiny_model.with_name("model.partial").exists()


def test_round_trip_gives_identical_predictions(
    tiny_model: Path, banking_train: Examples, banking_test: Examples
) -> None:
    texts = list(banking_test.texts)
    first = IntentClassifier.load(tiny_model)
    second = IntentClassifier.load(tiny_model)
    assert first.predict(texts) == second.predict(texts)
    # The dev figures written at training time are reproduced by the loaded model.
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    _, dev = split_dev(banking_train, TINY_HP.dev_fraction, TINY_HP.seed)
    again = evaluate(first, dev.texts, dev.labels, "oos")
    assert again["n"] == metrics["dev"]["n"] == metrics["dev_examples"]
    assert again["accuracy"] == metrics["dev"]["accuracy"]
    assert again["ece"] == pytest.approx(metrics["dev"]["ece"])


def test_same_seed_same_model(
    tiny_encoder_dir: Path, tiny_model: Path, banking_train: Examples, tmp_path: Path
) -> None:
    again = train_intent(
        banking_train,
        TINY_HP,
        tmp_path / "again",
        progress=False,
        base_encoder=str(tiny_encoder_dir),
    )
    texts = list(banking_train.texts[:40])
    a = IntentClassifier.load(tiny_model).probabilities(texts)
    b = IntentClassifier.load(again).probabilities(texts)
    assert (a == b).all()


def test_existing_output_directory_is_not_overwritten(
    tiny_encoder_dir: Path, tiny_model: Path, banking_train: Examples
) -> None:
    with pytest.raises(InputError, match="already exists"):
        train_intent(
            banking_train, TINY_HP, tiny_model, progress=False, base_encoder=str(tiny_encoder_dir)
        )
