"""Question→answer pairs for fine-tuning and evaluation, split by distinct question.

Bitext questions repeat within an intent, so a split by row would leak test questions into
training; :func:`split_by_question` sends every copy of a question to the same side, chosen by
a hash of its normalised text (stable across runs and machines).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.data_files import read_csv_rows

QUESTION_COLUMNS = ("question", "instruction", "text", "utterance")
ANSWER_COLUMNS = ("answer", "response", "reply")
INTENT_COLUMNS = ("intent", "label")


@dataclass(frozen=True, slots=True)
class QAPair:
    id: int
    question: str
    answer: str
    intent: str | None = None


def read_pairs(path: str | Path, limit: int | None = None) -> list[QAPair]:
    """Rows of a CSV (or .csv.gz) with question/instruction, answer/response[, intent]."""
    rows = read_csv_rows(
        path,
        {"question": QUESTION_COLUMNS, "answer": ANSWER_COLUMNS, "intent": INTENT_COLUMNS},
        required=("question", "answer"),
        if_present=("intent",),
        limit=limit,
    )
    return [
        QAPair(n, row["question"], row["answer"], row["intent"] or None)
        for n, row in enumerate(rows)
    ]


def normalise(question: str) -> str:
    return re.sub(r"\s+", " ", question.lower()).strip()


def is_held_out(question: str, percent: int = 10) -> bool:
    digest = hashlib.sha256(normalise(question).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def split_by_question(
    pairs: Sequence[QAPair], held_out_percent: int = 10
) -> tuple[list[QAPair], list[QAPair]]:
    """(train, held_out): every copy of a question lands on the same side."""
    train: list[QAPair] = []
    held: list[QAPair] = []
    for pair in pairs:
        (held if is_held_out(pair.question, held_out_percent) else train).append(pair)
    return train, held
