"""``deskbot prepare``: make a fresh installation answer at once (what `make run` calls).

Each step runs only when its result is missing, so a second run takes seconds: migrations,
import of the bundled sample into an empty database, a first index, a first intent model. It
ends with a short conversation through the server's own reply path, then the pages to open.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
import click
from sqlalchemy import func
from sqlmodel import select

from bot.cli.app import CliContext, cli, pass_ctx, run_async
from bot.cli.chat_cmds import WidgetClient, local_server, reply_meta
from bot.errors import DeskbotError
from bot.importer import import_file
from bot.privacy import Subject, erase_subject
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version
from bot.storage.models import KnowledgePair

SAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE_FILES = ("sample_pairs.csv", "sample_dialogues.jsonl")
# Two questions the bundled sample answers; the second needs the order number, given next.
SAMPLE_CONVERSATION = (
    "What payment methods do you accept?",
    "I want to cancel my order",
    "ORD-5521",
)
SHOWN_CHARS = 280  # sample answers run to paragraphs; the terminal shows their start


class _State(TypedDict):
    imported: list[str]
    index: str | None  # the active version, None before the first
    intent: str | None


async def _state(url: str, samples: Path) -> _State:
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
    for line in state["imported"]:
        click.echo(f"prepare: imported {line}", err=True)
    if state["index"] is None:
        _run("building the retrieval index", "index", "build")
    if state["intent"] is None and not no_intent:
        _run("training a first intent model", "train", "intent", "--preset", "quick")
    generation = ctx.settings.generation
    cache = ctx.settings.cache_dir / "generator"
    if generation.backend == "local" and not generation.model and not cache.is_dir():
        # The server's first load converts the bundled GGUF into a cache, once.
        click.echo("prepare: converting the generator (once; later starts take seconds)", err=True)
    click.echo("prepare: loading the models and asking two sample questions", err=True)
    turns = run_async(_sample_conversation(ctx.settings, SAMPLE_CONVERSATION))
    click.echo("\nA first conversation, through the reply path the server runs (not kept):\n")
    for text, reply in turns:
        click.echo(_shown("you", text))
        click.echo(_shown("bot", _reply_text(reply)) + " " + reply_meta(reply))
    click.echo("")
    click.echo(_pages(ctx.settings))
    click.echo("prepare: ready", err=True)


async def _sample_conversation(
    settings: Settings, texts: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """Send ``texts`` through the widget API of an in-process server; the replies it gave.

    The conversation is erased afterwards, so it does not count in the metrics or wait in
    the agents' queue.
    """
    turns: list[tuple[str, dict[str, Any]]] = []
    conversation_id = None
    try:
        async with local_server(settings) as url, aiohttp.ClientSession() as http:
            client = WidgetClient(http, url)
            conversation_id = await client.start()
            for text in texts:
                status, body = await client.send(text)
                if status != 200:
                    message = body.get("error", {}).get("message", status)
                    raise DeskbotError(f"prepare: the sample question {text!r} failed: {message}")
                turns.append((text, body["reply"] or {}))
    finally:
        if conversation_id is not None:
            db = Database(settings.sqlalchemy_url)
            try:
                await erase_subject(db, Subject(conversation_id=conversation_id))
            finally:
                await db.dispose()
    return turns


def _reply_text(reply: dict[str, Any]) -> str:
    if reply.get("text"):
        labels = reply.get("quick_replies") or []
        return reply["text"] + "".join(f" ({n}) {label}" for n, label in enumerate(labels, 1))
    if reply.get("status") == "pending_review":
        return "(a suggested reply is waiting for an agent's review)"
    return "(no reply)"


def _shown(who: str, text: str) -> str:
    """``who: text`` on lines of 88 characters, the text cut at a word after SHOWN_CHARS."""
    text = " ".join(text.split())
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS].rsplit(" ", 1)[0] + " …"
    return textwrap.fill(
        text, width=88, initial_indent=f"  {who}: ", subsequent_indent=" " * (len(who) + 4)
    )


def _pages(settings: Settings) -> str:
    host = settings.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    base = f"http://{'[' + host + ']' if ':' in host else host}:{settings.server.port}"
    return "\n".join(
        (
            "Once `deskbot serve` runs (`make run` starts it now), open:",
            f"  {base}/        the chat widget on a demo page",
            f"  {base}/agent   the agent console",
            f"  {base}/admin   the admin page",
            "The console and the admin page ask for a key: "
            "deskbot apikey create --role admin --name you",
        )
    )
