"""``deskbot prepare`` (what ``make run`` calls) ends with a real conversation and the pages."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


def _turns(stdout: str) -> list[tuple[str, str]]:
    """The ``you:`` / ``bot:`` lines of the output, continuation lines joined."""
    turns: list[tuple[str, str]] = []
    for line in stdout.splitlines():
        started = re.match(r"  (you|bot): (.*)", line)
        if started:
            turns.append((started[1], started[2]))
        elif turns and line.startswith("       ") and line.strip():
            who, text = turns[-1]
            turns[-1] = (who, f"{text} {line.strip()}")
        elif not line.strip() and turns:
            break
    return turns


def _conversations(home: Path) -> int:
    with sqlite3.connect(home / "deskbot.db") as db:
        return int(db.execute("SELECT count(*) FROM conversations").fetchone()[0])


def test_prepare_ends_with_sample_questions_answered_by_the_server_then_the_pages(
    home: Path,
) -> None:
    before = _conversations(home)
    env = {
        **os.environ,
        "DESKBOT_HOME": str(home),
        "DESKBOT_GENERATION__BACKEND": "off",
        "DESKBOT_SERVER__PORT": "8123",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "prepare", "--no-intent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "building the retrieval index" not in done.stderr  # the home has one: skipped
    assert done.stderr.rstrip().endswith("prepare: ready")

    turns = _turns(done.stdout)
    assert [who for who, _ in turns] == ["you", "bot"] * 3
    payment, ask, filled = (text for who, text in turns if who == "bot")
    # The dialogue manager's moves show the server's reply path, not a bare generate call.
    assert "payment" in payment.lower() and "[sent, answer, check_payment_methods]" in payment
    assert "order number" in ask and ask.endswith("[sent, ask, cancel_order]")
    assert "ORD-5521" in filled and filled.endswith("[sent, fill, cancel_order]")
    assert not any("{{" in text for _, text in turns)

    pages = done.stdout[done.stdout.index("open:") :]
    for path in ("/ ", "/agent ", "/admin "):
        assert f"http://127.0.0.1:8123{path}" in pages
    assert "deskbot apikey create --role admin" in pages
    # The sample conversation is not kept: no metrics or queue entry comes from it.
    assert _conversations(home) == before
