"""Background jobs: imports, training runs and index builds, as rows of ``training_runs``.

A job is queued as a row; a runner claims it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several workers never take the same one), runs the matching ``deskbot`` command as a child
process, keeps a lease alive while it runs, reports progress (read from the child's progress
bar), and records the outcome. Cancelling terminates the child. A job whose runner died is
claimed again once its lease has expired.

Running training in a child process keeps the server responsive, returns the training memory
when it ends, and lets cancel stop it at any point. In the single-process default the server
runs a :class:`JobRunner` itself; scaled out, ``deskbot worker`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text, update
from sqlmodel import col, select

from bot.errors import InputError, NotFoundError
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.models import TrainingRun, utcnow

log = logging.getLogger("deskbot.jobs")

JOB_KINDS = ("import", "index", "intent", "generator", "retrain", "export", "gaps")
# Which live models a finished job may have changed.
RELOADS = {
    "index": ("index",),
    "intent": ("intent",),
    "generator": ("generator",),
    "retrain": ("index", "intent", "generator"),
}
PROGRESS = re.compile(rb"(\d{1,3})%\|")


def job_command(kind: str, params: dict[str, Any]) -> list[str]:
    """The ``deskbot`` command line for a job; InputError for unknown kinds or bad params."""
    base = [sys.executable, "-m", "bot"]
    if kind == "import":
        path = params.get("path")
        if not isinstance(path, str) or not path:
            raise InputError("an import job needs params.path")
        return [*base, "import", path, "--json"]
    if kind == "index":
        return [*base, "index", "build", "--json"]
    if kind == "intent":
        cmd = [*base, "train", "intent", "--json"]
        if isinstance(params.get("data"), str):
            cmd += ["--data", params["data"]]
        if isinstance(params.get("epochs"), int):
            cmd += ["--epochs", str(params["epochs"])]
        return cmd
    if kind == "generator":
        cmd = [*base, "train", "generator"]
        if isinstance(params.get("data"), str):
            cmd += ["--data", params["data"]]
        return cmd
    if kind == "retrain":
        cmd = [*base, "retrain", "--json"]
        for flag in ("intent", "generator", "index"):
            if params.get(flag):
                cmd.append(f"--{flag}")
        return cmd
    if kind == "export":
        since = str(params.get("since", "1970-01-01"))
        return [*base, "export", "training-data", "--since", since, "--json"]
    if kind == "gaps":
        cmd = [*base, "gaps", "mine", "--json"]
        if isinstance(params.get("since"), str):
            cmd += ["--since", params["since"]]
        return cmd
    raise InputError(f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")


async def enqueue(db: Database, kind: str, params: dict[str, Any] | None = None) -> TrainingRun:
    params = params or {}
    job_command(kind, params)  # validates before anything is stored
    async with db.session() as s:
        run = TrainingRun(kind=kind, params=params)
        s.add(run)
        await s.flush()
    return run


async def request_cancel(db: Database, run_id: int) -> TrainingRun:
    async with db.session() as s:
        run = await s.get(TrainingRun, run_id, with_for_update=True)
        if run is None:
            raise NotFoundError("no such training run")
        if run.status == "queued":
            run.status = "cancelled"
            run.finished_at = utcnow()
        elif run.status == "running":
            run.cancel_requested = True
        s.add(run)
    return run


class JobRunner:
    """Claims and runs jobs one at a time (training uses every core anyway)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        on_finished: Callable[[TrainingRun], Awaitable[None]] | None = None,
        poll_seconds: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.on_finished = on_finished
        self.poll_seconds = poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = timedelta(seconds=settings.server.job_lease_s)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._child: asyncio.subprocess.Process | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="jobs")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._child is not None and self._child.returncode is None:
            # Leave the row running: its lease expires and another runner takes it again.
            with contextlib.suppress(ProcessLookupError):
                self._child.terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                run = await self.claim()
                if run is not None:
                    await self.execute(run)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job loop error")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def claim(self) -> TrainingRun | None:
        """Take the oldest queued job, or a running one whose lease expired."""
        now = utcnow()
        async with self.db.session() as s:
            query = (
                select(TrainingRun)
                .where(
                    (col(TrainingRun.status) == "queued")
                    | (
                        (col(TrainingRun.status) == "running")
                        & (col(TrainingRun.lease_until) < now)
                    )
                )
                .order_by(col(TrainingRun.id))
                .limit(1)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            else:
                await s.exec(text("SELECT 1"))  # type: ignore[call-overload]
            run = (await s.exec(query)).first()
            if run is None:
                return None
            if run.status == "running":
                log.warning(
                    "re-claiming job %s: its runner %s stopped renewing", run.id, run.worker
                )
            run.status = "running"
            run.worker = self.name
            run.lease_until = now + self.lease
            run.started_at = run.started_at or now
            s.add(run)
        return run

    async def _update(self, run_id: int, **values: Any) -> TrainingRun | None:
        async with self.db.session() as s:
            await s.exec(
                update(TrainingRun)
                .where(col(TrainingRun.id) == run_id, col(TrainingRun.worker) == self.name)
                .values(**values)
            )
            return await s.get(TrainingRun, run_id)

    async def execute(self, run: TrainingRun) -> None:
        assert run.id is not None
        try:
            cmd = job_command(run.kind, run.params)
        except InputError as exc:
            await self._update(run.id, status="failed", message=exc.message, finished_at=utcnow())
            return
        env = {**os.environ, "DESKBOT_HOME": str(self.settings.home.absolute())}
        db_url = self.settings.database_url.get_secret_value()
        if db_url:
            env["DESKBOT_DATABASE_URL"] = db_url
        log.info("job %s (%s) started: %s", run.id, run.kind, " ".join(cmd[2:]))
        self._child = child = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        progress = {"value": 0.0}
        tail: list[bytes] = []

        async def read_stderr() -> None:
            assert child.stderr is not None
            while chunk := await child.stderr.read(4096):
                found = PROGRESS.findall(chunk)
                if found:
                    progress["value"] = min(1.0, int(found[-1]) / 100)
                tail.append(chunk)
                del tail[:-8]

        reader = asyncio.create_task(read_stderr())
        assert child.stdout is not None  # opened with stdout=PIPE
        out_task = asyncio.create_task(child.stdout.read())
        cancelled = False
        while child.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 2.0)
            if child.returncode is not None:
                break
            row = await self._update(
                run.id, lease_until=utcnow() + self.lease, progress=progress["value"]
            )
            if row is not None and row.cancel_requested and not cancelled:
                cancelled = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        stdout = await out_task
        await reader
        self._child = None
        err_text = b"".join(tail).decode("utf-8", "replace")
        result: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            parsed = json.loads(stdout.decode("utf-8", "replace").strip() or "{}")
            result = parsed if isinstance(parsed, dict) else {"output": parsed}
        if not result and stdout.strip():
            result = {"output": stdout.decode("utf-8", "replace")[-2000:]}
        if cancelled:
            status, message = "cancelled", "cancelled by request"
        elif child.returncode == 0:
            status, message = "succeeded", None
        else:
            lines = [ln for ln in re.split(r"[\r\n]", err_text) if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("error:")]
            status, message = (
                "failed",
                (errors or lines or ["exited with " + str(child.returncode)])[-1],
            )
        final = await self._update(
            run.id,
            status=status,
            message=message,
            result=result,
            progress=1.0 if status == "succeeded" else progress["value"],
            finished_at=utcnow(),
            lease_until=None,
        )
        log.info("job %s (%s) %s", run.id, run.kind, status)
        if final is not None and self.on_finished is not None:
            await self.on_finished(final)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the runner dies (Linux), so a crashed worker's job is
    not still running when another worker claims it after the lease."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def upload_dir(settings: Settings) -> Path:
    path = settings.home / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


# What an admin may pass to a job over the API; anything else is refused before it is queued.
JOB_PARAMS: dict[str, dict[str, str]] = {
    "index": {},
    "intent": {"data": "path", "epochs": "epochs"},
    "generator": {"data": "path"},
    "retrain": {"intent": "flag", "generator": "flag", "index": "flag"},
    "export": {"since": "date"},
}
MAX_EPOCHS = 100


def check_job_params(kind: str, params: dict[str, Any], home: Path) -> dict[str, Any]:
    """Admin job parameters, bounded: known keys only, epochs 1-100, data files inside home.

    Returns the parameters with data paths made absolute (resolved inside ``home``).
    """
    allowed = JOB_PARAMS.get(kind)
    if allowed is None:
        raise InputError(f"'kind' must be one of {', '.join(JOB_PARAMS)}")
    out: dict[str, Any] = {}
    root = home.resolve()
    for name, value in params.items():
        check = allowed.get(name)
        if check is None:
            known = ", ".join(allowed) or "none"
            raise InputError(f"params.{name} is not a parameter of {kind} jobs (known: {known})")
        if check == "flag":
            if not isinstance(value, bool):
                raise InputError(f"params.{name} must be true or false")
        elif check == "epochs":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError("params.epochs must be a whole number")
            if not 1 <= value <= MAX_EPOCHS:
                raise InputError(f"params.epochs must be between 1 and {MAX_EPOCHS}")
        elif check == "date":
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise InputError("params.since must be a date, YYYY-MM-DD")
        elif check == "path":
            if not isinstance(value, str) or not 0 < len(value) <= 1024 or "\x00" in value:
                raise InputError(f"params.{name} must be a file path inside DESKBOT_HOME")
            path = (root / value).resolve()
            if not path.is_relative_to(root):
                raise InputError(f"params.{name} must be inside DESKBOT_HOME ({root})")
            if not path.is_file():
                raise InputError(f"params.{name}: no such file {value!r} in DESKBOT_HOME")
            value = str(path)
        out[name] = value
    return out
