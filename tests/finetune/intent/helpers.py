"""Shared builders for intent tests: the in-repo Banking77 sample and a tiny random encoder."""

from __future__ import annotations

import csv
import gzip
import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from bot.core.bundled import encoder_path
from finetune.intent.classifier import IntentClassifier
from finetune.intent.data import Examples, read_csv
from finetune.intent.hparams import IntentHyperParams

BANKING_INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed")
OOS = "oos"
# One message for each banking intent, and one a banking bot cannot place.
SAMPLE_QUERIES = (
    "my card has still not arrived",
    "what exchange rate do you use for dollars",
    "someone stole my card",
    "my top up did not work",
    "how do I cancel my order",
)
# Out of scope for a banking bot: shop questions like the Bitext ones it saw as "oos"...
HANDWRITTEN_OOS = (
    "I need to change the shipping address of my parcel",
    "how do I create an account on your website",
    "can I return the shoes I bought last week",
)
# ...and chit-chat unlike anything it saw, which it must at least not be sure about.
OFF_TOPIC = (
    "what will the weather be like in paris tomorrow",
    "recommend a good pizza place near me",
)


def tiny_encoder(path: Path) -> Path:
    """A 2-layer, 32-wide random BERT with the bundled encoder's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    # Seeded, so that every run and every xdist worker builds the same weights, whatever ran
    # before it in that process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "banking_sample.csv"


def banking_sample(split: str) -> Examples:
    """One split of tests/data/banking_sample.csv: ``train`` (30 per label), ``test`` (15 per
    label, none in train) or ``small`` (12 per label), drawn by :func:`banking_with_oos`."""
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        rows = [(r["text"], r["intent"]) for r in csv.DictReader(fh) if r["split"] == split]
    if not rows:
        raise ValueError(f"no split {split!r} in {SAMPLE}")
    return Examples.from_pairs(rows)


def banking_with_oos(data_dir: Path, per_intent: int, seed: int, skip: int = 0) -> Examples:
    """``per_intent`` Banking77 queries of a few intents plus as many Bitext questions as
    ``oos`` (another domain, so out of scope for a banking bot). ``skip`` moves the window,
    so two calls with different ``skip`` share no example."""
    rng = random.Random(seed)
    bank = read_csv(data_dir / "banking77" / "train.csv", label_col="category")
    texts: list[str] = []
    labels: list[str] = []
    for intent in BANKING_INTENTS:
        pool = [t for t, lab in zip(bank.texts, bank.labels, strict=True) if lab == intent]
        rng.shuffle(pool)
        texts += pool[skip : skip + per_intent]
        labels += [intent] * per_intent
    with gzip.open(data_dir / "bitext" / "bitext_cs_train.csv.gz", "rt", encoding="utf-8") as fh:
        questions = sorted({row["instruction"] for row in csv.DictReader(fh)})
    rng.shuffle(questions)
    texts += questions[skip : skip + per_intent]
    labels += [OOS] * per_intent
    return Examples(tuple(texts), tuple(labels))


def write_csv(
    path: Path, examples: Examples, text_col: str = "text", label_col: str = "intent"
) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([text_col, label_col])
        writer.writerows(zip(examples.texts, examples.labels, strict=True))
    return path


TINY_HP = IntentHyperParams(epochs=2, batch_size=16, lora_r=4, lora_alpha=8)
REAL_HP = IntentHyperParams(epochs=3, batch_size=16)


def with_config(model_dir: Path, tmp_path: Path, **changes: Any) -> IntentClassifier:
    """A copy of ``model_dir`` with ``changes`` to its intent_config.json, loaded."""
    copy = shutil.copytree(model_dir, tmp_path / "copy", dirs_exist_ok=True)
    cfg_path = copy / "intent_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(changes)
    cfg_path.write_text(json.dumps(cfg))
    return IntentClassifier.load(copy)
