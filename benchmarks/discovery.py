# ruff: noqa: E402 - sys.path and the environment are set before the imports
"""Intent discovery benchmark: the DSTC11 baseline and deskbot's method on the same vectors.

    .venv/bin/python benchmarks/discovery.py [--data ../shared/data/banking77/test.csv]
    .venv/bin/python benchmarks/discovery.py --scenario gaps

Both methods cluster the same encoder's vectors (the bundled all-MiniLM-L6-v2, fp32) and are
scored against the gold labels as DSTC11 Track 2 does (ACC with a 1:1 Hungarian match, NMI,
ARI, cluster precision/recall/F1), with the number of topics found:

- baseline: k-means for k = 10, 20, ... 200, the k with the best silhouette score kept;
- deskbot: ``retrieval.discovery.discover`` (spectral clustering of the nearest-neighbour
  graph, k from its spectrum, a consensus of several runs, the partition helped by a graph of
  the utterances' shared word pieces).

Scenario ``utterances`` (the default) clusters every utterance of ``--data``; it writes
benchmarks/results/discovery.json. Vectors are cached under var/bench/discovery.

Scenario ``gaps`` is issue 22's: an intent model is trained (the trainer deskbot uses, a few
epochs, on a sample of each intent's rows; cached under var/bench/discovery) on 60 of
Banking77's 77 intents from train.csv, with one canned answer per known intent indexed; the
77-intent ``--data`` goes through the server's reply path, one conversation per utterance; the
real miner (``bot.gaps.mine``) then mines what was not answered confidently, once per method:
the baseline, deskbot's method (the known intents' examples clustered beside the messages, as
the miner does) and deskbot's method on the messages alone. The figures are for the mined
messages (those in no topic count as one cluster of their own) against the gold intents present
among them; a left-out intent is found "new" when a topic whose most frequent intent it is was
marked "new" (its nearest known intent under ``gaps.new_below``). Writes
benchmarks/results/discovery_gaps.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from finetune.intent.data import read_csv
from retrieval.discovery import discover, kmeans_silhouette, score
from retrieval.embedder import Embedder

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"
TRAIN = DATA.with_name("train.csv")
RESULTS = REPO / "benchmarks" / "results" / "discovery.json"
GAPS_RESULTS = REPO / "benchmarks" / "results" / "discovery_gaps.json"
CACHE = REPO / "var" / "bench" / "discovery"
KS = range(10, 201, 10)


def encode_cached(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, float]:
    """The texts' vectors, read from var/bench/discovery when this encoder already encoded
    these texts, so that a rerun costs only the clustering. Returns (vectors, encode seconds)."""
    key = hashlib.sha256("\n".join([embedder.name, *texts]).encode("utf-8")).hexdigest()[:16]
    path = CACHE / f"vectors-{key}.npy"
    if path.exists():
        return np.load(path), 0.0
    started = time.perf_counter()
    vectors = np.asarray(embedder.encode(texts), dtype=np.float32)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, seconds


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


# -- the gaps scenario ----------------------------------------------------------------------

GAPS_KNOWN = 60
# A sample of each known intent's training rows and few epochs: the intent model trains in
# about a quarter of an hour on 2 shared cores, once (cached).
GAPS_PER_INTENT = 40
GAPS_EPOCHS = 2


class MemoEncoder:
    """The embedder, each distinct text encoded once: both methods mine the same messages."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if new:
            for text, vector in zip(new, self.embedder.encode(new, batch_size), strict=True):
                self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, 384))


def answer_for(intent: str) -> str:
    """Banking77 has no answers: each known intent gets one canned answer naming it."""
    return f"Here is how we help with {intent.replace('_', ' ')}: see the steps in the app."


def gaps_split(seed: int) -> tuple[Any, list[str], list[str]]:
    """Banking77 train.csv's rows of the 60 known intents (``GAPS_PER_INTENT`` each), the
    known intents and the 17 left out (seeded choices)."""
    train = read_csv(TRAIN, "text", "category")
    intents = sorted(set(train.labels))
    rng = np.random.default_rng(seed)
    left_out = sorted(str(i) for i in rng.choice(intents, len(intents) - GAPS_KNOWN, False))
    known = [i for i in intents if i not in left_out]
    picked = []
    for intent in known:
        rows = [i for i, lab in enumerate(train.labels) if lab == intent]
        picked += sorted(rng.choice(rows, min(GAPS_PER_INTENT, len(rows)), replace=False))
    return train.subset(int(i) for i in picked), known, left_out


def prepare_gaps_home(train: Any, embedder: Embedder) -> Path:
    """A home with the known intents' pairs imported and indexed and the intent model trained
    on them, kept under var/bench/discovery so that reruns skip the training."""
    from finetune.intent.hparams import IntentHyperParams
    from finetune.intent.train import train_intent

    hp = IntentHyperParams().with_(epochs=GAPS_EPOCHS)
    key = hashlib.sha256((train.digest() + hp.to_json()).encode()).hexdigest()[:12]
    home = CACHE / f"gaps-{key}"
    if (home / "ready").exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "intent").exists():
        print(f"training the intent model on {len(train)} examples, {GAPS_EPOCHS} epochs ...")
        train_intent(train, hp, home / "intent", True)
    shutil.rmtree(home / "indexes", ignore_errors=True)  # a half-built one from an earlier try
    (home / "base.db").unlink(missing_ok=True)
    pairs = home / "pairs.csv"
    with pairs.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("instruction", "response", "intent"))
        writer.writerows(
            (t, answer_for(lab), lab) for t, lab in zip(train.texts, train.labels, strict=True)
        )
    asyncio.run(_import_and_index(home, pairs, embedder))
    (home / "ready").write_text("ok\n")
    return home


async def _import_and_index(home: Path, pairs: Path, embedder: Embedder) -> None:
    from bot.importer import import_file
    from bot.storage.db import Database
    from bot.storage.pairs import StoredPairs
    from retrieval.build import build_from_source
    from retrieval.store import IndexStore

    db = Database(f"sqlite+aiosqlite:///{home / 'base.db'}")
    try:
        await db.upgrade()
        await import_file(db, pairs)
        store = IndexStore(home / "indexes")
        path = await build_from_source(StoredPairs(db), store, embedder, version=None)
        store.activate(path.name)
    finally:
        await db.dispose()


def _settings(home: Path, db_path: Path) -> Any:
    from bot.settings import load_settings

    return load_settings(
        home=home,
        database_url=f"sqlite+aiosqlite:///{db_path}",
        intent={"model": str(home / "intent")},
        generation={"backend": "off"},
        server={"rate_limit_per_ip": 1e6, "rate_limit_per_conversation": 1e6,
                "rate_limit_burst": 10_000, "run_jobs": False},
    )  # fmt: skip


async def _send(home: Path, db_path: Path, texts: list[str], embedder: Embedder) -> dict:
    """The utterances through the server's reply path, each in a conversation of its own, over
    HTTP on loopback; returns each one's reply and stored message id."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from bot.storage.db import Database

    shutil.copy(home / "base.db", db_path)
    settings = _settings(home, db_path)
    db = Database(settings.sqlalchemy_url)
    app = create_app(settings, db=db, run_jobs=False, embedder=embedder)
    client = TestClient(TestServer(app))
    await client.start_server()
    replies: dict[int, dict[str, Any]] = {}
    gate = asyncio.Semaphore(8)
    started = time.perf_counter()

    async def say(i: int, text: str) -> None:
        async with gate:
            resp = await client.post("/api/v1/conversations", json={})
            conv = await resp.json()
            auth = {"Authorization": f"Bearer {conv['token']}"}
            resp = await client.post(
                f"/api/v1/conversations/{conv['id']}/messages", json={"text": text}, headers=auth
            )
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"the server refused {text!r}: {body}")
            replies[i] = {**(body["reply"] or {}), "message_id": body["message"]["id"]}
            if len(replies) % 500 == 0:
                print(f"  {len(replies)} sent")

    try:
        await asyncio.gather(*(say(i, t) for i, t in enumerate(texts)))
    finally:
        await client.close()
        await db.dispose()
    return {"replies": replies, "seconds": round(time.perf_counter() - started, 1)}


async def _mine(
    home: Path, db_path: Path, encoder: MemoEncoder, clusterers: dict[str, Any]
) -> dict[str, Any]:
    """The gap messages of the traffic, and the real miner's topics once per method."""
    from datetime import UTC, datetime

    from bot.gaps import mine, select_gap_messages
    from bot.storage.db import Database

    settings = _settings(home, db_path)
    db = Database(settings.sqlalchemy_url)
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
    try:
        cfg = settings.gaps
        gaps = await select_gap_messages(
            db, start, end, human_label=settings.intent.human_label, heavy_edit=cfg.heavy_edit,
            negative_rating=cfg.negative_rating, limit=cfg.max_messages,
        )  # fmt: skip
        mined = {}
        for name, cluster in clusterers.items():
            t = time.perf_counter()
            mined[name] = await mine(settings, db, encoder, since=start, until=end, cluster=cluster)
            mined[name].details["seconds"] = round(time.perf_counter() - t, 1)
    finally:
        await db.dispose()
    return {"gaps": gaps, "mined": mined}


def gaps_scenario(args: argparse.Namespace, embedder: Embedder) -> dict[str, Any]:
    """Issue 22's gaps scenario (see the module docstring)."""
    from bot.gaps import NOISE

    train, known, left_out = gaps_split(args.seed)
    test = read_csv(args.data, args.text_col, args.label_col)
    home = prepare_gaps_home(train, embedder)
    encoder = MemoEncoder(embedder)
    methods = {
        "baseline": ("baseline (k-means, silhouette)", lambda v, **_: kmeans_silhouette(v, KS)),
        "deskbot": ("deskbot (with the known intents' examples)", discover),
        "alone": (
            "deskbot without the known intents' examples",
            lambda v, texts, **_: discover(v, texts=texts),
        ),
    }
    picked = {m: methods[m] for m in args.methods.split(",") if m}
    # The traffic is kept beside the model too: a rerun only mines (delete it to resend).
    key = hashlib.sha256("\n".join(test.texts).encode()).hexdigest()[:12]
    db_path, sent_path = home / f"traffic-{key}.db", home / f"traffic-{key}.json"
    if not sent_path.exists():
        sent = asyncio.run(_send(home, db_path, list(test.texts), embedder))
        sent_path.write_text(json.dumps(sent), encoding="utf-8")
    sent = json.loads(sent_path.read_text(encoding="utf-8"))
    sent["replies"] = {int(i): r for i, r in sent["replies"].items()}
    run = {
        "replies": sent["replies"],
        "send_seconds": sent["seconds"],
        **asyncio.run(_mine(home, db_path, encoder, {m: f for m, (_, f) in picked.items()})),
    }
    gold_of = {r["message_id"]: test.labels[i] for i, r in run["replies"].items()}
    statuses = Counter(f"{r.get('status')}/{r.get('action')}" for r in run["replies"].values())
    mined_ids = [g.id for g in run["gaps"]]
    gold = [gold_of[i] for i in mined_ids]
    per_intent = Counter(gold)
    min_size = 3
    present = len(per_intent)
    present_min = sum(1 for c in per_intent.values() if c >= min_size)
    sent_left_out = Counter(
        test.labels[i]
        for i, r in run["replies"].items()
        if test.labels[i] in left_out and r["message_id"] not in set(mined_ids)
    )
    rows, left_out_rows = [], {}
    for name, (label, _) in picked.items():
        result = run["mined"][name]
        topic_of = {mid: t for t, topic in enumerate(result.topics) for mid in topic.message_ids}
        pred = [topic_of.get(i, NOISE) for i in mined_ids]
        figures = score(gold, pred)
        figures["topics"] = len(result.topics)  # the unclustered are not a topic
        found: dict[str, list[dict[str, Any]]] = {}
        for topic in result.topics:
            majority, count = Counter(gold_of[i] for i in topic.message_ids).most_common(1)[0]
            if majority in left_out:
                found.setdefault(majority, []).append(
                    {"size": topic.size, "majority": count, "novelty": topic.novelty,
                     "nearest_intent": topic.nearest_intent, "similarity": topic.similarity,
                     "name": topic.name}
                )  # fmt: skip
        new = sorted(i for i, ts in found.items() if any(t["novelty"] == "new" for t in ts))
        existing_known = [
            t for t in result.topics
            if Counter(gold_of[i] for i in t.message_ids).most_common(1)[0][0] in known
        ]  # fmt: skip
        left_out_rows[name] = found
        rows.append(
            {
                "method": label,
                **figures,
                "unclustered": result.unclustered,
                "left_out_as_new": len(new) / len(left_out),
                "left_out_as_topic": len(found) / len(left_out),
                "left_out_new": new,
                "known_topics": len(existing_known),
                "known_topics_marked_existing": sum(
                    t.novelty == "existing" for t in existing_known
                ),
                "seconds": result.details.get("seconds"),
                "details": {k: v for k, v in result.details.items() if k != "scores"},
            }
        )
    return {
        "scenario": "gaps",
        "known_intents": known,
        "left_out": left_out,
        "model": str(home.relative_to(REPO)),
        "epochs": GAPS_EPOCHS,
        "train_examples": len(train),
        "test_utterances": len(test),
        "replies": dict(sorted(statuses.items())),
        "send_seconds": run["send_seconds"],
        "mined": len(mined_ids),
        "mined_left_out": sum(per_intent[i] for i in left_out),
        "left_out_test": sum(1 for lab in test.labels if lab in left_out),
        "left_out_sent": dict(sent_left_out),
        "gold_topics": present,
        "gold_topics_min_size": present_min,
        "min_topic_size": min_size,
        "results": rows,
        "left_out_topics": left_out_rows,
    }


def print_gaps(report: dict[str, Any]) -> None:
    print(
        f"\ngaps: {report['test_utterances']} test utterances through the reply path "
        f"({report['send_seconds']} s); {report['mined']} mined, of which "
        f"{report['mined_left_out']} of the {report['left_out_test']} left-out utterances; "
        f"{report['gold_topics']} intents present ({report['gold_topics_min_size']} with "
        f">= {report['min_topic_size']} messages)\n"
    )
    cols = ("ACC", "NMI", "ARI", "F1")
    print(f"{'method':46s} " + " ".join(f"{c:>6s}" for c in cols) + "    k  new/17   s")
    for r in report["results"]:
        print(
            f"{r['method']:46s} {r['acc']:6.3f} {r['nmi']:6.3f} {r['ari']:6.3f} {r['f1']:6.3f} "
            f"{r['topics']:4d} {round(r['left_out_as_new'] * 17):4d}/17 {r['seconds']:6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="category")
    parser.add_argument("--sample", type=int, default=0, help="Cluster a random sample of N.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods", default=None, help="Default: baseline,deskbot (gaps: baseline,deskbot,alone)."
    )
    parser.add_argument(
        "--novelty", action="store_true", help="Also measure the 'new' threshold (see below)."
    )
    parser.add_argument(
        "--scenario",
        choices=("utterances", "gaps"),
        default="utterances",
        help="utterances: cluster --data as it is; gaps: issue 22's scenario (docstring).",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.methods is None:  # "" is a choice: no method (--novelty alone)
        args.methods = "baseline,deskbot,alone" if args.scenario == "gaps" else "baseline,deskbot"

    if args.scenario == "gaps":
        started = time.perf_counter()
        report = gaps_scenario(args, Embedder(precision="fp32"))
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        report["cpu"], report["cores"] = platform.processor() or platform.machine(), os.cpu_count()
        print_gaps(report)
        out = args.out or GAPS_RESULTS
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {out}")
        return

    examples = read_csv(args.data, args.text_col, args.label_col)
    if args.sample and args.sample < len(examples):
        picked = np.random.default_rng(args.seed).choice(len(examples), args.sample, replace=False)
        examples = examples.subset(int(i) for i in picked)
    embedder = Embedder(precision="fp32")
    vectors, encode_s = encode_cached(embedder, list(examples.texts))
    gold = list(examples.labels)

    methods = {
        "baseline": ("baseline (k-means, silhouette)", lambda: kmeans_silhouette(vectors, KS)),
        "deskbot": (
            "deskbot (kNN graphs of vectors and words, consensus)",
            lambda: discover(vectors, texts=list(examples.texts)),
        ),
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
        + (f"encoded in {encode_s:.1f} s\n" if encode_s else "vectors from the cache\n")
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
    out = args.out or RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
