"""``deskbot export training-data`` and ``deskbot retrain``: learning from the logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async


@cli.group("export")
def export_group() -> None:
    """Export data from the logs."""


@export_group.command("training-data")
@click.option("--since", required=True, help="Only messages from this date on (YYYY-MM-DD).")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Directory; default <home>/exports/export-TIME."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_ctx
def export_training_data(ctx: CliContext, since: str, out: Path | None, as_json: bool) -> None:
    """Intent examples and reply pairs from live conversations, personal data scrubbed."""
    from bot.export import collect_training_data, default_export_dir, parse_since, write_export
    from bot.scrub import Scrubber
    from bot.storage.db import Database

    settings = ctx.settings
    moment = parse_since(since)
    scrubber = Scrubber.from_settings(settings.learning)

    async def collect() -> Any:
        db = Database(settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return await collect_training_data(
                db, moment, scrubber, context_turns=settings.learning.context_turns
            )
        finally:
            await db.dispose()

    export = run_async(collect())
    where = write_export(export, out or default_export_dir(settings.home))
    summary = {"path": str(where.absolute()), **export.summary()}
    if as_json:
        echo_json(summary)
        return
    scrubbed = ", ".join(f"{n} {k}" for k, n in summary["scrubbed"].items()) or "nothing"
    click.echo(
        f"exported {summary['intent_examples']} intent examples and {summary['reply_pairs']} "
        f"reply pairs to {where} ({summary['duplicates_dropped']} duplicates dropped; "
        f"scrubbed: {scrubbed})"
    )


@cli.command("retrain")
@click.option("--intent", is_flag=True, help="Retrain and gate the intent model.")
@click.option("--generator", is_flag=True, help="Retrain the generator (not wired yet).")
@click.option("--index", is_flag=True, help="Add agents' answers and rebuild the index.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@pass_ctx
def retrain_cmd(ctx: CliContext, intent: bool, generator: bool, index: bool, as_json: bool) -> None:
    """Learn from the logs: merge them with the base data, train candidates, promote only
    those that beat the active version on the held-out set (no flag: --intent --index)."""
    from bot.retrain import run_retrain

    if not (intent or generator or index):
        intent = index = True
    result = run_async(run_retrain(ctx.settings, intent=intent, index=index, generator=generator))
    if as_json:
        echo_json(result)
        return
    for part in ("index", "intent"):
        report = result.get(part)
        if report is None:
            continue
        click.echo(f"{part} {report.get('version') or ''}: {report['decision']}")
        for reason in report.get("reasons", []):
            click.echo(f"  {reason}")
