"""``deskbot gaps mine`` and ``deskbot eval discovery``: knowledge gaps and how well topics
are found."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from bot.cli.app import CliContext, cli, echo_json, eval_group, pass_ctx, run_async


@cli.group("gaps")
def gaps_group() -> None:
    """Knowledge gaps: what customers ask that the bot cannot answer."""


@gaps_group.command("mine")
@click.option(
    "--since",
    default=None,
    help="Mine from this date on (YYYY-MM-DD); default: the last gaps.period_days days.",
)
@click.option("--until", default=None, help="Mine up to this date (default: now).")
@click.option("--dry-run", is_flag=True, help="Print the topics without storing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and topics as JSON.")
@pass_ctx
def mine_cmd(
    ctx: CliContext, since: str | None, until: str | None, dry_run: bool, as_json: bool
) -> None:
    """Cluster the messages the bot did not answer well into topics for the admin page
    (the open topics are replaced; accepted, merged and dismissed ones are kept)."""
    from bot.export import parse_since
    from bot.gaps import mine, store_topics, trend
    from bot.storage.db import Database
    from retrieval.embedder import Embedder

    settings = ctx.settings
    start = parse_since(since) if since else None
    end = parse_since(until) if until else None

    async def go() -> Any:
        db = Database(settings.sqlalchemy_url)
        try:
            await db.upgrade()
            embedder = Embedder(
                settings.retrieval.embedder or None, precision=settings.retrieval.precision
            )
            started = time.perf_counter()
            result = await mine(settings, db, embedder, since=start, until=end)
            seconds = time.perf_counter() - started
            ids = [] if dry_run else [t.id for t in await store_topics(db, result)]
            return result, seconds, ids
        finally:
            await db.dispose()

    result, seconds, ids = run_async(go())
    topics = [
        {
            "id": ids[i] if ids else None,
            "name": t.name,
            "size": t.size,
            "previous": t.previous,
            "trend": trend(t.size, t.previous),
            "novelty": t.novelty,
            "nearest_intent": t.nearest_intent,
            "similarity": t.similarity,
            "examples": t.examples,
            "answers": len(t.answers),
            "reasons": t.reasons,
        }
        for i, t in enumerate(result.topics)
    ]
    summary = {**result.summary(), "seconds": round(seconds, 2), "stored": not dry_run}
    if as_json:
        echo_json({**summary, "topics_found": topics})
        return
    click.echo(
        f"{summary['messages']} messages not answered well from {result.start:%Y-%m-%d} to "
        f"{result.end:%Y-%m-%d}: {len(topics)} topics, {result.unclustered} unclustered "
        f"({seconds:.1f} s{'' if dry_run else ', stored'})"
    )
    for t in topics:
        near = f"{t['nearest_intent']} {t['similarity']:.2f}" if t["nearest_intent"] else "-"
        click.echo(f"  {t['size']:5d}  {t['novelty']:8s}  {t['name'][:40]:40s}  nearest: {near}")


@eval_group.command("discovery")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV of labelled utterances.",
)
@click.option("--text-col", default="text", show_default=True)
@click.option("--label-col", default="intent", show_default=True)
@click.option(
    "--method",
    type=click.Choice(["deskbot", "baseline"]),
    default="deskbot",
    show_default=True,
    help="deskbot: spectral, k from the graph spectrum; baseline: DSTC11 k-means, silhouette.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def eval_discovery(
    ctx: CliContext, data: Path, text_col: str, label_col: str, method: str, as_json: bool
) -> None:
    """Cluster labelled utterances as the miner would and score the topics against the labels
    (ACC, NMI, ARI, cluster precision/recall/F1 as in DSTC11)."""
    from finetune.intent.data import read_csv
    from retrieval.discovery import discover, kmeans_silhouette, score
    from retrieval.embedder import Embedder

    settings = ctx.settings
    examples = read_csv(data, text_col, label_col)
    if len(examples) < 4:
        raise click.BadParameter(f"{data}: at least 4 utterances are needed", param_hint="--data")
    embedder = Embedder(settings.retrieval.embedder or None, precision=settings.retrieval.precision)
    started = time.perf_counter()
    vectors = embedder.encode(list(examples.texts))
    encoded = time.perf_counter()
    clustering = (
        discover(vectors, texts=list(examples.texts))
        if method == "deskbot"
        else kmeans_silhouette(vectors)
    )
    done = time.perf_counter()
    figures = score(list(examples.labels), clustering.labels.tolist())
    report = {
        "data": str(data),
        "method": clustering.method,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        "count_error": round(figures["topics"] / figures["gold_topics"] - 1, 4),
        "seconds": round(done - encoded, 2),
        "encode_seconds": round(encoded - started, 2),
        "details": {k: v for k, v in clustering.details.items() if k != "scores"},
    }
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"{clustering.method} on {report['n']} utterances: ACC {report['acc']:.3f}  "
        f"NMI {report['nmi']:.3f}  ARI {report['ari']:.3f}  P {report['precision']:.3f}  "
        f"R {report['recall']:.3f}  F1 {report['f1']:.3f}  topics {report['topics']} "
        f"(gold {report['gold_topics']})  {report['seconds']:.1f} s "
        f"(+{report['encode_seconds']:.1f} s encoding)"
    )
