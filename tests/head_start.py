"""Slow preparations that need nothing from the tests, started in child processes as soon as
the tests are collected, so that they run beside the first tests instead of before the ones
that need them: the type check (``mypy``) and the learning demonstrations' first bot.

A test that needs one calls :func:`finish`, which waits for it (starting it then if
collection did not). The suite's own process mostly waits on servers, databases and
browsers, so a second process has a core to itself much of the time.

Under pytest-xdist every worker collects every test and so starts every preparation, but each
runs once for the whole run: its child holds a lock on a scratch directory the workers share
(made by the main process, named in ``DESKBOT_HEAD_START_DIR``), and a second worker's child
waits on that lock and then hands back the first one's result. A worker leaves its children
running when it is done, since another worker may still need their result; the process that
made the scratch directory stops whatever still runs and removes it at the end.

``python -m tests.head_start DIR NAME ARGS...`` is that child: it runs ``python ARGS`` once
per ``DIR`` and ``NAME``, prints its output and exits with its status.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
MYPY = ("-m", "mypy")  # the packages to check come from pyproject.toml
SCRATCH_ENV = "DESKBOT_HEAD_START_DIR"
PIDS = "children.pids"  # in the scratch directory: every child started, by any worker


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def wait(self, timeout: float) -> tuple[int, str]:
        """The exit status and everything the child printed."""
        try:
            rc = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()
            rc = -9
        self.log.seek(0)
        output = self.log.read().decode(errors="replace")
        self.log.close()
        return rc, output


_started: dict[str, Started] = {}
_owned: list[Path] = []


def open_scratch() -> Path:
    """Make the run's scratch directory and name it in the environment, which the xdist
    workers and every child inherit; the caller owns it and calls :func:`stop_all` at the end."""
    path = Path(tempfile.mkdtemp(prefix="deskbot-head-start-"))
    os.environ[SCRATCH_ENV] = str(path)
    _owned.append(path)
    return path


def scratch() -> Path:
    """The run's scratch directory for what the children write (made here if the run's main
    process did not make one)."""
    named = os.environ.get(SCRATCH_ENV)
    return Path(named) if named else open_scratch()


def start(name: str, *args: str) -> None:
    """Run ``python ARGS`` from the repository root, unless ``name`` runs already; in a run
    with several workers, once for all of them (see the module docstring)."""
    if name in _started:
        return
    directory = scratch()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.head_start", str(directory), name, *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with everything it starts
    )
    with open(directory / PIDS, "a", encoding="ascii") as fh:
        fh.write(f"{process.pid}\n")
    _started[name] = Started(process, log)


def finish(name: str, *args: str, timeout: float = 900) -> tuple[int, str]:
    """Wait for ``name`` (started now with ``args`` if it was not) and take its result."""
    start(name, *args)
    return _started.pop(name).wait(timeout)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """At the end of the process that made the scratch directory: stop every child still
    running (a run that stopped early), in any worker, and remove the directory. Elsewhere
    (an xdist worker) nothing is stopped: another worker may be waiting for a result."""
    for started in _started.values():
        started.log.close()
    _started.clear()
    for path in _owned:
        pids = path / PIDS
        if pids.exists():
            for line in pids.read_text(encoding="ascii").split():
                _kill_group(int(line))
        shutil.rmtree(path, ignore_errors=True)
    if _owned:
        os.environ.pop(SCRATCH_ENV, None)
    _owned.clear()


def _run_once(directory: Path, name: str, args: list[str]) -> int:
    """Run ``python ARGS`` unless another child already ran it for ``directory``; print its
    output and return its status."""
    with open(directory / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
        status, log = directory / f"{name}.status", directory / f"{name}.log"
        if not status.exists():
            with open(log, "wb") as out:
                rc = subprocess.run(
                    [sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
                ).returncode
            status.with_suffix(".tmp").write_text(str(rc), encoding="ascii")
            status.with_suffix(".tmp").replace(status)
        sys.stdout.buffer.write(log.read_bytes())
        return int(status.read_text(encoding="ascii"))


if __name__ == "__main__":
    sys.exit(_run_once(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))
