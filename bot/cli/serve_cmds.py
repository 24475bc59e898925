"""``deskbot serve``, ``deskbot apikey create`` and ``deskbot models``."""

from __future__ import annotations

import logging

import click
from aiohttp import web

from bot.auth import create_api_key
from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async
from bot.serialize import model_json
from bot.storage.db import Database
from bot.storage.registry import KINDS, activate_model_version, list_model_versions

log = logging.getLogger("deskbot.server")


@cli.command()
@click.option("--host", default=None, help="Default: server.host (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: server.port (8080).")
@pass_ctx
def serve(ctx: CliContext, host: str | None, port: int | None) -> None:
    """Serve the bot, the widget, the agent console and the admin dashboard."""
    from bot.app import create_app

    settings = ctx.settings
    app = create_app(settings)
    host = host or settings.server.host
    port = port or settings.server.port
    click.echo(f"deskbot serving on http://{host}:{port}", err=True)
    web.run_app(
        app,
        host=host,
        port=port,
        shutdown_timeout=settings.server.shutdown_timeout_s,
        access_log=None,
        print=None,
    )


@cli.group()
def apikey() -> None:
    """Agent and admin API keys."""


@apikey.command("create")
@click.option("--role", type=click.Choice(["agent", "admin"]), required=True)
@click.option("--name", required=True, help="Who uses the key (shown in reviews).")
@pass_ctx
def apikey_create(ctx: CliContext, role: str, name: str) -> None:
    """Create a key and print it once; only its hash is stored."""

    async def go() -> str:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return await create_api_key(db, name, role)
        finally:
            await db.dispose()

    click.echo(run_async(go()))


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
            return model_json(await activate_model_version(db, kind, version))
        finally:
            await db.dispose()

    echo_json(run_async(go()))
