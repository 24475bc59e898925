"""Slow preparations that need nothing from the tests, started in child processes as soon as
the tests are collected, so that they run beside the first tests instead of before the ones
that need them: the type check (``mypy``) and the learning demonstrations' first bot.

A test that needs one calls :func:`finish`, which waits for it (starting it then if
collection did not). The suite's own process mostly waits on servers, databases and
browsers, so a second process has a core to itself much of the time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
MYPY = ("-m", "mypy")  # the packages to check come from pyproject.toml


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def wait(self, timeout: float) -> tuple[int, str]:
        """The exit status and everything the child printed."""
        try:
            rc = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            rc = -9
        self.log.seek(0)
        output = self.log.read().decode(errors="replace")
        self.log.close()
        return rc, output


_started: dict[str, Started] = {}
_scratch: list[Path] = []


def scratch() -> Path:
    """A directory for what the children write, removed when the session ends."""
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="deskbot-head-start-")))
    return _scratch[0]


def start(name: str, *args: str) -> None:
    """Run ``python ARGS`` from the repository root, unless ``name`` runs already."""
    if name in _started:
        return
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    _started[name] = Started(process, log)


def finish(name: str, *args: str, timeout: float = 900) -> tuple[int, str]:
    """Wait for ``name`` (started now with ``args`` if it was not) and take its result."""
    start(name, *args)
    return _started.pop(name).wait(timeout)


def stop_all() -> None:
    """Stop what no test took (a run that stopped early), and remove the scratch directory."""
    for started in _started.values():
        started.process.kill()
        started.process.wait()
        started.log.close()
    _started.clear()
    for path in _scratch:
        shutil.rmtree(path, ignore_errors=True)
    _scratch.clear()
