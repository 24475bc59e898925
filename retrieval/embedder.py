"""Sentence embeddings: the bundled all-MiniLM-L6-v2 or any sentence-transformers directory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.core import precision as precisions
from bot.errors import InputError, ModelError

log = logging.getLogger("deskbot.retrieval")


class TextEncoder(Protocol):
    """What the index needs from an embedder (tests substitute cheap ones)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(
        self, texts: list[str], batch_size: int = 64, max_tokens: int | None = None
    ) -> np.ndarray: ...


class Embedder:
    """A sentence-transformers model returning L2-normalised float32 vectors.

    ``model`` is a sentence-transformers directory; ``None`` means the bundled encoder. It is
    never fetched from a hub. ``encode`` may be called from several executor threads at once:
    a lock serialises them, because a fast tokenizer is not safe to share between threads and
    two concurrent forward passes on the same cores only slow each other down.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "cpu",
        precision: str = "auto",
        *,
        serving: bool = False,
    ) -> None:
        from bot.core.bundled import ENCODER_NAME, encoder_path

        if model is None or str(model) == "":
            path, self._name = encoder_path(), ENCODER_NAME
        else:
            path = Path(model).expanduser()
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise ModelError(
                    f"embedding model {str(model)!r} is not a sentence-transformers directory "
                    "(no modules.json or config.json); set retrieval.embedder to a local "
                    "directory or leave it empty for the bundled encoder"
                )
            path = path.resolve()
            self._name = str(path)
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the embedding model at {path}: {exc}") from exc
        self._model.eval()
        # See bot.core.precision: bf16 on AMX CPUs, int8 on other VNNI CPUs, bf16 on other CPUs with
        # native bf16, float32 otherwise. Vectors are float32 either way.
        self.precision = precisions.resolve(precision) if device == "cpu" else "fp32"
        # ``serving``: a server's own encoder (bot.core.precision.bf16_weights says why only there).
        self._model = precisions.prepare(self._model, self.precision, serving=serving)
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelError(f"the embedding model at {path} does not say its dimension")
        self._dim = int(dim)
        self._lock = threading.Lock()
        self.path = path
        log.info(
            "embedder %s loaded (dim %d, %s, %s)", self._name, self._dim, device, self.precision
        )

    @property
    def name(self) -> str:
        """What the manifest records: the hub name of the bundled model, else the directory."""
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length)

    def encode(
        self, texts: list[str], batch_size: int = 64, max_tokens: int | None = None
    ) -> np.ndarray:
        """Vectors of shape ``(len(texts), dim)``, float32, each of unit length.

        ``max_tokens`` reads each text only up to that many tokens (customer queries);
        ``None`` keeps the model's own :attr:`max_seq_length` (stored answers).
        """
        if isinstance(texts, str):
            raise InputError("encode() takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock, precisions.autocast(self.precision), self._cut_at(max_tokens):
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @contextmanager
    def _cut_at(self, max_tokens: int | None) -> Iterator[None]:
        """The model reads at most ``max_tokens`` tokens a text inside; hold ``_lock``."""
        full = self.max_seq_length
        if max_tokens is None or max_tokens >= full:
            yield
            return
        self._model.max_seq_length = max_tokens
        try:
            yield
        finally:
            self._model.max_seq_length = full
