"""``deskbot db upgrade``: apply schema migrations."""

from __future__ import annotations

import click

from bot.cli.app import CliContext, cli, pass_ctx, run_async
from bot.settings import mask_url
from bot.storage.db import upgrade


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(ctx: CliContext, revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    url = ctx.settings.sqlalchemy_url
    run_async(upgrade(url, revision))
    click.echo(f"database {mask_url(url)} is at {revision}")
