"""Every CSV the project takes goes through one reader: capped gunzip, errors naming the line."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ImportFileError
from bot.importer import read_dialogues
from finetune.generator.data import read_pairs
from finetune.intent.data import read_csv
from retrieval import data_files
from retrieval.pairs import read_pairs_csv

# Each reader of the project, with the header it needs.
READERS: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "import": ("instruction,intent,response", read_dialogues),
    "index pairs": ("instruction,intent,response", read_pairs_csv),
    "intent examples": ("text,intent,note", read_csv),
    "generator pairs": ("question,intent,answer", read_pairs),
}


@pytest.mark.parametrize("reader", READERS)
def test_gzip_expands_only_up_to_the_cap(
    reader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header, read = READERS[reader]
    monkeypatch.setattr(data_files, "MAX_DECOMPRESSED", 1000)
    fits = tmp_path / "fits.csv.gz"
    fits.write_bytes(gzip.compress(f"{header}\nq,i,a\n".encode()))
    assert read(fits)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(f"{header}\n".encode() + b"q,i,a\n" * 200))
    with pytest.raises(ImportFileError, match="more than 1000 bytes"):
        read(bomb)


@pytest.mark.parametrize("reader", READERS)
def test_a_bad_row_is_named_by_the_line_it_starts_on(reader: str, tmp_path: Path) -> None:
    header, read = READERS[reader]
    path = tmp_path / "bad.csv"
    # The first row's quoted cell spans lines 2-3, so the short row is on line 4.
    path.write_text(f'{header}\n"two\nlines",i,a\nonly one\n', encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"bad\.csv:4: expected 3 fields, found 1"):
        read(path)
    path.write_text(f'{header}\nq,i,a\n"unterminated,i,a\n', encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"bad\.csv:3: "):
        read(path)


def test_columns_are_found_by_any_of_their_names_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("Utterance,Reply\nwhere is it,on its way\n", encoding="utf-8")
    rows = data_files.read_csv_rows(
        path,
        {"q": ("question", "utterance"), "a": ("answer", "reply"), "i": ("intent",)},
        if_present=("i",),
    )
    assert [(r.line, r["q"], r["a"], r["i"]) for r in rows] == [
        (2, "where is it", "on its way", "")
    ]
    with pytest.raises(ImportFileError, match=r"missing column 'intent' \(or 'label'\)"):
        data_files.read_csv_rows(path, {"i": ("intent", "label")})
