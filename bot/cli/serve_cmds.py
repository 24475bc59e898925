"""``deskbot serve``, ``deskbot apikey create/list/revoke`` and ``deskbot models``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from aiohttp import web

from bot import model_sync
from bot.auth import api_key_json, create_api_key, list_api_keys, revoke_api_key
from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async
from bot.serialize import model_json
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import KINDS, list_model_versions
from bot.storage.models import utcnow

log = logging.getLogger("deskbot.server")


@cli.command()
@click.option("--host", default=None, help="Default: server.host (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: server.port (8080).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT); more than 1 needs PostgreSQL and Redis.",
)
@pass_ctx
def serve(ctx: CliContext, host: str | None, port: int | None, workers: int) -> None:
    """Serve the bot, the widget, the agent console and the admin dashboard."""
    settings = ctx.settings
    host = host or settings.server.host
    port = port or settings.server.port
    if workers > 1:
        if settings.sqlalchemy_url.startswith("sqlite"):
            raise click.UsageError("--workers above 1 needs PostgreSQL (DESKBOT_DATABASE_URL)")
        if not settings.redis_url.get_secret_value():
            log.warning("--workers without DESKBOT_REDIS_URL: live events stay in one process")
        click.echo(f"deskbot serving on http://{host}:{port} with {workers} processes", err=True)
        raise SystemExit(fork_servers(workers, lambda: _run(settings, host, port, True)))
    click.echo(f"deskbot serving on http://{host}:{port}", err=True)
    _run(settings, host, port, False)


def _run(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    from bot.app import create_app

    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        shutdown_timeout=settings.server.shutdown_timeout_s,
        access_log=None,
        print=None,
        reuse_port=reuse_port or None,
    )


def fork_servers(n: int, serve_one: Callable[[], None]) -> int:
    """Fork ``n`` children that each run ``serve_one``; pass SIGTERM/SIGINT on; wait for all.

    Returns the worst exit status. A child that dies is not restarted: run under a supervisor
    (systemd, Kubernetes) that restarts the whole unit.
    """
    children: list[int] = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:  # the child: its own event loop, database pool and models
            code = 0
            try:
                serve_one()
            except BaseException:
                log.exception("server process failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    running = set(children)
    while running:
        child, status = os.wait()
        running.discard(child)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.error("server process %d exited with %d", child, code)
            for other in running:  # one gone: stop the rest, so the supervisor restarts all
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGTERM)
        worst = max(worst, abs(code))
    return worst


@cli.group()
def apikey() -> None:
    """Agent and admin API keys."""


@apikey.command("create")
@click.option("--role", type=click.Choice(["agent", "admin"]), required=True)
@click.option("--name", required=True, help="Who uses the key (shown in reviews).")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1, max=3650),
    default=None,
    help="Refuse the key this many days from now. Default: no expiry.",
)
@pass_ctx
def apikey_create(ctx: CliContext, role: str, name: str, expires_days: int | None) -> None:
    """Create a key and print it once; only its hash is stored."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None

    async def go() -> str:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return await create_api_key(db, name, role, expires_at=expires_at)
        finally:
            await db.dispose()

    click.echo(run_async(go()))


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def apikey_list(ctx: CliContext, as_json: bool) -> None:
    """Every key with its status (active, expired, revoked); never the key itself."""

    async def go() -> list[dict[str, Any]]:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return [api_key_json(k) for k in await list_api_keys(db)]
        finally:
            await db.dispose()

    rows = run_async(go())
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'id':>4}  {'prefix':<8}  {'role':<5}  {'status':<7}  {'expires':<10}  name")
    for k in rows:
        expires = (k["expires_at"] or "-")[:10]
        click.echo(
            f"{k['id']:>4}  {k['prefix']:<8}  {k['role']:<5}  {k['status']:<7}  {expires:<10}  "
            f"{k['name']}"
        )


@apikey.command("revoke")
@click.argument("key_ref", metavar="ID_OR_PREFIX")
@pass_ctx
def apikey_revoke(ctx: CliContext, key_ref: str) -> None:
    """Revoke a key (by the id or prefix `apikey list` shows); refused at once everywhere."""

    async def go() -> dict[str, Any]:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return api_key_json(await revoke_api_key(db, key_ref))
        finally:
            await db.dispose()

    row = run_async(go())
    click.echo(f"revoked key {row['id']} ({row['prefix']}, {row['role']} {row['name']!r})")


@cli.group()
def models() -> None:
    """Model versions: list, activate, roll back."""


@models.command("list")
@click.option("--kind", type=click.Choice(KINDS), default=None)
@pass_ctx
def models_list(ctx: CliContext, kind: str | None) -> None:
    async def go() -> list[dict[str, object]]:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            return [model_json(m) for m in await list_model_versions(db, kind)]
        finally:
            await db.dispose()

    echo_json(run_async(go()))


@models.command("activate")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("version")
@pass_ctx
def models_activate(ctx: CliContext, kind: str, version: str) -> None:
    """Make VERSION the active KIND model (running servers pick it up on their next poll)."""

    async def go() -> dict[str, object]:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            return model_json(await model_sync.activate(db, None, kind, version))
        finally:
            await db.dispose()

    echo_json(run_async(go()))
