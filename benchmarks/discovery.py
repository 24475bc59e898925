# ruff: noqa: E402 - sys.path and the environment are set before the imports
"""Intent discovery benchmark: the DSTC11 baseline and deskbot's method on the same vectors.

    .venv/bin/python benchmarks/discovery.py [--data ../shared/data/banking77/test.csv]

Both methods cluster the same encoder's vectors (the bundled all-MiniLM-L6-v2, fp32) of every
utterance and are scored against the gold labels as DSTC11 Track 2 does (ACC with a 1:1
Hungarian match, NMI, ARI, cluster precision/recall/F1), with the number of topics found:

- baseline: k-means for k = 10, 20, ... 200, the k with the best silhouette score kept;
- deskbot: spectral clustering of the 10-nearest-neighbour graph, k by the largest eigengap
  (``retrieval.discovery.discover``; settings chosen on a 3,080-utterance sample of Banking77
  train.csv, then run once here).

Prints a table and writes benchmarks/results/discovery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from finetune.intent.data import read_csv
from retrieval.discovery import discover, kmeans_silhouette, score
from retrieval.embedder import Embedder

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"
RESULTS = REPO / "benchmarks" / "results" / "discovery.json"
KS = range(10, 201, 10)


def _centroid(x: np.ndarray) -> np.ndarray:
    c = x.mean(axis=0)
    return c / np.linalg.norm(c)


def novelty(vectors: np.ndarray, gold: list[str], rng: np.random.Generator) -> dict:
    """How well ``gaps.new_below`` tells a known intent's topic from an unknown one: per
    intent, a centroid of up to 64 utterances stands for the known intent and one of 15 others
    for a mined topic; a topic of a known intent should reach its own intent's centroid, a
    topic of an intent left out should stay under the threshold for every other intent."""
    labels = np.array(gold)
    names = sorted(set(gold))
    known, topic = [], []
    for name in names:
        idx = np.flatnonzero(labels == name)
        rng.shuffle(idx)
        half = len(idx) // 2
        known.append(_centroid(vectors[idx[: min(half, 64)]]))
        topic.append(_centroid(vectors[idx[half : half + 15]]))
    sims = np.stack(topic) @ np.stack(known).T
    same = np.diag(sims).copy()
    np.fill_diagonal(sims, -1.0)
    other = sims.max(axis=1)
    table = [
        f"same intent: min {same.min():.3f} p10 {np.quantile(same, 0.1):.3f} "
        f"median {np.median(same):.3f}; nearest other: median {np.median(other):.3f} "
        f"p90 {np.quantile(other, 0.9):.3f} max {other.max():.3f}"
    ]
    rows = {}
    for t in (0.75, 0.8, 0.85, 0.9, 0.95):
        rows[t] = {
            "existing_kept": float((same >= t).mean()),
            "unknown_new": float((other < t).mean()),
        }
        table.append(
            f"new_below {t:.2f}: known marked existing {rows[t]['existing_kept']:.2f}, "
            f"left out marked new {rows[t]['unknown_new']:.2f}"
        )
    return {"thresholds": rows, "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="category")
    parser.add_argument("--sample", type=int, default=0, help="Cluster a random sample of N.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="baseline,deskbot")
    parser.add_argument(
        "--novelty", action="store_true", help="Also measure the 'new' threshold (see below)."
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    examples = read_csv(args.data, args.text_col, args.label_col)
    if args.sample and args.sample < len(examples):
        picked = np.random.default_rng(args.seed).choice(len(examples), args.sample, replace=False)
        examples = examples.subset(int(i) for i in picked)
    embedder = Embedder(precision="fp32")
    started = time.perf_counter()
    vectors = embedder.encode(list(examples.texts))
    encode_s = time.perf_counter() - started
    gold = list(examples.labels)

    methods = {
        "baseline": ("baseline (k-means, silhouette)", lambda: kmeans_silhouette(vectors, KS)),
        "deskbot": ("deskbot (kNN graph, eigengap, spectral)", lambda: discover(vectors)),
    }
    rows = []
    for name, run in (methods[m] for m in args.methods.split(",") if m):
        t = time.perf_counter()
        found = run()
        seconds = time.perf_counter() - t
        figures = score(gold, found.labels.tolist())
        details = {k: v for k, v in found.details.items() if k != "scores"}
        rows.append({"method": name, **figures, "seconds": round(seconds, 1), "details": details})

    print(
        f"\n{args.data.name}: {len(gold)} utterances, {len(set(gold))} intents, "
        f"encoded in {encode_s:.1f} s\n"
    )
    cols = ("ACC", "NMI", "ARI", "P", "R", "F1")
    print(f"{'method':42s} " + " ".join(f"{c:>6s}" for c in cols) + f" {'k':>4s} {'s':>6s}")
    for r in rows:
        print(
            f"{r['method']:42s} {r['acc']:6.3f} {r['nmi']:6.3f} {r['ari']:6.3f} "
            f"{r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} {r['topics']:4d} "
            f"{r['seconds']:6.1f}"
        )
    report = {
        "data": str(args.data.name),
        "sample": args.sample or None,
        "seed": args.seed,
        "n": len(gold),
        "gold_topics": len(set(gold)),
        "encoder": embedder.name,
        "encode_seconds": round(encode_s, 1),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "results": rows,
    }
    if args.novelty:
        report["novelty"] = novelty(vectors, gold, np.random.default_rng(args.seed))
        for line in report["novelty"]["table"]:
            print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
