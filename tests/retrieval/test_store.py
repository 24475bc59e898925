"""Index versions on disk: build, activate, load, incremental updates, checks."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.errors import InputError, ModelError, NotFoundError
from retrieval.config import RetrievalSettings
from retrieval.pairs import Pair
from retrieval.store import IndexStore

from .conftest import BagOfWordsEncoder


def test_build_activate_load_round_trip(store, encoder, pairs):
    path = store.build(pairs, encoder, version="v1")
    assert {p.name for p in path.iterdir()} >= {"index.faiss", "pairs.jsonl", "manifest.json"}
    assert store.active_version() is None
    store.activate("v1")
    index = store.load_active(encoder)
    assert index.version == "v1"
    assert len(index) == len(pairs)
    m = index.manifest
    assert (m.model, m.dim, m.count, m.kind) == (encoder.name, encoder.dim, len(pairs), "flat")
    assert len(m.checksum) == 64
    [hits] = index.search(["where is my package"], k=3)
    assert hits[0].pair_id == 3
    assert hits[0].answer == "Track it under Orders > Track."
    assert hits[0].intent == "track_order"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_activation_switches_versions(store, encoder, pairs):
    store.build(pairs[:4], encoder, version="old")
    store.build(pairs, encoder, version="new")
    store.activate("old")
    assert len(store.load_active(encoder)) == 4
    store.activate("new")
    assert len(store.load_active(encoder)) == len(pairs)
    assert [m.version for m in store.versions()] == ["old", "new"]


def test_ivf_above_flat_max_finds_the_same_pairs(tmp_path, encoder):
    rng = np.random.default_rng(0)
    many = [Pair(i, f"question {i}", f"answer {i}", f"intent{i % 5}") for i in range(2000)]
    vectors = rng.standard_normal((2000, encoder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = RetrievalSettings(flat_max=500, ivf_nprobe=64)
    store = IndexStore(tmp_path, settings)
    store.build(many, encoder, version="ivf", vectors=vectors)
    index = store.load("ivf", encoder)
    assert index.manifest.kind == "ivf" and index.manifest.nlist > 1
    results = index.search_vectors(vectors[:50], k=1)
    assert [r[0].pair_id for r in results] == list(range(50))


def test_missing_and_duplicate_versions(store, encoder, pairs):
    with pytest.raises(ModelError, match="no active index"):
        store.load_active(encoder)
    with pytest.raises(NotFoundError, match="nope"):
        store.activate("nope")
    store.build(pairs, encoder, version="v1")
    with pytest.raises(InputError, match="already exists"):
        store.build(pairs, encoder, version="v1")
    with pytest.raises(InputError, match="appears twice"):
        store.build([*pairs, pairs[0]], encoder, version="v2")


def test_manifest_mismatch_is_a_clear_error(store, encoder, pairs):
    store.build(pairs, encoder, version="v1")
    store.activate("v1")
    other_model = BagOfWordsEncoder(dim=encoder.dim, name="someone/else")
    with pytest.raises(ModelError, match="built with the embedding model 'test/bag-of-words'"):
        store.load_active(other_model)
    other_dim = BagOfWordsEncoder(dim=32)
    with pytest.raises(ModelError, match=r"64-dimensional.*32-dimensional"):
        store.load_active(other_dim)


def test_corrupt_version_is_refused(store, encoder, pairs):
    path = store.build(pairs, encoder, version="v1")
    with open(path / "pairs.jsonl", "a") as fh:
        fh.write(json.dumps({"id": 99, "question": "x", "answer": "y", "intent": None}) + "\n")
    with pytest.raises(ModelError, match="corrupt"):
        store.activate("v1")
    with pytest.raises(ModelError, match="corrupt"):
        store.load("v1", encoder)


def test_incremental_add_and_deactivate_survive_a_restart(store, encoder, pairs):
    store.build(pairs, encoder, version="v1")
    store.activate("v1")
    index = store.load_active(encoder)
    new = Pair(100, "can I pay with crypto coins", "We accept card and PayPal only.", "payment")
    assert index.add([new]) == 1
    assert index.search(["pay with crypto coins"], k=1)[0][0].pair_id == 100
    assert index.deactivate([3, 4, 12345]) == 2
    assert all(h.pair_id not in (3, 4) for h in index.search(["track my package"], k=8)[0])

    restarted = IndexStore(store.root).load_active(encoder)
    assert len(restarted) == len(pairs) + 1 - 2
    assert restarted.search(["pay with crypto coins"], k=1)[0][0].pair_id == 100
    hits = restarted.search(["track my package order status"], k=20)[0]
    assert {h.pair_id for h in hits} == {1, 2, 5, 6, 7, 8, 100}
    assert restarted.stats()["updates"] == 2


def test_add_replaces_a_known_pair_id(store, encoder, pairs):
    store.build(pairs, encoder, version="v1")
    index = store.load("v1", encoder)
    index.add([Pair(8, "reset my password", "Passwords are reset by email now.", None)])
    index = store.load("v1", encoder)
    [hits] = index.search(["reset my password"], k=8)
    assert [h.answer for h in hits if h.pair_id == 8] == ["Passwords are reset by email now."]
    assert len(index) == len(pairs)


def test_add_accepts_database_rows_and_checks_vectors(store, encoder, pairs):
    from bot.storage.models import KnowledgePair

    store.build(pairs, encoder, version="v1")
    index = store.load("v1", encoder)
    row = KnowledgePair(id=50, question="gift card balance", answer="See Wallet.", content_hash="x")
    index.add([row])
    assert index.pair(50) == Pair(50, "gift card balance", "See Wallet.", None)
    with pytest.raises(InputError, match="shape"):
        index.add([Pair(51, "q", "a")], vectors=np.zeros((1, 3), dtype=np.float32))


def test_concurrent_readers_during_activation_never_fail(tmp_path, encoder, pairs):
    store = IndexStore(tmp_path)
    store.build(pairs, encoder, version="v0")
    store.activate("v0")
    errors: list[BaseException] = []
    loads = [0]
    stop = threading.Event()

    def reader() -> None:
        reader_store = IndexStore(tmp_path)
        while not stop.is_set():
            try:
                index = reader_store.load_active(encoder)
                assert len(index) == index.manifest.count
                assert index.search(["reset my password"], k=1)[0][0].pair_id == 8
                loads[0] += 1
            except BaseException as exc:  # collected, reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 15):
            store.build(pairs[-(4 + i % 5) :], encoder, version=f"v{i}")
            store.activate(f"v{i}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert loads[0] > 0
    assert store.active_version() == "v14"


def test_prune_keeps_the_active_and_newest(store, encoder, pairs):
    for i in range(5):
        store.build(pairs, encoder, version=f"v{i}")
    store.activate("v0")
    assert store.prune(keep=2) == ["v1", "v2"]
    assert [m.version for m in store.versions()] == ["v0", "v3", "v4"]


def test_not_a_version_directory(tmp_path: Path, encoder):
    (tmp_path / "versions" / "broken").mkdir(parents=True)
    store = IndexStore(tmp_path)
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        store.load("broken", encoder)
    assert store.versions() == []
