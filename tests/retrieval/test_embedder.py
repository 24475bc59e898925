"""The sentence-transformers wrapper, on a tiny random model (and once on the real one)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bot.errors import InputError, ModelError
from retrieval.embedder import Embedder
from retrieval.store import IndexStore
from tests.retrieval.conftest import AT_CAP, CAP, ONE_PAST

TEXTS = ["how do I cancel my order", "where is my package", "reset my password", "refund"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> Embedder:
    return Embedder(tiny_model_dir, precision="fp32")


def test_vectors_are_unit_length_float32(tiny, tiny_model_dir):
    vectors = tiny.encode(TEXTS, batch_size=2)
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, tiny.dim) == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert tiny.name == str(tiny_model_dir.resolve())
    assert tiny.encode([]).shape == (0, 32)
    assert not np.allclose(vectors[0], vectors[1])


def test_batching_does_not_change_vectors(tiny):
    one_by_one = np.vstack([tiny.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(tiny.encode(TEXTS, batch_size=64), one_by_one, atol=1e-5)


def test_concurrent_calls_from_threads(tiny):
    expected = tiny.encode(TEXTS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tiny.encode(TEXTS), range(16)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_int8_vectors_do_not_depend_on_the_batch_and_stay_close_to_float32(tiny, tiny_model_dir):
    int8 = Embedder(tiny_model_dir, precision="int8")
    assert int8.precision == "int8"
    one_by_one = np.vstack([int8.encode([t]) for t in TEXTS])
    batched = int8.encode(TEXTS, batch_size=64)
    assert (one_by_one * batched).sum(1).min() > 0.999
    assert (batched * tiny.encode(TEXTS)).sum(1).min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)


def test_a_servers_bf16_weights_stored_once_give_autocasts_vectors_to_the_bit(tiny_model_dir):
    import torch
    from torch import nn

    from bot.core import precision

    bf16 = Embedder(tiny_model_dir, precision="bf16", serving=True)
    linears = [m for m in bf16._model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    # What autocast alone computes, converting float32 weights on every call.
    plain = Embedder(tiny_model_dir, precision="fp32")
    with precision.autocast("bf16"):
        expected = plain._model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_array_equal(bf16.encode(TEXTS), expected)


def test_max_tokens_reads_a_text_only_up_to_the_cap(tiny):
    capped = tiny.encode([ONE_PAST, AT_CAP], max_tokens=CAP)
    np.testing.assert_array_equal(capped[0], capped[1])
    whole = tiny.encode([ONE_PAST, AT_CAP])
    assert not np.allclose(whole[0], whole[1])  # without the cap the extra token counts
    assert tiny.max_seq_length == 32  # the model's own limit is back for stored answers
    np.testing.assert_array_equal(tiny.encode([ONE_PAST], max_tokens=64), whole[:1])


def test_bad_model_directory(tmp_path):
    with pytest.raises(ModelError, match="not a sentence-transformers directory"):
        Embedder(tmp_path / "missing")


def test_one_string_is_refused(tiny):
    with pytest.raises(InputError, match="list of texts"):
        tiny.encode("cancel my order")  # type: ignore[arg-type]


@pytest.mark.slow
def test_real_model_retrieves_the_answer_to_a_paraphrase(tmp_path, pairs):
    embedder = Embedder()
    assert embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dim == 384
    store = IndexStore(tmp_path)
    store.build(pairs, embedder, version="v1")
    store.activate("v1")
    index = store.load_active(embedder)
    queries = [
        "I'd like to call off the purchase I just placed",
        "my parcel hasn't arrived, where can I see it",
        "I forgot my login credentials",
        "my home moved, please update where you deliver",
    ]
    results = index.search(queries, k=1)
    assert [r[0].intent for r in results] == [
        "cancel_order",
        "track_order",
        "recover_password",
        "change_address",
    ]
    assert all(0.3 < r[0].score < 1.0 for r in results)
