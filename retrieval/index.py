"""A loaded index version: search by text or by vector, add and deactivate pairs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bot.errors import InputError, ModelError
from retrieval import faiss_index
from retrieval.config import RetrievalSettings
from retrieval.embedder import TextEncoder
from retrieval.hit import Hit
from retrieval.manifest import INDEX_FILE, PAIRS_FILE, Manifest, check_compatible
from retrieval.pairs import Pair, as_pairs
from retrieval.updates import UpdateLog

log = logging.getLogger("deskbot.retrieval")


class KnowledgeIndex:
    """One index version in memory, with the pair texts, so a search needs no database.

    Safe to share between executor threads: searches and updates take one lock (a search is
    well under a millisecond, so readers queue briefly rather than see a half-applied add).
    ``add`` and ``deactivate`` are written to the version's update log before they are applied,
    so they survive a restart; other processes see them when they next load the version.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        index: faiss.Index,
        pairs: list[Pair],
        embedder: TextEncoder | None = None,
        settings: RetrievalSettings | None = None,
    ) -> None:
        if index.ntotal != len(pairs):
            raise ModelError(
                f"index {manifest.version} is inconsistent: {index.ntotal} vectors "
                f"but {len(pairs)} pairs"
            )
        if embedder is not None:
            check_compatible(manifest, embedder.name, embedder.dim)
        self.path = path
        self.manifest = manifest
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()
        self._index = index
        self._lock = threading.RLock()
        self._log = UpdateLog(path)
        self._pair_ids = np.zeros(0, dtype=np.int64)
        self._questions: list[str] = []
        self._answers: list[str] = []
        self._intent_codes = np.zeros(0, dtype=np.int32)
        self._intent_names: list[str] = []
        self._intent_code: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._row_of: dict[int, int] = {}
        self._masks: dict[int | None, np.ndarray | None] = {}
        self._append_rows(pairs)

    # ----------------------------------------------------------------- reading files

    @classmethod
    def open(
        cls,
        path: Path,
        manifest: Manifest,
        embedder: TextEncoder | None = None,
        settings: RetrievalSettings | None = None,
    ) -> KnowledgeIndex:
        """Load the files of a version directory whose manifest was already checked."""
        if embedder is not None:
            check_compatible(manifest, embedder.name, embedder.dim)
        index = faiss.read_index(str(path / INDEX_FILE))
        if index.d != manifest.dim:
            raise ModelError(
                f"{path / INDEX_FILE} holds {index.d}-dimensional vectors; "
                f"the manifest says {manifest.dim}"
            )
        pairs = []
        with open(path / PAIRS_FILE, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                pairs.append(Pair(row["id"], row["question"], row["answer"], row["intent"]))
        self = cls(path, manifest, index, pairs, embedder, settings)
        replayed = 0
        for op, payload in self._log.replay():
            if op == "add":
                self._apply_add(*payload)
            else:
                self._apply_deactivate(payload)
            replayed += 1
        if replayed:
            log.info("index %s: replayed %d updates", manifest.version, replayed)
        return self

    # ----------------------------------------------------------------- properties

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def questions(self) -> list[str]:
        """The known questions, as indexed (a copy)."""
        with self._lock:
            return list(self._questions)

    def __len__(self) -> int:
        return len(self._row_of)

    def intents(self) -> dict[str, int]:
        """Active pairs per intent (pairs without an intent are under ``""``)."""
        with self._lock:
            codes = self._intent_codes[self._alive]
            counts = np.bincount(codes + 1, minlength=len(self._intent_names) + 1)
            out = {"": int(counts[0])} if counts[0] else {}
            out.update({name: int(counts[i + 1]) for i, name in enumerate(self._intent_names)})
            return {k: v for k, v in out.items() if v}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "path": str(self.path),
                "model": self.manifest.model,
                "dim": self.dim,
                "kind": self.manifest.kind,
                "nlist": self.manifest.nlist,
                "built_count": self.manifest.count,
                "active_pairs": len(self),
                "rows": int(self._index.ntotal),
                "updates": len(self._log.files()),
                "intents": len(self.intents()),
                "built_at": self.manifest.built_at,
            }

    def pair(self, pair_id: int) -> Pair | None:
        with self._lock:
            row = self._row_of.get(pair_id)
            return None if row is None else self._pair_at(row)

    # ----------------------------------------------------------------- search

    def encode_queries(
        self, texts: list[str], contexts: Sequence[Sequence[str]] | None = None
    ) -> np.ndarray:
        """Query vectors; with ``context_turns`` set, each leans toward its recent turns."""
        return self.encode_queries_plain(texts, contexts)[1]

    def encode_queries_plain(
        self, texts: list[str], contexts: Sequence[Sequence[str]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(plain, query)`` vectors: each text alone, and as :meth:`encode_queries` gives it.

        The intent classifier's frozen-head mix reuses the plain ones (bot/runtime.py).
        """
        if self.embedder is None:
            raise ModelError("this index was loaded without an embedder; use search_vectors")
        if isinstance(texts, str):
            raise InputError("search() takes a list of query texts, not one string")
        cap = self.settings.max_query_tokens
        vectors = self.embedder.encode(
            list(texts), batch_size=self.settings.query_batch_size, max_tokens=cap
        )
        turns, weight = self.settings.context_turns, self.settings.context_weight
        if not contexts or turns == 0 or weight == 0:
            return vectors, vectors
        if len(contexts) != len(texts):
            raise InputError(f"got {len(contexts)} contexts for {len(texts)} queries")
        recent = [[t for t in ctx if t and t.strip()][-turns:] for ctx in contexts]
        flat = [t for ctx in recent for t in ctx]
        if not flat:
            return vectors, vectors
        plain, vectors = vectors, vectors.copy()
        ctx_vectors = self.embedder.encode(
            flat, batch_size=self.settings.query_batch_size, max_tokens=cap
        )
        start = 0
        for i, ctx in enumerate(recent):
            if not ctx:
                continue
            mean = ctx_vectors[start : start + len(ctx)].mean(axis=0)
            start += len(ctx)
            mean /= np.linalg.norm(mean) or 1.0
            vectors[i] = vectors[i] + weight * mean
        faiss.normalize_L2(vectors)
        return plain, vectors

    def search(
        self,
        texts: list[str],
        k: int = 5,
        intents: Sequence[str | None] | None = None,
        contexts: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best pairs per query, best first.

        ``intents`` holds the predicted intent of each query (or None); it boosts or filters
        per ``RetrievalSettings.intent_mode``. ``contexts`` holds each query's previous
        customer turns, used per ``context_turns``.
        """
        return self.search_vectors(self.encode_queries(texts, contexts), k, intents)

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 5,
        intents: Sequence[str | None] | None = None,
        *,
        intent_mode: str | None = None,
        intent_boost: float | None = None,
    ) -> list[list[Hit]]:
        """Like :meth:`search` for queries already encoded (unit length, shape (n, dim))."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(f"query vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        nq = len(vectors)
        if intents is not None and len(intents) != nq:
            raise InputError(f"got {len(intents)} intents for {nq} queries")
        mode = intent_mode or self.settings.intent_mode
        boost = self.settings.intent_boost if intent_boost is None else intent_boost
        with self._lock:
            if not self._row_of or nq == 0:
                return [[] for _ in range(nq)]
            k = min(k, len(self._row_of))
            # (score, row) candidates per query
            cands: list[dict[int, float]] = [{} for _ in range(nq)]
            wanted = [self._intent_code.get(i) if i else None for i in (intents or [None] * nq)]
            if mode == "off":
                wanted = [None] * nq
            by_intent: dict[int, list[int]] = {}
            for q, code in enumerate(wanted):
                if code is not None and self._mask(code) is not None:
                    by_intent.setdefault(code, []).append(q)
            filtered = {q for qs in by_intent.values() for q in qs} if mode == "filter" else set()
            globally = [q for q in range(nq) if q not in filtered]
            if globally:
                self._collect(vectors[globally], globally, k, self._mask(None), cands)
            for code, qs in by_intent.items():
                self._collect(vectors[qs], qs, k, self._mask(code), cands)
            results = []
            for q in range(nq):
                code = wanted[q]
                scored = []
                for row, score in cands[q].items():
                    if mode == "boost" and code is not None and self._intent_codes[row] == code:
                        score += boost
                    scored.append((score, row))
                scored.sort(key=lambda sr: (-sr[0], sr[1]))
                results.append([self._hit(row, score) for score, row in scored[:k]])
            return results

    def _collect(
        self,
        vectors: np.ndarray,
        queries: list[int],
        k: int,
        allowed: np.ndarray | None,
        cands: list[dict[int, float]],
    ) -> None:
        scores, rows = faiss_index.search(
            self._index, vectors, k, allowed=allowed, nprobe=self.settings.ivf_nprobe
        )
        for q, srow, rrow in zip(queries, scores, rows, strict=True):
            for score, row in zip(srow.tolist(), rrow.tolist(), strict=True):
                if row >= 0:
                    cands[q][row] = score

    def _mask(self, code: int | None) -> np.ndarray | None:
        """Bitmap of the alive rows (of one intent); None when every row is allowed."""
        if code not in self._masks:
            if code is None:
                mask = None if self._alive.all() else faiss_index.bitmap(self._alive)
            else:
                rows = self._alive & (self._intent_codes == code)
                mask = faiss_index.bitmap(rows) if rows.any() else None
            self._masks[code] = mask
        return self._masks[code]

    def _pair_at(self, row: int) -> Pair:
        code = int(self._intent_codes[row])
        return Pair(
            int(self._pair_ids[row]),
            self._questions[row],
            self._answers[row],
            self._intent_names[code] if code >= 0 else None,
        )

    def _hit(self, row: int, score: float) -> Hit:
        p = self._pair_at(row)
        return Hit(p.pair_id, float(score), p.question, p.answer, p.intent)

    # ----------------------------------------------------------------- updates

    def add(self, pairs: Iterable[Any], vectors: np.ndarray | None = None) -> int:
        """Index new pairs (Pair or KnowledgePair rows); a known pair id is replaced.

        Returns how many were added. Persisted in the version's update log first.
        """
        items = as_pairs(pairs)
        if not items:
            return 0
        if vectors is None:
            if self.embedder is None:
                raise ModelError("adding pairs needs an embedder or their vectors")
            vectors = self.embedder.encode(
                [p.question for p in items], batch_size=self.settings.batch_size
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(items), self.dim):
            raise InputError(
                f"expected vectors of shape ({len(items)}, {self.dim}), got {vectors.shape}"
            )
        with self._lock:
            self._log.append_add(items, vectors)
            self._apply_add(items, vectors)
        log.info("index %s: added %d pairs", self.version, len(items))
        return len(items)

    def deactivate(self, pair_ids: Iterable[int]) -> int:
        """Stop returning these pairs; returns how many were active. Persisted first."""
        ids = [int(i) for i in pair_ids]
        with self._lock:
            known = [i for i in ids if i in self._row_of]
            if not known:
                return 0
            self._log.append_deactivate(known)
            self._apply_deactivate(known)
        log.info("index %s: deactivated %d pairs", self.version, len(known))
        return len(known)

    def _apply_add(self, pairs: list[Pair], vectors: np.ndarray) -> None:
        self._apply_deactivate([p.pair_id for p in pairs if p.pair_id in self._row_of])
        self._index.add(vectors)
        self._append_rows(pairs)

    def _apply_deactivate(self, pair_ids: list[int]) -> None:
        for pair_id in pair_ids:
            row = self._row_of.pop(pair_id, None)
            if row is not None:
                self._alive[row] = False
        self._masks.clear()

    def _append_rows(self, pairs: list[Pair]) -> None:
        start = len(self._questions)
        codes = np.empty(len(pairs), dtype=np.int32)
        for i, p in enumerate(pairs):
            if p.intent:
                code = self._intent_code.get(p.intent)
                if code is None:
                    code = self._intent_code[p.intent] = len(self._intent_names)
                    self._intent_names.append(p.intent)
                codes[i] = code
            else:
                codes[i] = -1
            self._questions.append(p.question)
            self._answers.append(p.answer)
            self._row_of[p.pair_id] = start + i
        ids = np.fromiter((p.pair_id for p in pairs), dtype=np.int64, count=len(pairs))
        self._pair_ids = np.concatenate([self._pair_ids, ids])
        self._intent_codes = np.concatenate([self._intent_codes, codes])
        self._alive = np.concatenate([self._alive, np.ones(len(pairs), dtype=bool)])
        self._masks.clear()
