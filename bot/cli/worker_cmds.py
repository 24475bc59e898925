"""``deskbot worker``: run queued jobs (imports, training, index builds) without serving HTTP,
and the retention purge (``privacy.retain_days``).

Scaled out, servers run with ``server.run_jobs = false`` and one or more workers claim the
``training_runs`` rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so each job runs once). When a
job that changes a model succeeds, the worker announces it on the bus (Redis, when configured)
so every server reloads at once; servers also poll the database, so nothing is lost without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import click

from bot import model_sync
from bot.cli.app import CliContext, cli, pass_ctx, run_async
from bot.jobs import JobRunner
from bot.privacy import purge_loop
from bot.settings import Settings
from bot.storage.db import Database

log = logging.getLogger("deskbot.jobs")


async def run_worker(settings: Settings, *, name: str | None = None, poll_s: float = 1.0) -> None:
    """Claim and run jobs until SIGTERM or SIGINT; a job in flight is left to its lease."""
    db = Database(settings.sqlalchemy_url)
    bus = None
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:
        from bot.redis_bus import RedisBus

        bus = RedisBus(redis_url, prefix=settings.server.redis_prefix)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await db.upgrade()
        runner = JobRunner(
            settings,
            db,
            on_finished=model_sync.after_jobs(db, bus),
            poll_seconds=poll_s,
            name=name,
        )
        runner.start()
        purge = None
        if settings.privacy.retain_days > 0:
            purge = asyncio.create_task(purge_loop(db, settings), name="retention-purge")
        scheduled = None
        if settings.gaps.every_hours > 0:
            from bot.gaps import schedule_mining

            scheduled = asyncio.create_task(schedule_mining(settings, db, runner.wake))
        log.info("worker %s waiting for jobs", runner.name)
        await stopping.wait()
        if purge is not None:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
        log.info("worker %s stopping", runner.name)
        if scheduled is not None:
            scheduled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduled
        await runner.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        if bus is not None:
            await bus.close()
        await db.dispose()


@cli.command()
@click.option("--name", default=None, help="Shown as the job's worker. Default: host:pid.")
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between looks for new jobs.",
)
@pass_ctx
def worker(ctx: CliContext, name: str | None, poll_s: float) -> None:
    """Run queued jobs (imports, training, index builds) from the database until stopped."""
    settings = ctx.settings
    click.echo(f"deskbot worker on {settings.masked()['sqlalchemy_url']}", err=True)
    run_async(run_worker(settings, name=name, poll_s=poll_s))
