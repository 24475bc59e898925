"""The importer on real samples of both shapes, and on each kind of bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.errors import ImportFileError
from bot.importer import ColumnMap, import_file
from bot.storage.db import Database
from bot.storage.models import Conversation, KnowledgePair, Message
from tests.conftest import REPO_ROOT

SAMPLE_PAIRS = REPO_ROOT / "examples" / "sample_pairs.csv"
SAMPLE_DIALOGUES = REPO_ROOT / "examples" / "sample_dialogues.jsonl"


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as s:
        counts = [
            (await s.exec(select(func.count()).select_from(m))).one()
            for m in (Conversation, Message, KnowledgePair)
        ]
    return tuple(counts)


async def test_csv_sample_import_is_idempotent(db: Database) -> None:
    summary = await import_file(db, SAMPLE_PAIRS)
    assert summary.dialogues == 398
    assert summary.conversations_added == 398
    assert summary.messages_added == 796
    assert summary.pairs_added == 398
    assert len(summary.intents) == 28
    assert await _counts(db) == (398, 796, 398)

    again = await import_file(db, SAMPLE_PAIRS)
    assert (again.conversations_added, again.pairs_added) == (0, 0)
    assert again.duplicates_skipped == 398
    assert await _counts(db) == (398, 796, 398)

    async with db.session() as s:
        pair = (
            await s.exec(select(KnowledgePair).where(KnowledgePair.intent == "human_agent"))
        ).first()
        labelled = (
            await s.exec(
                select(func.count()).select_from(Message).where(Message.intent == "cancel_order")
            )
        ).one()
    assert pair is not None and "support team" in pair.answer
    assert labelled == 14  # customer turns carry the intent, agent turns do not


async def test_jsonl_dialogues_mine_pairs(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "turns": [{"role": "User", "content": "Where is my order?"},'
        ' {"role": "user", "content": "It is late."},'
        ' {"role": "Agent", "content": "Let me check that for you."},'
        ' {"role": "customer", "content": "thanks"}]}\n'
        '{"id": "b", "turns": [{"role": "assistant", "content": "Hello!"},'
        ' {"role": "USER", "content": "Refund please"},'
        ' {"role": "agent", "content": "Refund started."}]}\n',
        encoding="utf-8",
    )
    summary = await import_file(db, path)
    assert (summary.dialogues, summary.messages_added, summary.pairs_added) == (2, 7, 2)
    async with db.session() as s:
        pairs = {p.question: p.answer for p in (await s.exec(select(KnowledgePair))).all()}
    assert pairs == {
        "Where is my order? It is late.": "Let me check that for you.",
        "Refund please": "Refund started.",
    }


async def test_real_gzip_samples_of_both_shapes(
    sqlite_db: Database, shared_data: Path, tmp_path: Path
) -> None:
    # The first 200 records of each shared file, gzipped again: real content, real format.
    src = shared_data / "bitext" / "bitext_cs_train.csv.gz"
    with gzip.open(src, "rt", encoding="utf-8", newline="") as f:
        rows = [row for _, row in zip(range(201), csv.reader(f), strict=False)]
    with gzip.open(tmp_path / "bitext.csv.gz", "wt", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    summary = await import_file(sqlite_db, tmp_path / "bitext.csv.gz")
    assert (summary.dialogues, summary.pairs_added) == (200, 200)

    src = shared_data / "cucom" / "cucom_ecommerce.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        head = "".join(f.readline() for _ in range(200))
    with gzip.open(tmp_path / "cucom.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(head)
    summary = await import_file(sqlite_db, tmp_path / "cucom.jsonl.gz")
    assert summary.dialogues == 200
    assert summary.pairs_mined > 2 * 200  # several exchanges per dialogue


def _bad_files(tmp: Path) -> list[tuple[Path, int | None, str]]:
    good = SAMPLE_PAIRS.read_text(encoding="utf-8").splitlines()
    cases = []

    p = tmp / "missing_col.csv"
    p.write_text("question,intent,response\nhi,greet,hello\n", encoding="utf-8")
    cases.append((p, 1, "missing column 'instruction'"))

    p = tmp / "short_row.csv"
    with SAMPLE_PAIRS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows[:40])
    before_bad = buf.getvalue()
    p.write_text(before_bad + "only one field\n" + before_bad.split("\n", 1)[1], encoding="utf-8")
    cases.append((p, before_bad.count("\n") + 1, "expected 3 fields, found 1"))

    p = tmp / "latin1.csv"
    p.write_bytes(("\n".join(good[:30]) + "\nCaf\xe9 closed,cancel_order,ok\n").encode("latin-1"))
    cases.append((p, 31, "not valid UTF-8"))

    p = tmp / "empty.csv"
    p.write_text("", encoding="utf-8")
    cases.append((p, None, "empty"))

    p = tmp / "header_only.csv"
    p.write_text("instruction,intent,response\n", encoding="utf-8")
    cases.append((p, None, "no rows"))

    p = tmp / "bad.jsonl"
    lines = SAMPLE_DIALOGUES.read_text(encoding="utf-8").splitlines()
    p.write_text(
        "\n".join([*lines[:3], '{"id": 1, "turns": [', *lines[3:5]]) + "\n", encoding="utf-8"
    )
    cases.append((p, 4, "invalid JSON"))

    p = tmp / "bad_role.jsonl"
    p.write_text('{"id": 1, "turns": [{"role": "robot", "content": "x"}]}\n', encoding="utf-8")
    cases.append((p, 1, "unknown role 'robot'"))

    p = tmp / "corrupt.csv.gz"
    p.write_bytes(gzip.compress(b"instruction,intent,response\n")[:12])
    cases.append((p, None, "corrupt gzip"))
    return cases


async def test_bad_input_names_the_line_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    await import_file(db, SAMPLE_DIALOGUES)
    before = await _counts(db)
    for path, line, problem in _bad_files(tmp_path):
        with pytest.raises(ImportFileError) as info:
            await import_file(db, path)
            pytest.fail(f"{path.name} was accepted")
        err = info.value
        assert err.line == line, (path.name, err.message)
        assert problem in err.message, (path.name, err.message)
        assert str(path) in err.message
        assert await _counts(db) == before, path.name


async def test_custom_columns(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text('q,a\n"How do I reset, my password?","Use the link."\n', encoding="utf-8")
    summary = await import_file(sqlite_db, path, columns=ColumnMap("q", "a", None))
    assert summary.pairs_added == 1


def test_cli_import_reports_and_fails_cleanly(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"DESKBOT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "bot", "import"]
    ok = subprocess.run([*cmd, str(SAMPLE_PAIRS)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "398 pairs mined (398 new)" in ok.stdout
    bad = tmp_path / "bad.csv"
    shutil.copy(SAMPLE_PAIRS, bad)
    with bad.open("a", encoding="utf-8") as f:
        f.write('"unterminated,quote\n')
    res = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{bad}:" in res.stderr and "error:" in res.stderr


async def test_jsonl_text_may_hold_unicode_line_separators(
    sqlite_db: Database, tmp_path: Path
) -> None:
    # JSON leaves U+2028 and U+0085 unescaped inside strings; only "\n" ends a JSON line.
    path = tmp_path / "separators.jsonl"
    lines = [
        {
            "id": n,
            "turns": [{"role": "user", "content": f"a{sep}b"}, {"role": "agent", "content": "ok"}],
        }
        for n, sep in enumerate(("\u2028", "\x85"))
    ]
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines), "utf-8")
    summary = await import_file(sqlite_db, path)
    assert summary.dialogues == 2 and summary.pairs_mined == 2
