"""The ``deskbot`` command line. ``app`` holds the groups; one module per area adds commands."""

from __future__ import annotations

from bot.cli import (  # noqa: F401 - each module registers its commands
    chat_cmds,
    config_cmds,
    connector_cmds,
    db_cmds,
    dialogue_cmds,
    gaps_cmds,
    generation_cmds,
    import_cmds,
    index_cmds,
    intent_cmds,
    learning_cmds,
    prepare_cmds,
    privacy_cmds,
    serve_cmds,
    worker_cmds,
)
from bot.cli.app import cli, main

__all__ = ["cli", "main"]
