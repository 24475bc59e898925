"""``deskbot prepare``: make a fresh installation answer at once (what `make run` calls).

Each step runs only when its result is missing, so a second run takes seconds: migrations,
import of the bundled sample into an empty database, a first index, a first intent model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from sqlalchemy import func
from sqlmodel import select

from bot.cli.app import CliContext, cli, pass_ctx, run_async
from bot.errors import DeskbotError
from bot.importer import import_file
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version
from bot.storage.models import KnowledgePair

SAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE_FILES = ("sample_pairs.csv", "sample_dialogues.jsonl")


async def _state(url: str, samples: Path) -> dict[str, object]:
    db = Database(url)
    try:
        await db.upgrade()
        async with db.session() as s:
            pairs = (await s.exec(select(func.count()).select_from(KnowledgePair))).one()
        imported = []
        if pairs == 0:
            for name in SAMPLE_FILES:
                if (samples / name).is_file():
                    summary = await import_file(db, samples / name)
                    imported.append(f"{name}: {summary.pairs_added} pairs")
        index = await active_model_version(db, "index")
        intent = await active_model_version(db, "intent")
        return {
            "imported": imported,
            "index": index.version if index else None,
            "intent": intent.version if intent else None,
        }
    finally:
        await db.dispose()


def _run(step: str, *args: str) -> None:
    click.echo(f"prepare: {step}", err=True)
    done = subprocess.run([sys.executable, "-m", "bot", *args], check=False)
    if done.returncode != 0:
        raise DeskbotError(f"prepare: {step} failed (deskbot {' '.join(args)})")


@cli.command()
@click.option(
    "--samples",
    type=click.Path(file_okay=False, path_type=Path),
    default=SAMPLES,
    show_default=True,
    help="Folder with the sample files imported into an empty database.",
)
@click.option("--no-intent", is_flag=True, help="Skip training the first intent model.")
@pass_ctx
def prepare(ctx: CliContext, samples: Path, no_intent: bool) -> None:
    """Apply migrations and create what a first start needs, skipping what exists."""
    state = run_async(_state(ctx.settings.sqlalchemy_url, samples))
    for line in state["imported"]:  # type: ignore[attr-defined]
        click.echo(f"prepare: imported {line}", err=True)
    if state["index"] is None:
        _run("building the retrieval index", "index", "build")
    if state["intent"] is None and not no_intent:
        _run("training a first intent model", "train", "intent", "--preset", "quick")
    generation = ctx.settings.generation
    cache = ctx.settings.cache_dir / "generator"
    if generation.backend == "local" and not generation.model and not cache.is_dir():
        # Converts the bundled GGUF to a cached safetensors tokenizer/model once, so the
        # server starts in seconds; one short reply checks the whole generation path.
        _run("preparing the generator", "generate", "hello", "--no-retrieval")
    click.echo("prepare: ready", err=True)
