"""Intent discovery: the clustering finds well-separated groups without being told how many,
and the DSTC11 figures are computed as defined."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from retrieval.discovery import NOISE, discover, kmeans_silhouette, score

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


def test_known_intents_examples_take_in_their_few_messages() -> None:
    # Six intents: four known (their examples given), each with two messages among the mined
    # ones, and two new ones with twelve messages each.
    vectors, labels = blobs(6, 34, seed=3)
    known = [vectors[labels == g][:20] for g in range(4)]
    picked = np.concatenate(
        [np.flatnonzero(labels == g)[20:22] for g in range(4)]
        + [np.flatnonzero(labels == g)[:12] for g in (4, 5)]
    )
    found = discover(vectors[picked], known=known)
    assert found.method == "spectral-consensus-known"
    assert score(labels[picked].tolist(), found.labels.tolist())["acc"] == 1.0
    # Each pair of messages sits with its intent's 20 examples; the new intents' topics alone.
    gold = labels[picked]
    beside = {int(gold[found.labels == t][0]): m for t, m in enumerate(found.known_members)}
    assert beside == {0: 20, 1: 20, 2: 20, 3: 20, 4: 0, 5: 0}
    assert found.details["known_intents"] == 4 and found.details["known_examples"] == 80


def test_baseline_finds_separated_groups() -> None:
    vectors, labels = blobs(4, 8)
    found = kmeans_silhouette(vectors)
    assert found.details["k"] == 4
    assert score(labels.tolist(), found.labels.tolist())["acc"] == 1.0


@pytest.mark.slow
def test_discover_groups_real_utterances(embedder: Any) -> None:
    texts = [t for group in UTTERANCES.values() for t in group]
    gold = [name for name, group in UTTERANCES.items() for _ in group]
    found = discover(embedder.encode(texts))
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
