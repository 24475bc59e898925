"""Labelled intent examples: reading CSV files, validating them, splitting off a dev set."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import InputError
from retrieval.data_files import read_csv_rows

log = logging.getLogger("deskbot.intent")


@dataclass(frozen=True)
class Examples:
    """Parallel tuples of texts and their intent labels."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise InputError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Examples:
        texts: list[str] = []
        labels: list[str] = []
        for n, (text, label) in enumerate(pairs, start=1):
            text, label = (text or "").strip(), (label or "").strip()
            if not text or not label:
                raise InputError(f"example {n} has an empty {'text' if not text else 'label'}")
            texts.append(text)
            labels.append(label)
        return cls(tuple(texts), tuple(labels))

    def subset(self, indices: Iterable[int]) -> Examples:
        idx = list(indices)
        return Examples(tuple(self.texts[i] for i in idx), tuple(self.labels[i] for i in idx))

    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def digest(self) -> str:
        """sha256 of the examples, order-independent, to record what a model was trained on."""
        h = hashlib.sha256()
        for text, label in sorted(zip(self.texts, self.labels, strict=True)):
            h.update(f"{label}\t{text}\n".encode())
        return h.hexdigest()


ExamplesLike = Examples | Sequence[tuple[str, str]] | str | Path


def read_csv(path: str | Path, text_col: str = "text", label_col: str = "intent") -> Examples:
    """Read ``text_col`` and ``label_col`` of a CSV (or .csv.gz) file; errors name the line."""
    rows = read_csv_rows(path, {"text": text_col, "label": label_col}, required=("text", "label"))
    return Examples(tuple(r["text"] for r in rows), tuple(r["label"] for r in rows))


def as_examples(data: ExamplesLike, text_col: str = "text", label_col: str = "intent") -> Examples:
    if isinstance(data, Examples):
        return data
    if isinstance(data, str | Path):
        return read_csv(data, text_col, label_col)
    return Examples.from_pairs(data)


def check_trainable(examples: Examples, what: str = "training data") -> None:
    if len(examples) == 0:
        raise InputError(f"{what} holds no examples")
    counts = examples.counts()
    if len(counts) < 2:
        only = next(iter(counts))
        raise InputError(f"{what} has a single intent ({only!r}); a classifier needs at least two")


def split_dev(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Hold out a stratified ``fraction`` of each intent, splitting by distinct text.

    Copies of one question stay on one side, so the dev figures do not leak. Intents with a
    single distinct text stay entirely in train.
    """
    rng = random.Random(seed)
    by_label: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (text, label) in enumerate(zip(examples.texts, examples.labels, strict=True)):
        by_label[label][text.casefold()].append(i)
    train_idx: list[int] = []
    dev_idx: list[int] = []
    for label in sorted(by_label):
        groups = [by_label[label][t] for t in sorted(by_label[label])]
        rng.shuffle(groups)
        n_dev = round(len(groups) * fraction) if len(groups) > 1 else 0
        n_dev = max(1, n_dev) if len(groups) > 1 and fraction > 0 else n_dev
        for g in groups[:n_dev]:
            dev_idx.extend(g)
        for g in groups[n_dev:]:
            train_idx.extend(g)
    if not dev_idx:
        raise InputError("too little data to hold out a dev set; pass one explicitly")
    return examples.subset(sorted(train_idx)), examples.subset(sorted(dev_idx))


def sample_per_label(examples: Examples, per_label: int, seed: int) -> Examples:
    """``per_label`` examples of each intent (all of them where there are fewer)."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(examples.labels):
        by_label[label].append(i)
    chosen: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        chosen.extend(rng.sample(idx, min(per_label, len(idx))))
    if len(chosen) < len(examples):
        log.debug("sampled %d of %d examples", len(chosen), len(examples))
    return examples.subset(sorted(chosen))
