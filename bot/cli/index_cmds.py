"""``deskbot index build|search|stats`` and ``deskbot eval retrieval``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from bot.cli.app import CliContext, cli, echo_json, eval_group, pass_ctx, run_async
from bot.errors import InputError, NotFoundError
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, register_model_version
from bot.storage.pairs import StoredPairs
from retrieval.data_files import read_csv_rows
from retrieval.embedder import Embedder
from retrieval.evaluate import evaluate
from retrieval.index import KnowledgeIndex
from retrieval.manifest import MANIFEST, read_manifest
from retrieval.pairs import read_pairs_csv
from retrieval.store import ACTIVE, IndexStore


def _embedder(settings: Settings) -> Embedder:
    return Embedder(settings.retrieval.embedder or None, precision=settings.retrieval.precision)


def _open_index(settings: Settings, where: Path | None, embedder: Embedder) -> KnowledgeIndex:
    """``where`` is an index root (with ACTIVE), one version directory, or None (settings)."""
    if where is not None and (where / MANIFEST).is_file():
        store = IndexStore(where.parent.parent, settings.retrieval)
        return store.load(where.name, embedder)
    root = where if where is not None else settings.indexes_dir
    if where is not None and not (root / ACTIVE).is_file():
        raise NotFoundError(f"{root} holds no active index and is not an index version")
    return IndexStore(root, settings.retrieval).load_active(embedder)


async def _pairs_from_db(url: str) -> list[Any]:
    db = Database(url)
    try:
        await db.upgrade()
        return await StoredPairs(db).active_pairs()
    finally:
        await db.dispose()


async def _register(url: str, version: str, path: Path, metrics: dict[str, Any]) -> None:
    db = Database(url)
    try:
        await db.upgrade()
        await register_model_version(db, "index", version, path, metrics)
        await activate_model_version(db, "index", version)
    finally:
        await db.dispose()


@cli.group("index")
def index_group() -> None:
    """Build, search and inspect the retrieval index."""


@index_group.command("build")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of question/answer pairs (.gz allowed). Default: the database's active pairs.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Index root directory. Default: <home>/indexes (registered in the database).",
)
@click.option("--question-col", default="instruction", show_default=True)
@click.option("--answer-col", default="response", show_default=True)
@click.option("--intent-col", default="intent", show_default=True, help="'' for none.")
@click.option("--version", help="Version name. Default: a timestamp.")
@click.option("--no-activate", is_flag=True, help="Build without switching to it.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_ctx
def index_build(
    ctx: CliContext,
    data: Path | None,
    out: Path | None,
    question_col: str,
    answer_col: str,
    intent_col: str,
    version: str | None,
    no_activate: bool,
    as_json: bool,
) -> None:
    """Embed the pairs and write a new index version, then activate it."""
    settings = ctx.settings
    if data is not None:
        pairs = read_pairs_csv(
            data, question_col=question_col, answer_col=answer_col, intent_col=intent_col or None
        )
    else:
        pairs = run_async(_pairs_from_db(settings.sqlalchemy_url))
        if not pairs:
            raise InputError(
                "there are no active knowledge pairs in the database; run `deskbot import` "
                "first or pass --data PAIRS.csv"
            )
    store = IndexStore(out or settings.indexes_dir, settings.retrieval)
    path = store.build(pairs, _embedder(settings), version=version)
    manifest = read_manifest(path)
    if not no_activate:
        store.activate(manifest.version)
        if out is None:
            metrics = {"count": manifest.count, "kind": manifest.kind, "model": manifest.model}
            run_async(_register(settings.sqlalchemy_url, manifest.version, path, metrics))
    if as_json:
        echo_json(manifest.to_dict() | {"path": str(path), "active": not no_activate})
        return
    state = "active" if not no_activate else "not activated"
    click.echo(
        f"built index {manifest.version}: {manifest.count} pairs, {manifest.kind}, "
        f"{manifest.build_seconds} s, at {path} ({state})"
    )


@index_group.command("search")
@click.argument("texts", nargs=-1, required=True)
@click.option("-k", "--k", "k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--intent", help="Predicted intent of the queries, to boost or filter by.")
@click.option("--index", "where", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def index_search(
    ctx: CliContext,
    texts: tuple[str, ...],
    k: int,
    intent: str | None,
    where: Path | None,
    as_json: bool,
) -> None:
    """Print the best pairs for each TEXT."""
    index = _open_index(ctx.settings, where, _embedder(ctx.settings))
    results = index.search(list(texts), k, [intent] * len(texts) if intent else None)
    if as_json:
        echo_json(
            [
                {"query": t, "hits": [_hit(h) for h in hits]}
                for t, hits in zip(texts, results, strict=True)
            ]
        )
        return
    for text, hits in zip(texts, results, strict=True):
        click.echo(f"> {text}")
        for rank, h in enumerate(hits, 1):
            click.echo(f"{rank:>3}. {h.score:.3f} #{h.pair_id} [{h.intent or '-'}] {h.question}")
            click.echo(f"       {h.answer[:160]}")


def _hit(h: Any) -> dict[str, Any]:
    return {
        "pair_id": h.pair_id,
        "score": round(h.score, 4),
        "intent": h.intent,
        "question": h.question,
        "answer": h.answer,
    }


@index_group.command("stats")
@click.option("--index", "where", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def index_stats(ctx: CliContext, where: Path | None) -> None:
    """Print the active index's figures and the versions on disk as JSON."""
    settings = ctx.settings
    root = where or settings.indexes_dir
    if (root / MANIFEST).is_file():
        root = root.parent.parent
    store = IndexStore(root, settings.retrieval)
    active = store.active_version()
    data: dict[str, Any] = {"root": str(root), "active": active}
    if active is not None:
        index = store.load(active, None)
        data["index"] = index.stats()
        data["index"]["intents"] = index.intents()
    data["versions"] = [m.to_dict() for m in store.versions()]
    echo_json(data)


@eval_group.command("retrieval")
@click.option("--index", "where", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--text-col", default="text", show_default=True)
@click.option("--label-col", default="intent", show_default=True)
@click.option(
    "--predicted-col",
    default=None,
    help="Column with each query's predicted intent, used to boost or filter.",
)
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(5, 100))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def eval_retrieval(
    ctx: CliContext,
    where: Path | None,
    data: Path,
    text_col: str,
    label_col: str,
    predicted_col: str | None,
    k: int,
    as_json: bool,
) -> None:
    """hit@1, hit@5, MRR and search latency on labelled queries (a hit: same intent)."""
    rows = read_csv_rows(
        data,
        {"text": text_col, "label": label_col, "predicted": predicted_col},
        required=("text", "label"),
    )
    index = _open_index(ctx.settings, where, _embedder(ctx.settings))
    started = time.perf_counter()
    report = evaluate(
        index,
        [r["text"] for r in rows],
        [r["label"] for r in rows],
        predicted=[r["predicted"] or None for r in rows] if predicted_col else None,
        k=k,
    )
    result = report.to_dict() | {"seconds": round(time.perf_counter() - started, 2)}
    if as_json:
        echo_json(result)
        return
    for key, value in result.items():
        click.echo(f"{key:>20}: {value}")
