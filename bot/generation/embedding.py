"""The embedder the grounding check uses: retrieval's, or the bundled encoder directly."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from bot.core.bundled import encoder_path

log = logging.getLogger("deskbot.generation")


class _SentenceTransformerEmbedder:
    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(path: str = "") -> Any:
    """``retrieval.embedder.Embedder`` when that module exists, else sentence-transformers."""
    try:
        from retrieval.embedder import Embedder
    except ImportError:
        return _SentenceTransformerEmbedder(path or str(encoder_path()))
    return Embedder(path or None)
