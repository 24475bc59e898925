"""Retrieval quality and search latency on labelled queries.

A hit is a retrieved pair whose intent equals the query's label. Quality is measured on
batched searches; latency on one query at a time, encoding excluded (it is reported apart).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bot.errors import InputError
from retrieval.hit import Hit
from retrieval.index import KnowledgeIndex


@dataclass(frozen=True, slots=True)
class RetrievalReport:
    queries: int
    hit_at_1: float
    hit_at_5: float
    mrr: float  # reciprocal rank of the first hit within the top k
    k: int
    p50_ms: float  # one query's search, encoding excluded
    p99_ms: float
    encode_ms_per_query: float  # batched encoding
    intent_mode: str
    version: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def score_hits(results: Sequence[Sequence[Hit]], labels: Sequence[str]) -> dict[str, float]:
    first = []
    for hits, label in zip(results, labels, strict=True):
        rank = next((i for i, h in enumerate(hits) if h.intent == label), None)
        first.append(rank)
    n = max(len(first), 1)
    return {
        "hit_at_1": sum(r == 0 for r in first) / n,
        "hit_at_5": sum(r is not None and r < 5 for r in first) / n,
        "mrr": sum(1.0 / (r + 1) for r in first if r is not None) / n,
    }


def evaluate(
    index: KnowledgeIndex,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    predicted: Sequence[str | None] | None = None,
    k: int = 10,
    batch_size: int = 256,
    latency_queries: int = 2000,
) -> RetrievalReport:
    if len(texts) != len(labels) or not texts:
        raise InputError(f"need as many labels as queries (got {len(texts)} and {len(labels)})")
    k = max(k, 5)
    started = time.perf_counter()
    vectors = index.encode_queries(list(texts))
    encode_ms = (time.perf_counter() - started) * 1000 / len(texts)
    results: list[list[Hit]] = []
    for start in range(0, len(texts), batch_size):
        chunk = None if predicted is None else predicted[start : start + batch_size]
        results += index.search_vectors(vectors[start : start + batch_size], k, chunk)
    timings = []
    for i in range(min(len(texts), latency_queries)):
        chunk = None if predicted is None else [predicted[i]]
        t = time.perf_counter()
        index.search_vectors(vectors[i : i + 1], k, chunk)
        timings.append((time.perf_counter() - t) * 1000)
    quality = score_hits(results, labels)
    return RetrievalReport(
        queries=len(texts),
        hit_at_1=round(quality["hit_at_1"], 4),
        hit_at_5=round(quality["hit_at_5"], 4),
        mrr=round(quality["mrr"], 4),
        k=k,
        p50_ms=round(float(np.percentile(timings, 50)), 4),
        p99_ms=round(float(np.percentile(timings, 99)), 4),
        encode_ms_per_query=round(encode_ms, 3),
        intent_mode=index.settings.intent_mode if predicted is not None else "off",
        version=index.version,
    )
