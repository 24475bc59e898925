"""The one hyperparameter dataclass of the intent model, with the reasons for each default."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.errors import InputError


@dataclass(frozen=True)
class IntentHyperParams:
    """How an intent model is trained and calibrated.

    Defaults are tuned on a split of Banking77's train.csv for all-MiniLM-L6-v2 on 2 CPU cores.
    """

    seed: int = 13
    # Six passes: the head starts from class prototypes, so most of the gain comes early, and
    # six epochs of Banking77's full data fit 20 minutes on 2 cores.
    epochs: int = 6
    # Small batches give more updates per epoch; length bucketing keeps them cheap.
    batch_size: int = 32
    # LoRA tolerates a much higher LR than a full fine-tune; the head, initialised from class
    # means, needs only a nudge.
    lr: float = 1e-3
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    # Smoothing keeps logits moderate, which helps both accuracy and the later calibration.
    label_smoothing: float = 0.1
    # Rank 16 on every linear layer (attention and MLP): ~1.3M trainable parameters, enough to
    # adapt a 6-layer encoder without the cost of a full fine-tune's optimizer state.
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    # all-MiniLM-L6-v2 was trained with mean pooling and cosine similarity: keep both, so the
    # prototype-initialised head is a nearest-class-mean classifier before training starts.
    pooling: str = "mean"
    normalize: bool = True
    # Cosine logits are in [-1, 1]; the scale turns them into usable softmax logits.
    head_init_scale: float = 20.0
    max_length: int = 128
    # bf16 autocast on CPUs with native bf16 is faster and accuracy holds.
    bf16: bool = True
    # Batches are sorted by length inside shuffled pools of this many batches, so padding is
    # small while the order still changes every epoch.
    bucket_pool_batches: int = 50
    # Fit a head on the frozen encoder's vectors (class means or logistic regression) and mix
    # it into the model's probabilities with the weight the dev split chooses (1.0 = no mix):
    # the two make different mistakes.
    frozen_mix: bool = True
    # Held out (stratified, by distinct text) for calibration when no dev set is given.
    dev_fraction: float = 0.1
    # Without out-of-scope examples the threshold keeps this share of correct dev answers.
    oos_keep_correct: float = 0.95
    # The ambiguity margin is the smallest top1-top2 gap whose dev answers reach this accuracy.
    confident_accuracy: float = 0.95
    max_ambiguity_margin: float = 0.3

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "lr", "head_lr", "lora_r", "lora_alpha", "max_length")
        for name in positive:
            if getattr(self, name) <= 0:
                raise InputError(
                    f"hyperparameter {name} must be positive, got {getattr(self, name)}"
                )
        for name in ("dev_fraction", "label_smoothing", "lora_dropout", "warmup_ratio"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(
                    f"hyperparameter {name} must be in [0, 1), got {getattr(self, name)}"
                )
        if self.pooling not in ("mean", "cls"):
            raise InputError(
                f"hyperparameter pooling must be 'mean' or 'cls', got {self.pooling!r}"
            )

    @classmethod
    def quick(cls) -> IntentHyperParams:
        """For a first model on a few hundred examples (the bundled sample): under a minute."""
        return cls(epochs=8, batch_size=16)

    @classmethod
    def few_shot(cls) -> IntentHyperParams:
        """For about ten examples per intent: more passes over the little data there is."""
        return cls(epochs=20, batch_size=16)

    def with_(self, **changes: Any) -> IntentHyperParams:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentHyperParams:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "lora_targets" in values:
            values["lora_targets"] = tuple(values["lora_targets"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
