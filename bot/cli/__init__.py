"""The ``deskbot`` command line. ``app`` holds the groups; one module per area adds commands."""

from __future__ import annotations

from bot.cli import config_cmds, connector_cmds, db_cmds, import_cmds, index_cmds  # noqa: F401 - they register commands
from bot.cli.app import cli, main

__all__ = ["cli", "main"]
