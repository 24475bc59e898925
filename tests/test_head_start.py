"""The head starts run once per run however many xdist workers ask (tests/head_start.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.head_start import ROOT


def test_a_preparation_asked_for_twice_at_once_runs_once_and_both_get_its_result(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    # Appends a mark, prints and fails with status 3 after a pause long enough for the second
    # child to be waiting on the lock.
    script = (
        f"import time; open({str(marks)!r}, 'a').write('x'); print('prepared', flush=True); "
        "time.sleep(1); raise SystemExit(3)"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.head_start", str(tmp_path), "prep", "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [(child.wait(60), child.stdout.read()) for child in children if child.stdout]
    assert marks.read_text() == "x"
    assert results == [(3, b"prepared\n")] * 2
    # A third child, later, hands back the same result without running it again.
    late = subprocess.run(
        [sys.executable, "-m", "tests.head_start", str(tmp_path), "prep", "-c", script],
        cwd=ROOT,
        capture_output=True,
    )
    assert (late.returncode, late.stdout, marks.read_text()) == (3, b"prepared\n", "x")
