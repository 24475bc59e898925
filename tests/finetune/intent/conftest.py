"""Intent-model fixtures: models trained once per session (tiny encoder: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.intent.data import Examples
from finetune.intent.train import train_intent
from tests.finetune.intent.helpers import REAL_HP, TINY_HP, banking_sample


@pytest.fixture(scope="session")
def banking_train() -> Examples:
    return banking_sample("train")


@pytest.fixture(scope="session")
def banking_test() -> Examples:
    return banking_sample("test")


@pytest.fixture(scope="session")
def tiny_model(
    tiny_encoder_dir: Path, banking_train: Examples, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("tiny-model") / "model"
    return train_intent(
        banking_train, TINY_HP, out, progress=False, base_encoder=str(tiny_encoder_dir)
    )


@pytest.fixture(scope="session")
def real_model(banking_train: Examples, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled encoder fine-tuned on 4 banking intents + out-of-scope (about 20 s)."""
    out = tmp_path_factory.mktemp("real-model") / "model"
    return train_intent(banking_train, REAL_HP, out, progress=False)
