"""Intent discovery: the clustering finds well-separated groups without being told how many,
and the DSTC11 figures are computed as defined."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from retrieval.discovery import (
    NOISE,
    discover,
    kmeans_silhouette,
    lexical_affinity,
    lexical_view,
    score,
)

# Five intents, eight wordings each, written for this test.
UTTERANCES = {
    "reset_password": [
        "I forgot my password",
        "how do I reset my password",
        "can't remember my login password",
        "password reset link please",
        "I need to change my forgotten password",
        "my password doesn't work, how can I reset it",
        "help me recover my password",
        "where do I go to reset the password",
    ],
    "opening_hours": [
        "what time do you open",
        "when are your stores open",
        "what are your opening hours",
        "are you open on sunday",
        "until what time is the shop open today",
        "what hours is the branch open",
        "when does the store close tonight",
        "opening times on public holidays",
    ],
    "refund": [
        "I want my money back",
        "how do I get a refund",
        "please refund my order",
        "when will I receive my refund",
        "can I get a refund for the broken item",
        "refund status for my return",
        "I was promised a refund",
        "how long does a refund take",
    ],
    "delivery_address": [
        "change the delivery address of my order",
        "I moved, can you ship to my new address",
        "update shipping address",
        "wrong address on my parcel",
        "can I send the package to a different address",
        "edit the address for delivery",
        "my order is going to my old address",
        "how do I correct my shipping address",
    ],
    "pet_policy": [
        "can I bring my dog into the store",
        "are pets allowed",
        "is my cat welcome in your shop",
        "do you allow dogs inside",
        "pet friendly store?",
        "may I come in with my puppy",
        "are animals allowed in the branch",
        "can my dog come with me when I shop",
    ],
}


def blobs(groups: int, per: int, dim: int = 32, spread: float = 0.05, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    labels = np.repeat(np.arange(groups), per)
    vectors = centres[labels] + spread * rng.normal(size=(groups * per, dim))
    return vectors.astype(np.float32), labels


@pytest.mark.parametrize("groups,per", [(3, 6), (6, 10), (12, 25)])
def test_discover_finds_separated_groups_without_k(groups: int, per: int) -> None:
    vectors, labels = blobs(groups, per)
    found = discover(vectors)
    assert found.n_topics == groups, found.details
    figures = score(labels.tolist(), found.labels.tolist())
    assert figures["acc"] == 1.0 and figures["ari"] == pytest.approx(1.0)
    assert NOISE not in found.labels.tolist()
    # Topics are numbered by decreasing size.
    sizes = np.bincount(found.labels)
    assert list(sizes) == sorted(sizes, reverse=True)


@pytest.mark.parametrize("words", [False, True])
def test_known_intents_examples_take_in_their_few_messages(words: bool) -> None:
    # Six intents: four known (their examples given), each with two messages among the mined
    # ones, and two new ones with twelve messages each.
    vectors, labels = blobs(6, 34, seed=3)
    known = [vectors[labels == g][:20] for g in range(4)]
    picked = np.concatenate(
        [np.flatnonzero(labels == g)[20:22] for g in range(4)]
        + [np.flatnonzero(labels == g)[:12] for g in (4, 5)]
    )
    # The messages' words (the examples have none): each group's words are its own.
    texts = [f"question about subject{g} number {i}" for i, g in enumerate(labels[picked])]
    found = discover(vectors[picked], known=known, texts=texts if words else None)
    assert found.method == "spectral-consensus-known"
    assert score(labels[picked].tolist(), found.labels.tolist())["acc"] == 1.0
    # Each pair of messages sits with its intent's 20 examples; the new intents' topics alone.
    gold = labels[picked]
    beside = {int(gold[found.labels == t][0]): m for t, m in enumerate(found.known_members)}
    assert beside == {0: 20, 1: 20, 2: 20, 3: 20, 4: 0, 5: 0}
    assert found.details["known_intents"] == 4 and found.details["known_examples"] == 80
    assert found.details["lexical"] is words


def test_words_tip_border_messages_to_their_group() -> None:
    # Two overlapping groups of vectors; each group's texts share a phrase the other lacks.
    phrases = ("please top up my balance", "cancel the pending transfer")
    with_words, without = [], []
    for seed in range(5):
        vectors, labels = blobs(2, 30, dim=16, spread=1.2, seed=seed)
        texts = [f"{phrases[g]} ref {i}" for i, g in enumerate(labels)]
        for out, kwargs in ((with_words, {"texts": texts}), (without, {})):
            found = discover(vectors, min_topics=2, max_topics=2, **kwargs)
            out.append(score(labels.tolist(), found.labels.tolist())["acc"])
    assert all(a >= b for a, b in zip(with_words, without, strict=True)), (with_words, without)
    assert sum(with_words) > sum(without), (with_words, without)


def test_lexical_graph_joins_only_texts_that_share_pieces() -> None:
    texts = ["top up my card", "top up my card please", "pending transfer", "transfer pending?"]
    graph = lexical_affinity(lexical_view(texts), 2).toarray()
    assert (graph == graph.T).all()
    assert graph[0, 1] > 0 and graph[2, 3] > 0
    # Each text has two neighbours by rank, but shares no piece with the other pair.
    assert graph[:2, 2:].sum() == 0 and graph[2:, :2].sum() == 0
    assert lexical_view(["ab", "cd"]) is None  # no piece occurs twice


def test_few_messages_with_texts_beside_many_known_examples() -> None:
    vectors, labels = blobs(3, 24, seed=5)
    known = [vectors[labels == g][:20] for g in range(3)]
    messages = np.concatenate([vectors[labels == 0][20:22], vectors[labels == 2][20:21]])
    found = discover(messages, texts=["lost card", "card lost", "refund"], known=known)
    assert found.labels.tolist() == [0, 0, 1] and found.known_members == (20, 20)
    assert lexical_affinity(lexical_view(["card lost", "lost card"]), 8).shape == (2, 2)


def test_texts_must_match_the_vectors() -> None:
    vectors, _ = blobs(2, 4)
    with pytest.raises(ValueError, match="7 texts for 8 vectors"):
        discover(vectors, texts=["a"] * 7)


def test_consensus_falls_back_when_numpy_svd_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: Any, **kwargs: Any) -> None:
        raise np.linalg.LinAlgError("SVD did not converge")

    vectors, labels = blobs(3, 10)
    monkeypatch.setattr(np.linalg, "svd", fails)
    found = discover(vectors)
    assert score(labels.tolist(), found.labels.tolist())["acc"] == 1.0


def test_baseline_finds_separated_groups() -> None:
    vectors, labels = blobs(4, 8)
    found = kmeans_silhouette(vectors)
    assert found.details["k"] == 4
    assert score(labels.tolist(), found.labels.tolist())["acc"] == 1.0


@pytest.mark.slow
def test_discover_groups_real_utterances(embedder: Any) -> None:
    texts = [t for group in UTTERANCES.values() for t in group]
    gold = [name for name, group in UTTERANCES.items() for _ in group]
    found = discover(embedder.encode(texts), texts=texts)
    figures = score(gold, found.labels.tolist())
    assert found.n_topics == len(UTTERANCES), found.details
    assert figures["acc"] >= 0.9, figures


def test_score_matches_the_definitions() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = [0, 0, 1, 1, 1, 1]
    figures = score(gold, pred)
    # Hungarian: a->0 (2), b->1 (2); c unmatched.
    assert figures["acc"] == pytest.approx(4 / 6)
    # Purity: cluster 0 -> a (2), cluster 1 -> b (2).
    assert figures["precision"] == pytest.approx(4 / 6)
    # Each gold label's largest share: a 2, b 2, c 1.
    assert figures["recall"] == pytest.approx(5 / 6)
    p, r = 4 / 6, 5 / 6
    assert figures["f1"] == pytest.approx(2 * p * r / (p + r))
    assert (figures["topics"], figures["gold_topics"], figures["n"]) == (2, 3, 6)
    perfect = score(gold, [7, 7, 7, 3, 3, 9])
    assert perfect["acc"] == perfect["nmi"] == perfect["f1"] == 1.0
    with pytest.raises(ValueError):
        score(gold, pred[:-1])


def test_tiny_inputs_do_not_fail() -> None:
    assert discover(np.zeros((0, 8), np.float32)).n_topics == 0
    assert discover(np.ones((2, 8), np.float32)).n_topics == 1
