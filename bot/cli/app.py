"""The ``deskbot`` command group and the helpers every sub-command shares.

Each area adds its commands in its own module (``bot/cli/<area>.py``) by decorating the groups
defined here: ``@train.command("intent")``, ``@eval_group.command("retrieval")``...
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from bot.errors import DeskbotError
from bot.scrub import scrub_log_handlers
from bot.settings import Settings, load_settings

T = TypeVar("T")


class CliContext:
    """What a command gets through ``click.pass_obj``: the settings, loaded once."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings


pass_ctx = click.make_pass_decorator(CliContext)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="DESKBOT_CONFIG",
    help="TOML settings file (also DESKBOT_CONFIG).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: bool) -> None:
    """deskbot: a self-hosted customer-service bot."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "filelock", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scrub_log_handlers()  # customer text in a log line is scrubbed like any shared text
    ctx.obj = CliContext(config_file)


@cli.group()
def train() -> None:
    """Train a model (intent, generator)."""


@cli.group("eval")
def eval_group() -> None:
    """Evaluate a model or index and print figures."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: DeskbotError becomes a one-line message and exit status 2."""
    try:
        cli.main(args=argv, prog_name="deskbot", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DeskbotError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


Command = Callable[..., Any]
