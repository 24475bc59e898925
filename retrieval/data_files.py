"""Reading data files, plain or gzip: their text, and CSV rows with errors that name the line.

The one reader behind every file the project takes in: conversations to import, knowledge pairs
to index, intent examples and question→answer pairs to train on. It lives in ``retrieval``
because that package imports nothing else of the project (``bot.errors`` aside), so both
``finetune`` and ``bot`` may use it without an import pointing the wrong way.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ImportFileError

# The most a compressed file may expand to: a small .gz can hold gigabytes (a zip bomb).
MAX_DECOMPRESSED = 1024**3
GZIP_MAGIC = b"\x1f\x8b"

# Role → the column holding it: one header name, names to try in order, or None (not read).
Columns = Mapping[str, str | Sequence[str] | None]


def _gunzip(path: Path, limit: int) -> bytes:
    """Decompress as a stream, refusing past ``limit`` bytes instead of expanding it all."""
    out = bytearray()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1024**2):
                out += chunk
                if len(out) > limit:
                    raise ImportFileError(
                        str(path),
                        None,
                        f"decompresses to more than {limit} bytes; split it or raise the cap",
                    )
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ImportFileError(str(path), None, f"corrupt gzip data ({exc})") from None
    return bytes(out)


def read_text(path: str | Path) -> str:
    """A plain or gzip file as UTF-8 text; gzip is told by its first bytes, not its name.

    Raises :class:`ImportFileError` for a missing or empty file, gzip data that is corrupt or
    expands past :data:`MAX_DECOMPRESSED`, and bytes that are not UTF-8 (naming their line).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(str(path), None, "no such file")
    with path.open("rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
    raw = _gunzip(path, MAX_DECOMPRESSED) if compressed else path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            str(path),
            line,
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
        ) from None
    if not text.strip():
        raise ImportFileError(str(path), None, "the file is empty")
    return text


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: the line it starts on and its stripped cells by role."""

    line: int
    cells: dict[str, str]

    def __getitem__(self, role: str) -> str:
        """The cell of ``role``; empty where its optional column is absent."""
        return self.cells.get(role, "")


def _find(names: list[str], spec: str | Sequence[str]) -> int | None:
    """Where the first of ``spec``'s names is in the header; exact first, then any case."""
    options = [spec] if isinstance(spec, str) else list(spec)
    for option in options:
        if option in names:
            return names.index(option)
    lowered = [n.lower() for n in names]
    for option in options:
        if option.lower() in lowered:
            return lowered.index(option.lower())
    return None


def _shown(spec: str | Sequence[str]) -> str:
    if isinstance(spec, str):
        return repr(spec)
    first, *others = spec
    return f"{first!r} (or {', '.join(map(repr, others))})" if others else repr(first)


def csv_rows(
    path: str | Path,
    text: str,
    columns: Columns,
    *,
    required: Collection[str] = (),
    if_present: Collection[str] = (),
    hint: str = "",
) -> Iterator[CsvRow]:
    """The data rows of CSV ``text`` read from ``path``, checked as they come.

    Every role in ``columns`` must have its column in the header, except those in
    ``if_present``; cells of ``required`` roles must not be empty. Blank rows are skipped. A
    problem raises :class:`ImportFileError` naming the file, the line the row starts on and
    what is wrong; ``hint`` is added to a missing-column message.
    """
    path = str(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise ImportFileError(path, 1, f"malformed CSV header ({exc})") from None
    names = [h.strip() for h in header]
    where: dict[str, int] = {}
    missing: list[str] = []
    for role, spec in columns.items():
        if spec is None:
            continue
        found = _find(names, spec)
        if found is not None:
            where[role] = found
        elif role not in if_present:
            missing.append(_shown(spec))
    if missing:
        raise ImportFileError(
            path,
            1,
            f"missing column {', '.join(missing)}; the header has "
            f"{', '.join(names) or 'no names'}" + (f" ({hint})" if hint else ""),
        )
    rows = 0
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportFileError(path, line, f"malformed CSV ({exc})") from None
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(names):
            raise ImportFileError(path, line, f"expected {len(names)} fields, found {len(record)}")
        cells = {role: record[i].strip() for role, i in where.items()}
        for role in required:
            if role in where and not cells[role]:
                raise ImportFileError(path, line, f"empty {names[where[role]]!r}")
        rows += 1
        yield CsvRow(line, cells)
    if rows == 0:
        raise ImportFileError(path, None, "the file has a header but no rows")


def read_csv_rows(
    path: str | Path,
    columns: Columns,
    *,
    required: Collection[str] = (),
    if_present: Collection[str] = (),
    limit: int | None = None,
) -> list[CsvRow]:
    """The rows of a CSV file (plain or gzip), at most ``limit``; see :func:`csv_rows`."""
    rows: list[CsvRow] = []
    for row in csv_rows(path, read_text(path), columns, required=required, if_present=if_present):
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows
