"""Intent discovery: group sentence vectors into topics without being told how many.

Pure functions, vectors in and labels out, shared by the knowledge-gap miner (``bot/gaps.py``),
``deskbot eval discovery`` and ``benchmarks/discovery.py``.

- :func:`kmeans_silhouette` is the DSTC11 Track 2 baseline: k-means for each k of a range, the
  k with the best silhouette score wins.
- :func:`discover` is deskbot's method (see its docstring).
- :func:`score` gives the DSTC11 figures: ACC (1:1 Hungarian match), NMI, ARI and cluster
  precision/recall/F1 (many-to-one alignments each way).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("deskbot.discovery")

NOISE = -1


@dataclass(frozen=True)
class Clustering:
    """``labels[i]`` is the topic of vector ``i`` (0..n_topics-1), or ``NOISE``."""

    labels: np.ndarray
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    # Per topic, how many known intents' examples were clustered with its vectors (empty when
    # none were given).
    known_members: tuple[int, ...] = ()

    @property
    def n_topics(self) -> int:
        return len(set(self.labels.tolist()) - {NOISE})


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Topics numbered 0.. by decreasing size (ties: first appearance); NOISE kept."""
    labels = np.asarray(labels)
    ids, first, counts = np.unique(labels[labels != NOISE], return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], first[i]))
    mapping = {int(ids[i]): rank for rank, i in enumerate(order)}
    return np.array([mapping.get(int(x), NOISE) for x in labels], dtype=np.int64)


def k_range(n: int, lo: int = 2, hi: int = 200, step: int = 1) -> range:
    """Candidate topic counts for ``n`` points: at least 2 points per topic on average."""
    top = max(lo, min(hi, n // 2))
    return range(lo, top + 1, step)


def kmeans_silhouette(
    vectors: np.ndarray, ks: Sequence[int] | None = None, *, seed: int = 0
) -> Clustering:
    """The DSTC11 baseline: k-means (Euclidean on unit vectors) for each k in ``ks``, the k
    with the highest silhouette score kept."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = _unit(vectors)
    n = len(x)
    if n < 3:
        return Clustering(np.zeros(n, dtype=np.int64), "kmeans-silhouette", {"k": min(n, 1)})
    ks = [k for k in (ks or k_range(n, step=10 if n > 500 else 1)) if 2 <= k < n]
    best: tuple[float, int, np.ndarray] | None = None
    scores = {}
    for k in ks:
        labels = KMeans(k, n_init=3, random_state=seed).fit_predict(x)
        s = float(silhouette_score(x, labels))
        scores[k] = round(s, 4)
        if best is None or s > best[0]:
            best = (s, k, labels)
    assert best is not None
    return Clustering(
        _relabel(best[2]),
        "kmeans-silhouette",
        {"k": best[1], "silhouette": round(best[0], 4), "scores": scores},
    )


def neighbours_for(n: int) -> int:
    """Neighbours per point in the graph: fewer than a topic's messages, or topics are
    joined, and a small set's topics are small: one per 300 messages, from 5 to 10 (n // 30
    under 150 messages, 3 under 90)."""
    return max(2, min(n // 30 if n >= 90 else 3, max(5, min(10, n // 300)), n - 1))


def knn_affinity(vectors: np.ndarray, neighbours: int) -> Any:
    """Symmetric 0/1/0.5 adjacency of the cosine k-nearest-neighbour graph (sparse)."""
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(
        vectors, neighbours, metric="cosine", mode="connectivity", include_self=False
    )
    return 0.5 * (graph + graph.T)


# The messages' word pieces (3 to 5 characters within words) as a second view: a kNN graph of
# their TF-IDF cosines added to the encoder's at this weight joins wordings that share rare
# words ("top up", "pending", a misspelt "pendng") where the encoder leaves them on a border.
LEXICAL_WEIGHT = 0.25


def lexical_view(texts: Sequence[str]) -> Any | None:
    """``texts``' TF-IDF matrix of word pieces (sparse), ``None`` when no piece occurs twice."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2
    )
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # an empty vocabulary: nothing to join by
        return None


def lexical_affinity(tfidf: Any, neighbours: int) -> Any:
    """The symmetric neighbour graph of the TF-IDF rows (sparse, :data:`LEXICAL_WEIGHT` per
    edge each way); texts that share no piece are never joined."""
    from sklearn.neighbors import kneighbors_graph

    # lexical_view's matrices have two rows at least (a piece must occur twice).
    graph = kneighbors_graph(
        tfidf, min(neighbours, tfidf.shape[0] - 1), metric="cosine", mode="distance"
    )
    # A distance of 1 is no shared piece: a neighbour only by the order of the ties.
    graph.data = (graph.data < 1.0 - 1e-6).astype(np.float64)
    graph.eliminate_zeros()
    return LEXICAL_WEIGHT * 0.5 * (graph + graph.T)


def _spectrum(affinity: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest eigenvalues (ascending) of the normalised Laplacian, and their
    eigenvectors as columns."""
    from scipy.sparse.csgraph import laplacian

    lap = laplacian(affinity, normed=True)
    n = lap.shape[0]
    if n <= 600 or count >= n - 1:
        values, vectors = np.linalg.eigh(lap.toarray())
        return values[:count], vectors[:, :count]
    from scipy.sparse.linalg import eigsh

    # The largest eigenvalues of -L are the smallest of L; Lanczos converges fast on those.
    values, vectors = eigsh(-lap, k=count, which="LA", v0=np.full(n, 1 / np.sqrt(n)))
    values = -values
    order = np.argsort(values)
    return values[order], vectors[:, order]


# A patch of the neighbour graph that one intent's messages fill adds a normalised-Laplacian
# eigenvalue near zero; two patches joined by a few stray edges still stay under this.
EIGEN_BELOW = 0.15
# The partition is the consensus of k-means runs on the graphs of these multiples of the
# neighbour count, each with these seeds: one graph's boundary points swing with its k-means
# start and its neighbour count, the points most runs put together stay together.
CONSENSUS_SCALES = (0.8, 1.0, 1.25, 1.5)
CONSENSUS_SEEDS = 3


def _rows_unit(emb: np.ndarray) -> np.ndarray:
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


# Known intents' examples clustered beside the messages, at most this many per intent: enough
# for an intent to fill a patch of the graph, few enough not to outweigh the messages; and at
# most this many in all, which bounds the work.
KNOWN_PER_INTENT = 32
KNOWN_MAX = 4096


def discover(
    vectors: np.ndarray,
    *,
    texts: Sequence[str] | None = None,
    known: Sequence[np.ndarray] = (),
    min_topics: int = 2,
    max_topics: int = 200,
    neighbours: int | None = None,
    seed: int = 0,
) -> Clustering:
    """Deskbot's method: spectral clustering of the k-nearest-neighbour graph, the number of
    topics read from its spectrum, the partition a consensus of several graphs (helped, given
    ``texts``, by a graph of the words the messages share).

    Messages of one intent sit in dense, well-connected patches of the neighbour graph even
    where their patch is not round, which is what k-means on raw vectors assumes; each such
    patch adds a near-zero eigenvalue to the graph Laplacian, so the number of topics is the
    count of eigenvalues under ``EIGEN_BELOW``. The points are clustered by k-means on the
    first k eigenvectors (rows normalised), as in Ng, Jordan and Weiss (2001), for graphs of
    a few neighbour counts and seeds; the final topics cluster the points by how those runs
    grouped them (k-means on the leading singular vectors of their joint membership matrix).

    ``known`` holds, per known intent, vectors of its examples. They are clustered with the
    messages, as in generalized category discovery (Vaze et al., 2022): a message of a known
    intent then joins that intent's patch instead of a topic of unrelated stragglers, and the
    patch is a topic of its own however few messages joined it. Only the messages are
    labelled; ``known_members`` counts the examples in each topic.

    ``texts``, the messages' words, add :func:`lexical_affinity` between messages to the
    graphs that are partitioned; the number of topics is still read from the encoder's graph
    alone, which more edges would lower. The known examples are joined by meaning only: the
    words a new intent shares with a known one ("card", "transfer") would pull its messages
    into the known intent's patch.
    """
    x = _unit(vectors)
    n = len(x)
    if texts is not None and len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} vectors")
    groups = [np.asarray(g) for g in known if len(g)]
    if not groups:
        labels, details = _spectral_consensus(x, texts, min_topics, max_topics, neighbours, seed)
        return Clustering(_relabel(labels), "spectral-consensus", details)
    per = max(1, min(KNOWN_PER_INTENT, KNOWN_MAX // len(groups)))
    examples = np.vstack([_unit(g[:per]) for g in groups])
    joint, details = _spectral_consensus(
        np.vstack([x, examples]), texts, min_topics, max_topics + len(groups), neighbours, seed
    )
    labels = _relabel(joint[:n])
    topic_of = {int(j): int(t) for j, t in zip(joint[:n], labels, strict=True)}
    members = [0] * len(topic_of)
    for j in joint[n:]:
        if int(j) in topic_of:
            members[topic_of[int(j)]] += 1
    details = {**details, "known_intents": len(groups), "known_examples": len(examples)}
    return Clustering(labels, "spectral-consensus-known", details, tuple(members))


def _spectral_consensus(
    x: np.ndarray,
    texts: Sequence[str] | None,
    min_topics: int,
    max_topics: int,
    neighbours: int | None,
    seed: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`discover`'s partition of the unit vectors ``x``: raw labels and details.
    ``texts``, if given, are the words of the first ``len(texts)`` points."""
    from sklearn.cluster import KMeans

    n = len(x)
    if n < 4:
        return np.zeros(n, dtype=np.int64), {"k": min(n, 1)}
    nn = neighbours or neighbours_for(n)
    hi = max(min_topics, min(max_topics, n // 2))
    base = knn_affinity(x, nn)
    values, eigvecs = _spectrum(base, min(n - 1, hi + 1))
    k = int(np.clip((values < EIGEN_BELOW).sum(), min_topics, hi))
    words = lexical_view(texts) if texts is not None else None
    runs = []
    for scale in CONSENSUS_SCALES:
        m = min(n - 1, max(2, round(nn * scale)))
        graph = base if m == nn else knn_affinity(x, m)
        if words is not None:
            lexical = lexical_affinity(words, m)
            lexical.resize((n, n))  # no word edges to the points without texts
            graph = graph + lexical
        vecs = eigvecs if graph is base else _spectrum(graph, min(n - 1, k))[1]
        emb = _rows_unit(vecs[:, :k])
        for s in range(CONSENSUS_SEEDS):
            runs.append(KMeans(k, n_init=3, random_state=seed + s).fit_predict(emb))
    membership = np.zeros((n, k * len(runs)), dtype=np.float32)
    for r, labels in enumerate(runs):
        membership[np.arange(n), r * k + labels] = 1.0
    try:
        u, sv, _ = np.linalg.svd(membership, full_matrices=False)
    except np.linalg.LinAlgError:  # the divide-and-conquer driver can fail to converge
        from scipy.linalg import svd

        u, sv, _ = svd(membership, full_matrices=False, lapack_driver="gesvd")
    emb = _rows_unit(u[:, :k] * sv[:k])
    labels = KMeans(k, n_init=3, random_state=seed).fit_predict(emb)
    details = {"k": k, "neighbours": nn, "eigenvalue_k": round(float(values[k - 1]), 5)}
    return labels, {**details, "lexical": words is not None}


# -- evaluation ---------------------------------------------------------------------------


def _contingency(gold: Sequence[Any], pred: Sequence[Any]) -> np.ndarray:
    g_ids = {x: i for i, x in enumerate(dict.fromkeys(gold))}
    p_ids = {x: i for i, x in enumerate(dict.fromkeys(pred))}
    table = np.zeros((len(g_ids), len(p_ids)), dtype=np.int64)
    for a, b in zip(gold, pred, strict=True):
        table[g_ids[a], p_ids[b]] += 1
    return table


def score(gold: Sequence[Any], pred: Sequence[Any]) -> dict[str, float | int]:
    """DSTC11 Track 2 figures of a clustering ``pred`` against ``gold`` labels.

    ACC maps clusters to gold labels one to one (Hungarian algorithm, unmatched clusters count
    as wrong). Precision maps each cluster to its most frequent gold label (purity), recall each
    gold label to the cluster holding most of it; F1 is their harmonic mean. Noise points
    (``NOISE``) count as one cluster of their own.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    gold, pred = list(gold), [int(p) if isinstance(p, np.integer) else p for p in pred]
    if len(gold) != len(pred) or not gold:
        raise ValueError("gold and pred must be non-empty and of the same length")
    n = len(gold)
    table = _contingency(gold, pred)
    rows, cols = linear_sum_assignment(-table)
    precision = table.max(axis=0).sum() / n
    recall = table.max(axis=1).sum() / n
    return {
        "acc": float(table[rows, cols].sum() / n),
        "nmi": float(normalized_mutual_info_score(gold, pred)),
        "ari": float(adjusted_rand_score(gold, pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / (precision + recall)),
        "topics": int(table.shape[1]),
        "gold_topics": int(table.shape[0]),
        "n": n,
    }
