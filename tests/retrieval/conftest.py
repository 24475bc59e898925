"""Fixtures for retrieval tests: a cheap bag-of-words encoder and a tiny random ST model."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import RetrievalSettings
from retrieval.pairs import Pair
from retrieval.store import IndexStore

WORD = re.compile(r"[a-z0-9]+")

# A query cap for the tiny model: with [CLS] and [SEP], AT_CAP is CAP tokens, ONE_PAST one more.
CAP = 16
AT_CAP = " ".join(["order"] * (CAP - 2))
ONE_PAST = AT_CAP + " refund"


class BagOfWordsEncoder:
    """Hashed bag of words, L2-normalised: texts sharing words are near, deterministic."""

    def __init__(self, dim: int = 64, name: str = "test/bag-of-words") -> None:
        self._dim = dim
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(
        self, texts: list[str], batch_size: int = 64, max_tokens: int | None = None
    ) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in WORD.findall(text.lower())[:max_tokens]:
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[i, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out


PAIRS = [
    Pair(1, "how do I cancel my order", "Go to Orders and press Cancel.", "cancel_order"),
    Pair(
        2, "cancel the purchase I made yesterday", "Open the order, press Cancel.", "cancel_order"
    ),
    Pair(3, "where is my package", "Track it under Orders > Track.", "track_order"),
    Pair(4, "track my order status", "The Track page shows the status.", "track_order"),
    Pair(5, "I want a refund for my order", "Refunds take five days.", "get_refund"),
    Pair(6, "how long does a refund take", "About five working days.", "get_refund"),
    Pair(7, "change my shipping address", "Edit the address in your profile.", "change_address"),
    Pair(8, "reset my password", "Use 'Forgot password' on the login page.", "recover_password"),
]


@pytest.fixture
def encoder() -> BagOfWordsEncoder:
    return BagOfWordsEncoder()


@pytest.fixture
def pairs() -> list[Pair]:
    return list(PAIRS)


@pytest.fixture
def store(tmp_path: Path) -> IndexStore:
    return IndexStore(tmp_path / "indexes", RetrievalSettings())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT saved as a sentence-transformers directory (mean pooling)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-encoder")
    words = sorted(
        {w for p in PAIRS for w in WORD.findall(p.question.lower() + " " + p.answer.lower())}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    hf_dir = root / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    st_dir = root / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(st_dir))
    return st_dir
