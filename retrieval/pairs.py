"""Question→answer pairs as the index stores them, and reading them from a CSV file."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ImportFileError, InputError


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


def _open_text(path: Path) -> str:
    if not path.is_file():
        raise ImportFileError(str(path), None, "no such file")
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(str(path), None, f"not UTF-8 text ({exc.reason})") from None


def read_csv_columns(path: Path, columns: dict[str, str | None]) -> list[dict[str, str]]:
    """Rows of a CSV (optionally .gz) holding the wanted columns; role → column name.

    A missing column or an empty required cell raises :class:`ImportFileError` naming the
    file, the line and the column. Roles whose column is ``None`` are left out.
    """
    reader = csv.reader(io.StringIO(_open_text(path), newline=""))
    header = next(reader, None)
    if not header:
        raise ImportFileError(str(path), 1, "the file is empty; expected a header row")
    names = [h.strip() for h in header]
    wanted = {role: col for role, col in columns.items() if col}
    missing = [col for col in wanted.values() if col not in names]
    if missing:
        raise ImportFileError(
            str(path),
            1,
            f"missing column {', '.join(repr(m) for m in missing)}; the header has "
            f"{', '.join(repr(n) for n in names)}",
        )
    where = {role: names.index(col) for role, col in wanted.items()}
    rows = []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(names):
            raise ImportFileError(
                str(path), line, f"expected {len(names)} fields, found {len(record)}"
            )
        rows.append({role: record[i].strip() for role, i in where.items()} | {"_line": str(line)})
    return rows


def read_pairs_csv(
    path: Path,
    *,
    question_col: str = "instruction",
    answer_col: str = "response",
    intent_col: str | None = "intent",
) -> list[Pair]:
    """Pairs from a CSV; ids are the 1-based data row numbers (defaults fit Bitext)."""
    rows = read_csv_columns(
        path, {"question": question_col, "answer": answer_col, "intent": intent_col}
    )
    pairs = []
    for number, row in enumerate(rows, start=1):
        for role, col in (("question", question_col), ("answer", answer_col)):
            if not row[role]:
                raise ImportFileError(str(path), int(row["_line"]), f"empty {col!r}")
        pairs.append(Pair(number, row["question"], row["answer"], row.get("intent") or None))
    if not pairs:
        raise ImportFileError(str(path), None, "no data rows")
    return pairs
