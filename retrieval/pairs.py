"""Question→answer pairs as the index stores them, and reading them from a CSV file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import InputError
from retrieval.data_files import read_csv_rows


@dataclass(frozen=True, slots=True)
class Pair:
    """One indexed pair; ``pair_id`` is the KnowledgePair id (or the CSV data row number)."""

    pair_id: int
    question: str
    answer: str
    intent: str | None = None


def as_pair(item: Any) -> Pair:
    """A :class:`Pair` from a Pair or any row with ``id``, ``question``, ``answer``, ``intent``."""
    if isinstance(item, Pair):
        return item
    pair_id = getattr(item, "pair_id", None)
    if pair_id is None:
        pair_id = getattr(item, "id", None)
    if pair_id is None:
        raise InputError(f"a knowledge pair has no id: {item!r}")
    question, answer = getattr(item, "question", None), getattr(item, "answer", None)
    if not isinstance(question, str) or not isinstance(answer, str):
        raise InputError(f"knowledge pair {pair_id} needs a question and an answer")
    return Pair(int(pair_id), question, answer, getattr(item, "intent", None) or None)


def as_pairs(items: Iterable[Any]) -> list[Pair]:
    pairs = [as_pair(item) for item in items]
    seen: set[int] = set()
    for pair in pairs:
        if pair.pair_id in seen:
            raise InputError(f"knowledge pair id {pair.pair_id} appears twice")
        seen.add(pair.pair_id)
    return pairs


def read_pairs_csv(
    path: Path,
    *,
    question_col: str = "instruction",
    answer_col: str = "response",
    intent_col: str | None = "intent",
) -> list[Pair]:
    """Pairs from a CSV; ids are the 1-based data row numbers (defaults fit Bitext)."""
    rows = read_csv_rows(
        path,
        {"question": question_col, "answer": answer_col, "intent": intent_col},
        required=("question", "answer"),
    )
    return [
        Pair(number, row["question"], row["answer"], row["intent"] or None)
        for number, row in enumerate(rows, start=1)
    ]
