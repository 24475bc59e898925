"""The frozen-head mix: what training stores, how the classifier mixes, what the server passes
it (the retrieval encoder's plain query vectors, so no second encoder pass)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.errors import ModelError
from bot.runtime import ModelRuntime, ModelSet, Query
from bot.settings import Settings
from finetune.intent.classifier import IntentClassifier
from finetune.intent.frozen_head import (
    FROZEN_HEAD_FILE,
    MIX_WEIGHTS,
    TAUS,
    FrozenHead,
    choose_mix,
    class_means,
    linear,
    save_head,
)
from retrieval.store import IndexStore
from tests.finetune.intent.helpers import SAMPLE_QUERIES, with_config
from tests.retrieval.conftest import PAIRS, BagOfWordsEncoder

TEXTS = list(SAMPLE_QUERIES)


def test_training_stores_the_head_and_the_dev_choice(model_dir: Path) -> None:
    config = json.loads((model_dir / "intent_config.json").read_text())
    assert config["frozen_encoder"] == str(Path(config["base_encoder"]).resolve())
    assert (model_dir / FROZEN_HEAD_FILE).is_file()
    calibration = json.loads((model_dir / "metrics.json").read_text())["calibration"]
    assert calibration["frozen_head"] in TAUS
    assert config["frozen_weight"] == calibration["frozen_weight"] in MIX_WEIGHTS
    assert config["frozen_tau"] in TAUS[calibration["frozen_head"]]
    # The dev split chose the mix, so it is at least as accurate there as the model alone.
    assert calibration["dev_top1_mixed"] >= calibration["dev_top1_model_only"]


def test_mix_uses_given_vectors_exactly_as_its_own(model_dir: Path, tmp_path: Path) -> None:
    mixed = with_config(model_dir, tmp_path / "a", frozen_weight=0.5, frozen_tau=0.05)
    alone = with_config(model_dir, tmp_path / "b", frozen_weight=1.0)
    assert mixed.frozen_encoder is not None and alone.frozen_encoder is None
    assert mixed.frozen_head is not None
    vectors = mixed.plain_vectors(TEXTS)
    assert mixed.predict(TEXTS) == mixed.predict(TEXTS, vectors=vectors)
    probs = mixed.probabilities(TEXTS)
    assert torch.allclose(probs.sum(-1), torch.ones(len(TEXTS)), atol=1e-5)
    model_only = alone.probabilities(TEXTS)
    assert not torch.allclose(probs, model_only, atol=1e-3)
    head_only = mixed.frozen_head.probabilities(vectors, 0.05)
    assert torch.allclose(probs, 0.5 * model_only + 0.5 * head_only, atol=1e-4)
    assert alone._embedder is None  # without the mix no frozen encoder is loaded


def test_vectors_of_the_wrong_shape_are_a_model_error(model_dir: Path, tmp_path: Path) -> None:
    mixed = with_config(model_dir, tmp_path, frozen_weight=0.5)
    with pytest.raises(ModelError, match="dimensions"):
        mixed.predict(TEXTS, vectors=np.zeros((len(TEXTS), 7), dtype=np.float32))


def test_artifact_without_a_head_loads_and_one_missing_its_file_does_not(
    model_dir: Path, tmp_path: Path
) -> None:
    older = with_config(model_dir, tmp_path, frozen_encoder=None)
    assert older.frozen_head is None and older.frozen_encoder is None
    assert len(older.predict(TEXTS)) == len(TEXTS)
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / FROZEN_HEAD_FILE).unlink()
    with pytest.raises(ModelError, match=f"incomplete: {FROZEN_HEAD_FILE}"):
        IntentClassifier.load(broken)


def test_heads_fit_their_data() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    targets = np.repeat(np.arange(3), 20)  # class 3 never seen
    vectors = centres[targets] + 0.1 * rng.standard_normal((60, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for head in (class_means(vectors, targets, 4), linear(vectors, targets, 4)):
        assert head.weight.shape == (4, 16) and head.bias.shape == (4,)
        predicted = head.probabilities(vectors, 1.0).argmax(-1).numpy()
        assert (predicted == targets).mean() == 1.0
    assert linear(vectors, targets, 4).probabilities(vectors, 1.0)[:, 3].max() < 1e-6
    two = np.isin(targets, (0, 2))  # sklearn keeps one row for two classes
    head = linear(vectors[two], targets[two], 4)
    assert (head.probabilities(vectors[two], 1.0).argmax(-1).numpy() == targets[two]).all()


def test_choose_mix_keeps_the_model_alone_unless_a_head_helps() -> None:
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    vectors = np.eye(3, dtype=np.float32)[targets.numpy()]
    heads = {"prototypes": FrozenHead(torch.eye(3), torch.zeros(3))}  # always right
    right = torch.nn.functional.one_hot(targets, 3).float() * 0.8 + 0.2 / 3
    assert choose_mix(right, vectors, heads, targets).weight == 1.0
    wrong = right.clone()
    wrong[:2] = wrong[:2].roll(1, dims=-1)  # the model misses two of six
    choice = choose_mix(wrong, vectors, heads, targets)
    assert choice.kind == "prototypes" and choice.weight < 1.0 and choice.accuracy == 1.0


def _bag_of_words_model(model_dir: Path, tmp_path: Path, encoder: BagOfWordsEncoder) -> Path:
    """A copy of the tiny model whose frozen head reads bag-of-words vectors."""
    with_config(model_dir, tmp_path, frozen_encoder=encoder.name, frozen_weight=0.5)
    copy = (tmp_path / "copy").rename(tmp_path / "bow")
    labels = json.loads((copy / "labels.json").read_text())
    vectors = encoder.encode([label.replace("_", " ") for label in labels])
    save_head(copy, class_means(vectors, np.arange(len(labels)), len(labels)))
    return copy


@pytest.mark.parametrize("parallel", [True, False])
def test_server_passes_retrieval_vectors_and_never_encodes_twice(
    model_dir: Path, tmp_path: Path, parallel: bool
) -> None:
    encoder = BagOfWordsEncoder()
    classifier = IntentClassifier.load(_bag_of_words_model(model_dir, tmp_path, encoder))
    assert classifier.frozen_encoder == encoder.name
    store = IndexStore(tmp_path / "indexes")
    store.build(PAIRS, encoder, version="v")
    settings = Settings(home=tmp_path, server={"parallel_encoders": parallel})
    runtime = ModelRuntime(settings, db=None, load_generator=False, embedder=encoder)  # type: ignore[arg-type]
    runtime.models = ModelSet(embedder=encoder, index=store.load("v", encoder), intent=classifier)
    assert (runtime._side is not None) == (parallel and (os.cpu_count() or 1) > 1)
    queries = [Query(t, context=("where is my package",)) for t in TEXTS]
    try:
        got = [u.prediction for u in runtime.understand_batch(queries)]
    finally:
        if runtime._side is not None:
            runtime._side.shutdown()
    # The plain vectors of the texts (not the context-blended query vectors) reach the mix,
    # and the classifier never loads an encoder of its own (it could not: there is no such
    # model directory, as the last line shows).
    assert got == classifier.predict(TEXTS, vectors=encoder.encode(TEXTS))
    assert classifier._embedder is None
    with pytest.raises(ModelError):
        classifier.predict(TEXTS)
