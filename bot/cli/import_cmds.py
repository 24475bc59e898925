"""``deskbot import FILE``: load past conversations."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async
from bot.importer import ColumnMap, import_file
from bot.storage.db import Database


async def _import(url: str, path: Path, fmt: str | None, columns: ColumnMap) -> dict[str, object]:
    db = Database(url)
    try:
        await db.upgrade()
        summary = await import_file(db, path, fmt=fmt, columns=columns, progress=True)
        return summary.as_dict()
    finally:
        await db.dispose()


@cli.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension.")
@click.option("--question-col", default="instruction", show_default=True)
@click.option("--answer-col", default="response", show_default=True)
@click.option("--intent-col", default="intent", show_default=True, help="'' for none.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_ctx
def import_cmd(
    ctx: CliContext,
    file: Path,
    fmt: str | None,
    question_col: str,
    answer_col: str,
    intent_col: str,
    as_json: bool,
) -> None:
    """Import past conversations from a CSV of Q/A pairs or JSONL dialogues (.gz allowed).

    The whole file lands in one transaction; importing it again adds nothing.
    """
    columns = ColumnMap(question_col, answer_col, intent_col or None)
    result = run_async(_import(ctx.settings.sqlalchemy_url, file, fmt, columns))
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"imported {file}: {result['dialogues']} dialogues read, "
        f"{result['conversations_added']} conversations and {result['messages_added']} messages "
        f"added, {result['pairs_mined']} pairs mined ({result['pairs_added']} new), "
        f"{result['duplicates_skipped']} already imported, in {result['seconds']} s"
    )
