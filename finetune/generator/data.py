"""Question→answer pairs for fine-tuning and evaluation, split by distinct question.

Bitext questions repeat within an intent, so a split by row would leak test questions into
training; :func:`split_by_question` sends every copy of a question to the same side, chosen by
a hash of its normalised text (stable across runs and machines).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ImportFileError

QUESTION_COLUMNS = ("question", "instruction", "text", "utterance")
ANSWER_COLUMNS = ("answer", "response", "reply")
INTENT_COLUMNS = ("intent", "label")


@dataclass(frozen=True, slots=True)
class QAPair:
    id: int
    question: str
    answer: str
    intent: str | None = None


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _column(header: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def read_pairs(path: str | Path, limit: int | None = None) -> list[QAPair]:
    """Rows of a CSV (or .csv.gz) with question/instruction, answer/response[, intent]."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(str(path), None, "file not found")
    pairs: list[QAPair] = []
    with _open(path) as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        q, a, i = (_column(header, c) for c in (QUESTION_COLUMNS, ANSWER_COLUMNS, INTENT_COLUMNS))
        if q is None or a is None:
            raise ImportFileError(
                str(path),
                1,
                f"expected a question column ({'/'.join(QUESTION_COLUMNS)}) and an answer "
                f"column ({'/'.join(ANSWER_COLUMNS)}); found {', '.join(header) or 'none'}",
            )
        for line, row in enumerate(reader, start=2):
            question, answer = (row.get(q) or "").strip(), (row.get(a) or "").strip()
            if not question or not answer:
                raise ImportFileError(str(path), line, f"empty {q if not question else a}")
            intent = (row.get(i) or "").strip() or None if i else None
            pairs.append(QAPair(len(pairs), question, answer, intent))
            if limit is not None and len(pairs) >= limit:
                break
    if not pairs:
        raise ImportFileError(str(path), None, "no rows")
    return pairs


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
