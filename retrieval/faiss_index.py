"""The FAISS structure behind an index: exact up to ``flat_max`` vectors, IVF above.

Vectors are unit length, so inner product is cosine similarity. Above ``flat_max`` an
``IVF<nlist>,SQfp16`` index is used: inverted lists cut the scan to ``nprobe/nlist`` of the
vectors, and half-precision storage halves the memory an exact scan is bound by, at no
measurable cost in recall (see benchmarks/retrieval.py). Row numbers are the faiss labels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np

log = logging.getLogger("deskbot.retrieval")

# faiss needs at least ~39 training points per list; more only slows training.
TRAIN_POINTS_PER_LIST = 64


@dataclass(frozen=True, slots=True)
class IndexShape:
    kind: str  # "flat" or "ivf"
    nlist: int = 0


def choose_shape(n: int, flat_max: int, nlist: int = 0) -> IndexShape:
    if n <= flat_max:
        return IndexShape("flat")
    lists = nlist or int(4 * math.sqrt(n))
    lists = max(1, min(lists, n // 39))
    return IndexShape("ivf", lists)


def new_index(vectors: np.ndarray, shape: IndexShape, *, seed: int = 1234) -> faiss.Index:
    """A trained index holding ``vectors`` (rows 0..n-1)."""
    n, dim = vectors.shape
    index: faiss.Index
    if shape.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, shape.nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        sample = vectors
        limit = shape.nlist * TRAIN_POINTS_PER_LIST
        if n > limit:
            rng = np.random.default_rng(seed)
            sample = vectors[np.sort(rng.choice(n, limit, replace=False))]
        ivf.cp.seed = seed
        ivf.train(sample)
        index = ivf
    if n:
        index.add(vectors)
    return index


def bitmap(mask: np.ndarray) -> np.ndarray:
    """The byte layout faiss.IDSelectorBitmap reads: bit i%8 of byte i//8 is row i."""
    return np.packbits(mask.astype(bool), bitorder="little")


def search(
    index: faiss.Index,
    vectors: np.ndarray,
    k: int,
    *,
    allowed: np.ndarray | None = None,
    nprobe: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row numbers, best first; ``allowed`` (a :func:`bitmap`) limits the rows.

    Missing results (fewer allowed rows than ``k``) have row -1.
    """
    selector = None
    if allowed is not None:
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(allowed))
    params: faiss.SearchParameters
    if isinstance(index, faiss.IndexIVF):
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.nprobe = min(nprobe, index.nlist)
        params = ivf_params
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    scores, rows = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k, params=params)
    return scores, rows


def set_threads(n: int) -> None:
    """faiss's OpenMP threads for this process (1 suits single queries on a busy server)."""
    faiss.omp_set_num_threads(n)
