"""A second opinion for the intent model: a classifier over a *frozen* sentence encoder.

The fine-tuned model and a classifier over the frozen encoder's vectors make different
mistakes. The artifact keeps that frozen head (``frozen_head.safetensors``: a weight and a bias
over L2-normalised vectors) and the mix chosen on the dev split::

    p = w * softmax(logits / T) + (1 - w) * softmax((vectors @ W.T + b) / tau)

Two heads are fitted and the dev split picks one, with ``w`` and ``tau``:

- ``prototypes``: each intent's mean vector (nearest class mean; best with few examples);
- ``linear``: multinomial logistic regression (best with many).

``w = 1`` (the model alone) is always a candidate, so the mix is kept only where the dev split
says it helps. The frozen vectors are the retrieval embedder's plain query vectors when both
use the same encoder, so the server pays no extra encoder pass for them (bot/runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bot.errors import ModelError

if TYPE_CHECKING:
    from retrieval.embedder import Embedder

FROZEN_HEAD_FILE = "frozen_head.safetensors"
# The grid the dev split chooses from. Weights below 0.5 would let the frozen head, the weaker
# classifier alone, outvote the fine-tuned one. Cosines need a small temperature to become
# usable logits; logistic regression's scores already are.
MIX_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TAUS = {"prototypes": (0.02, 0.05, 0.1), "linear": (0.5, 1.0, 2.0)}
# Inverse regularisation of the logistic regression (chosen on Banking77 for the benchmark's
# frozen-encoder baseline among 1, 10 and 100).
LINEAR_C = 10.0


@dataclass(frozen=True)
class FrozenHead:
    weight: torch.Tensor  # (intents, dim)
    bias: torch.Tensor  # (intents,)

    def scores(self, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(vectors, dtype=torch.float32) @ self.weight.T + self.bias

    def probabilities(self, vectors: np.ndarray | torch.Tensor, tau: float) -> torch.Tensor:
        return torch.softmax(self.scores(vectors) / tau, dim=-1)


def embedder_for(encoder: str, precision: str = "fp32") -> Embedder:
    """The sentence-transformers embedder of an intent artifact's base encoder."""
    from bot.core.bundled import ENCODER_NAME
    from finetune.intent.model import BUNDLED_ENCODER
    from retrieval.embedder import Embedder

    bundled = encoder in ("", BUNDLED_ENCODER, ENCODER_NAME)
    return Embedder(None if bundled else encoder, precision=precision)


def class_means(vectors: np.ndarray, targets: np.ndarray, classes: int) -> FrozenHead:
    """Each class's mean vector, L2-normalised: scores are cosines to the class means."""
    sums = torch.zeros(classes, vectors.shape[1]).index_add_(
        0, torch.as_tensor(targets, dtype=torch.long), torch.as_tensor(vectors, dtype=torch.float32)
    )
    return FrozenHead(torch.nn.functional.normalize(sums, dim=-1), torch.zeros(classes))


def linear(vectors: np.ndarray, targets: np.ndarray, classes: int, seed: int = 0) -> FrozenHead:
    """Multinomial logistic regression on the vectors (a class never seen scores -inf)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=LINEAR_C, max_iter=2000, random_state=seed)
    model.fit(vectors, targets)
    weight = torch.zeros(classes, vectors.shape[1])
    bias = torch.full((classes,), -1e4)
    seen = torch.as_tensor(model.classes_, dtype=torch.long)
    coef, intercept = torch.as_tensor(model.coef_), torch.as_tensor(model.intercept_)
    if len(seen) == 2:  # sklearn keeps one row for two classes: the second class's side
        coef, intercept = (
            torch.cat([-coef / 2, coef / 2]),
            torch.cat([-intercept / 2, intercept / 2]),
        )
    weight[seen], bias[seen] = coef.float(), intercept.float()
    return FrozenHead(weight, bias)


def mix(
    model_probs: torch.Tensor,
    vectors: np.ndarray | torch.Tensor,
    head: FrozenHead,
    weight: float,
    tau: float,
) -> torch.Tensor:
    if weight >= 1.0:
        return model_probs
    return weight * model_probs + (1 - weight) * head.probabilities(vectors, tau)


@dataclass(frozen=True)
class MixChoice:
    kind: str
    weight: float
    tau: float
    accuracy: float


def choose_mix(
    model_probs: torch.Tensor,
    vectors: np.ndarray,
    heads: dict[str, FrozenHead],
    targets: torch.Tensor,
) -> MixChoice:
    """The head, weight and temperature with the best dev accuracy; ties keep the model's
    weight high, then take the lower dev log-loss."""
    best: tuple[tuple[float, float, float], MixChoice] | None = None
    for kind, head in heads.items():
        for tau in TAUS[kind]:
            for weight in MIX_WEIGHTS:
                probs = mix(model_probs, vectors, head, weight, tau)
                accuracy = float((probs.argmax(-1) == targets).float().mean())
                nll = float(torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), targets))
                key = (accuracy, weight, -nll)
                if best is None or key > best[0]:
                    best = key, MixChoice(kind, weight, tau, accuracy)
    assert best is not None
    return best[1]


def save_head(path: Path, head: FrozenHead) -> None:
    tensors = {"weight": head.weight.contiguous(), "bias": head.bias.contiguous()}
    save_file(tensors, path / FROZEN_HEAD_FILE)


def load_head(path: Path, classes: int) -> FrozenHead:
    file = path / FROZEN_HEAD_FILE
    try:
        tensors = load_file(file)
        head = FrozenHead(tensors["weight"].float(), tensors["bias"].float())
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read {file}: {exc}") from None
    if head.weight.ndim != 2 or head.weight.shape[0] != classes or head.bias.shape != (classes,):
        raise ModelError(f"{file} holds {tuple(head.weight.shape)}, not one row per intent")
    return head
