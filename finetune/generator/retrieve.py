"""An in-memory question index for building training prompts and for offline evaluation.

Training prompts must hold retrieved answers like the ones the model sees at inference, but
never the answer to the very question being trained on (at inference that question is new).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from finetune.generator.data import QAPair, normalise
from retrieval.hit import Hit


class PairIndex:
    """Exact inner-product search over question embeddings of ``pairs``."""

    def __init__(self, pairs: Sequence[QAPair], embedder: Any, batch_size: int = 128) -> None:
        self.pairs = list(pairs)
        self.embedder = embedder
        vectors = np.asarray(embedder.encode([p.question for p in self.pairs]), dtype=np.float32)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        self._norm = [normalise(p.question) for p in self.pairs]

    def search(
        self, questions: Sequence[str], k: int = 3, *, exclude_same: bool = True
    ) -> list[list[Hit]]:
        vectors = np.asarray(self.embedder.encode(list(questions)), dtype=np.float32)
        extra = 8 if exclude_same else 0
        scores, rows = self.index.search(vectors, min(k + extra, len(self.pairs)))
        out: list[list[Hit]] = []
        for question, row_scores, row_ids in zip(questions, scores, rows, strict=True):
            same = normalise(question)
            hits: list[Hit] = []
            for score, row in zip(row_scores, row_ids, strict=True):
                if row < 0 or (exclude_same and self._norm[row] == same):
                    continue
                p = self.pairs[row]
                hits.append(Hit(p.id, float(score), p.question, p.answer, p.intent))
                if len(hits) == k:
                    break
            out.append(hits)
        return out
