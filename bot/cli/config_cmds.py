"""``deskbot config show``."""

from __future__ import annotations

from bot.cli.app import CliContext, cli, echo_json, pass_ctx


@cli.group()
def config() -> None:
    """Inspect settings."""


@config.command("show")
@pass_ctx
def config_show(ctx: CliContext) -> None:
    """Print the effective settings as JSON, secrets masked."""
    echo_json(ctx.settings.masked())
