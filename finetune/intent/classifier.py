"""The intent classifier as the server runs it: load a trained artifact once, predict batches.

It lives beside the training code because training calibrates it exactly as it will run: the
artifact and the code that reads it are made together.

A prediction is ``out_of_scope`` when the model's best intent is the out-of-scope label or its
calibrated confidence is under the artifact's threshold, ``ambiguous`` when the top two
intents are closer than the artifact's margin, and ``confident`` otherwise. ``intent`` is
always the model's best in-scope guess or the out-of-scope label itself; read ``verdict``.

Artifacts with a frozen head (finetune/intent/frozen_head.py) mix a classifier over a frozen
sentence encoder's vectors into the probabilities. The caller may pass those vectors (the
server passes the retrieval encoder's); otherwise the classifier encodes them itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bot.core import precision as precisions
from bot.errors import ModelError
from finetune.intent import frozen_head as frozen
from finetune.intent.artifact import IntentConfig, load_artifact
from finetune.intent.model import IntentNet, run_batched, tokenize

log = logging.getLogger("deskbot.intent")

Verdict = Literal["confident", "ambiguous", "out_of_scope"]


@dataclass(frozen=True)
class IntentPrediction:
    intent: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    verdict: Verdict

    @property
    def label(self) -> str | None:
        """The intent, or ``None`` when out of scope."""
        return None if self.verdict == "out_of_scope" else self.intent


class IntentClassifier:
    """A loaded intent artifact. ``predict`` is safe to call from executor threads."""

    def __init__(
        self,
        net: IntentNet,
        tokenizer: PreTrainedTokenizerBase,
        config: IntentConfig,
        path: Path,
        *,
        top_k: int = 5,
        # Length-sorted groups of 16 pad little: in the server's batches of 32, groups of 16
        # cost less than one padded group (int8, one thread per encoder).
        batch_size: int = 16,
        precision: str = "auto",
        frozen_head: frozen.FrozenHead | None = None,
        max_tokens: int | None = None,
        serving: bool = False,
    ) -> None:
        # Serving arithmetic (bot/core/precision.py), for the encoder's Linear layers only: the
        # head stays float32 so the calibrated confidences keep their meaning.
        self.precision = precisions.resolve(precision)
        net.encoder = precisions.prepare(net.encoder, self.precision, serving=serving)
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.path = path
        self.top_k = max(1, min(top_k, len(config.labels)))
        self.batch_size = batch_size
        # A text is read up to the artifact's max_length, or less where the server caps the
        # tokens of a customer query.
        self.max_tokens = max_tokens
        self.max_length = min(config.max_length, max_tokens or config.max_length)
        self._lock = threading.Lock()  # one forward at a time: the tokenizer is not reentrant
        self.frozen_head = frozen_head
        self._embedder: frozen.Embedder | None = None
        self._embedder_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        top_k: int = 5,
        precision: str = "auto",
        max_tokens: int | None = None,
        serving: bool = False,
    ) -> IntentClassifier:
        path = Path(path)
        config, tokenizer, net = load_artifact(path)
        head = None
        if config.frozen_encoder:
            if not (path / frozen.FROZEN_HEAD_FILE).is_file():
                raise ModelError(f"intent model {path} is incomplete: {frozen.FROZEN_HEAD_FILE}")
            head = frozen.load_head(path, len(config.labels))
        self = cls(
            net,
            tokenizer,
            config,
            path,
            top_k=top_k,
            precision=precision,
            frozen_head=head,
            max_tokens=max_tokens,
            serving=serving,
        )
        log.info(
            "loaded intent model %s (%d intents, %s) from %s",
            config.version,
            len(config.labels),
            self.precision,
            path,
        )
        return self

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    @property
    def oos_label(self) -> str:
        return self.config.oos_label

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """Uncalibrated logits, one row per text, in input order."""
        if not texts:
            return torch.empty((0, len(self.labels)))
        with self._lock, torch.inference_mode():
            ids = tokenize(
                self.tokenizer, [t if t.strip() else "." for t in texts], self.max_length
            )
            return run_batched(
                self.net,
                ids,
                self.tokenizer.pad_token_id or 0,
                batch_size=self.batch_size,
                bf16=self.precision == "bf16",
            )

    @property
    def frozen_encoder(self) -> str | None:
        """The sentence encoder whose plain vectors the mix needs (``None``: no mix)."""
        if self.frozen_head is None or self.config.frozen_weight >= 1.0:
            return None
        return self.config.frozen_encoder

    def plain_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The frozen encoder's vectors of ``texts`` (its model is loaded on first use)."""
        if self.config.frozen_encoder is None:
            raise ModelError(f"intent model {self.version} has no frozen encoder")
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = frozen.embedder_for(
                    self.config.frozen_encoder, precision=self.precision
                )
        return self._embedder.encode(list(texts), max_tokens=self.max_tokens)

    def mixed(self, probs: torch.Tensor, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Calibrated model probabilities mixed with the frozen head's."""
        head = self.frozen_head
        if head is None:
            return probs
        if tuple(vectors.shape) != (probs.shape[0], head.weight.shape[1]):
            raise ModelError(
                f"frozen vectors of shape {tuple(vectors.shape)} for {probs.shape[0]} texts; "
                f"intent model {self.version} needs {head.weight.shape[1]} dimensions"
            )
        return frozen.mix(probs, vectors, head, self.config.frozen_weight, self.config.frozen_tau)

    def probabilities(
        self, texts: Sequence[str], vectors: np.ndarray | None = None
    ) -> torch.Tensor:
        """Calibrated (and, with a frozen head, mixed) probabilities, one row per text."""
        return self._calibrated(self.logits(texts), texts, vectors)

    def _calibrated(
        self, logits: torch.Tensor, texts: Sequence[str], vectors: np.ndarray | None
    ) -> torch.Tensor:
        probs = torch.softmax(logits / self.config.temperature, dim=-1)
        if self.frozen_encoder is None or probs.shape[0] == 0:
            return probs
        return self.mixed(probs, self.plain_vectors(texts) if vectors is None else vectors)

    def predict(
        self, texts: Sequence[str], vectors: np.ndarray | None = None
    ) -> list[IntentPrediction]:
        """Predictions for ``texts``; ``vectors`` are their plain vectors from
        :attr:`frozen_encoder` when the caller has them already."""
        return self.predict_logits(self.logits(texts), texts, vectors)

    def predict_logits(
        self, logits: torch.Tensor, texts: Sequence[str], vectors: np.ndarray | None = None
    ) -> list[IntentPrediction]:
        """Predictions from :meth:`logits` already computed (the server overlaps the two)."""
        probs = self._calibrated(logits, texts, vectors)
        if probs.shape[0] == 0:
            return []
        top_p, top_i = probs.topk(max(2, self.top_k) if len(self.labels) > 1 else 1, dim=-1)
        return [self._prediction(p.tolist(), i.tolist()) for p, i in zip(top_p, top_i, strict=True)]

    def _prediction(self, top_p: list[float], top_i: list[int]) -> IntentPrediction:
        cfg = self.config
        best = cfg.labels[top_i[0]]
        confidence = top_p[0]
        margin = confidence - (top_p[1] if len(top_p) > 1 else 0.0)
        verdict: Verdict
        if best == cfg.oos_label or confidence < cfg.oos_threshold:
            verdict = "out_of_scope"
        elif margin < cfg.ambiguity_margin:
            verdict = "ambiguous"
        else:
            verdict = "confident"
        top = tuple((cfg.labels[i], round(p, 6)) for p, i in zip(top_p, top_i, strict=True))
        return IntentPrediction(best, confidence, top[: self.top_k], verdict)
