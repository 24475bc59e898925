"""Search behaviour: intent boosting and filtering, context, deactivated pairs."""

from __future__ import annotations

import numpy as np
import pytest

from bot.errors import InputError
from retrieval.config import RetrievalSettings
from retrieval.embedder import Embedder
from retrieval.pairs import Pair
from retrieval.store import IndexStore
from tests.retrieval.conftest import AT_CAP, CAP, ONE_PAST

# The query shares more words with the refund pair (wrong intent) than with the cancel pair.
CONFUSING = [
    Pair(1, "refund money for my order please", "Refunds take five days.", "get_refund"),
    Pair(2, "stop my order", "Press Cancel on the order page.", "cancel_order"),
    Pair(3, "where is my parcel", "Use the tracking page.", "track_order"),
]
QUERY = "please stop the refund money order"


def _index(tmp_path, encoder, pairs, **settings):
    store = IndexStore(tmp_path, RetrievalSettings(**settings))
    store.build(pairs, encoder, version="v")
    return store.load("v", encoder)


def test_plain_nearest_neighbour_without_intent(tmp_path, encoder):
    index = _index(tmp_path, encoder, CONFUSING)
    assert index.search([QUERY], k=1)[0][0].pair_id == 1


def test_boost_lifts_the_predicted_intent(tmp_path, encoder):
    index = _index(tmp_path, encoder, CONFUSING, intent_mode="boost", intent_boost=0.5)
    [hits] = index.search([QUERY], k=3, intents=["cancel_order"])
    assert [h.pair_id for h in hits][:2] == [2, 1]
    plain = index.search([QUERY], k=3)[0]
    boosted = {h.pair_id: h.score for h in hits}
    assert boosted[2] == pytest.approx(next(h.score for h in plain if h.pair_id == 2) + 0.5)


def test_boost_finds_same_intent_pairs_outside_the_global_top_k(tmp_path, encoder):
    index = _index(tmp_path, encoder, CONFUSING, intent_boost=1.0)
    [hits] = index.search([QUERY], k=1, intents=["track_order"])
    assert hits[0].pair_id == 3


def test_filter_keeps_only_the_predicted_intent(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs, intent_mode="filter")
    [hits] = index.search(["cancel my order"], k=5, intents=["get_refund"])
    assert {h.intent for h in hits} == {"get_refund"}
    assert len(hits) == 2


def test_unknown_or_missing_intent_falls_back_to_plain_search(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs, intent_mode="filter")
    results = index.search(["cancel my order", "reset my password"], k=1, intents=["nope", None])
    assert [r[0].pair_id for r in results] == [1, 8]


def test_mode_off_ignores_intents(tmp_path, encoder):
    index = _index(tmp_path, encoder, CONFUSING, intent_mode="off", intent_boost=1.0)
    assert index.search([QUERY], k=1, intents=["cancel_order"])[0][0].pair_id == 1


def test_batched_queries_match_single_ones(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs)
    queries = ["cancel my order", "refund", "password reset", "address change"]
    intents = ["cancel_order", None, "recover_password", "get_refund"]
    batched = index.search(queries, k=3, intents=intents)
    single = [index.search([q], k=3, intents=[i])[0] for q, i in zip(queries, intents, strict=True)]
    assert batched == single


def test_context_steers_an_ambiguous_query(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs, context_turns=2, context_weight=1.0)
    query = "how long does it take"
    assert index.search([query], k=1)[0][0].pair_id == 6
    [hits] = index.search([query], k=1, contexts=[["where is my package", "track order"]])
    assert hits[0].intent == "track_order"
    no_context = _index(tmp_path / "b", encoder, pairs, context_turns=0)
    [hits] = no_context.search([query], k=1, contexts=[["where is my package"]])
    assert hits[0].pair_id == 6


def test_k_larger_than_the_index_and_deactivated_rows(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs)
    index.deactivate([p.pair_id for p in pairs[1:]])
    [hits] = index.search(["anything"], k=10)
    assert [h.pair_id for h in hits] == [1]
    index.deactivate([1])
    assert index.search(["anything"], k=3) == [[]]


def test_bad_arguments(tmp_path, encoder, pairs):
    index = _index(tmp_path, encoder, pairs)
    with pytest.raises(InputError, match="list of query texts"):
        index.search("one string")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        index.search_vectors([[0.1, 0.2]], k=1)
    with pytest.raises(InputError, match="2 intents for 1 queries"):
        index.search(["x"], intents=["a", "b"])
    with pytest.raises(InputError, match="k must be"):
        index.search(["x"], k=0)


def test_queries_are_read_up_to_max_query_tokens_and_stored_questions_whole(
    tmp_path, tiny_model_dir
):
    embedder = Embedder(tiny_model_dir, precision="fp32")
    long_question = Pair(9, ONE_PAST, "Orders are cancelled from the Orders page.", "cancel_order")
    index = _index(tmp_path, embedder, [long_question], max_query_tokens=CAP)
    plain, vectors = index.encode_queries_plain([ONE_PAST, AT_CAP])
    np.testing.assert_array_equal(plain[0], plain[1])
    np.testing.assert_array_equal(vectors[0], vectors[1])
    # The stored question was encoded whole: only the uncapped query finds it exactly.
    whole = embedder.encode([ONE_PAST])
    assert index.search_vectors(whole, 1)[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert index.search_vectors(plain[:1], 1)[0][0].score < 0.9999
