"""Question→answer pairs for fine-tuning and evaluation, split by distinct question.

Bitext questions repeat within an intent, so a split by row would leak test questions into
training; :func:`split_by_question` sends every copy of a question to the same side, by the
project's one held-out rule (:mod:`finetune.held_out`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune.held_out import split_held_out
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


def split_by_question(
    pairs: Sequence[QAPair], fraction: float = 0.1
) -> tuple[list[QAPair], list[QAPair]]:
    """(train, held_out): every copy of a question lands on the same side."""
    return split_held_out(pairs, lambda pair: normalise(pair.question), fraction)
