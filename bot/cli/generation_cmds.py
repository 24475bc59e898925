"""``deskbot generate``, ``deskbot train generator`` and ``deskbot eval replies``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.app import CliContext, cli, echo_json, eval_group, pass_ctx, run_async, train
from bot.errors import InputError, ModelError
from bot.settings import Settings

log = logging.getLogger("deskbot.generation")


def _embedder(settings: Settings) -> Any:
    from bot.generation.embedding import load_embedder

    return load_embedder(settings.retrieval.embedder)


def _active_index(settings: Settings, embedder: Any) -> Any:
    from retrieval.store import IndexStore

    store = IndexStore(settings.indexes_dir, settings.retrieval)
    if store.active_version() is None:
        raise ModelError(
            f"no active retrieval index under {settings.indexes_dir}; "
            "build one with `deskbot index build` (or pass --index-data PAIRS.csv)"
        )
    return store.load_active(embedder)


def _parse_context(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    turns = []
    for item in items:
        role, sep, text = item.partition(":")
        if sep and role.strip().lower() in ("customer", "bot", "agent"):
            turns.append((role.strip().lower(), text.strip()))
        else:
            turns.append(("customer", item.strip()))
    return tuple(turns)


@cli.command("generate")
@click.argument("question")
@click.option(
    "--context",
    "context",
    multiple=True,
    help='An earlier turn, oldest first: "customer: ...", "bot: ..." or "agent: ..." '
    "(no prefix: customer). Repeatable.",
)
@click.option("--intent", help="The customer's intent, if known.")
@click.option("--model", "model_path", help="Generator directory or .gguf (default: settings).")
@click.option("--no-retrieval", is_flag=True, help="Do not search the index for sources.")
@click.option("--json", "as_json", is_flag=True, help="Print the draft as JSON.")
@pass_ctx
def generate_cmd(
    ctx: CliContext,
    question: str,
    context: tuple[str, ...],
    intent: str | None,
    model_path: str | None,
    no_retrieval: bool,
    as_json: bool,
) -> None:
    """Write a reply to QUESTION; print it, its sources and its grounding score."""
    from bot.generation import ReplyRequest, load_generator
    from retrieval.consensus import order_answers

    settings = ctx.settings
    embedder = _embedder(settings)
    hits: tuple[Any, ...] = ()
    if not no_retrieval:
        index = _active_index(settings, embedder)
        hits = order_answers(
            index.search([question], k=settings.retrieval.top_k)[0],
            settings.retrieval.answer_order,
        )
    request = ReplyRequest(
        message=question, history=_parse_context(context), hits=hits, intent=intent
    )
    generator = load_generator(settings, model_path, embedder=embedder)

    async def run() -> Any:
        try:
            stream = generator.stream(request)
            async for piece in stream:
                if not as_json:
                    click.echo(piece, nl=False)
            return await stream.draft
        finally:
            await generator.close()

    draft = run_async(run())
    if as_json:
        echo_json(_draft_dict(draft))
        return
    click.echo()
    by_id = {h.pair_id: h for h in hits}
    click.echo(
        f"\n[grounding {draft.grounding:.2f} {'ok' if draft.grounded else 'LOW'}; "
        f"{draft.tokens} tokens; {draft.model}]",
        err=True,
    )
    for pid in draft.sources:
        h = by_id.get(pid)
        if h is not None:
            click.echo(f"  source {pid} ({h.score:.2f}): {h.question}", err=True)
    if draft.missing_slots:
        click.echo(f"  missing: {', '.join(draft.missing_slots)}", err=True)
    if not draft.grounded and draft.fallback:
        click.echo(f"  fallback: {draft.fallback[:200]}", err=True)


def _draft_dict(draft: Any) -> dict[str, Any]:
    return {name: getattr(draft, name) for name in draft.__dataclass_fields__}


@train.command("generator")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV (or .csv.gz) of question,answer[,intent] pairs (Bitext columns work too).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Artifact directory.")
@click.option("--max-examples", type=click.IntRange(min=1), help="Training examples (CPU budget).")
@click.option("--time-budget", type=float, help="Stop training after this many seconds.")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--seed", type=int)
@click.option("--activate/--no-activate", default=None, help="Activate (default: if none is).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def train_generator_cmd(
    ctx: CliContext,
    data: Path,
    out: Path | None,
    max_examples: int | None,
    time_budget: float | None,
    epochs: int | None,
    seed: int | None,
    activate: bool | None,
    as_json: bool,
) -> None:
    """Fine-tune the reply generator with LoRA and register it as a `generator` version."""
    from dataclasses import replace

    from finetune.generator.data import read_pairs
    from finetune.generator.hparams import GeneratorHyperParams
    from finetune.generator.train import data_digest, new_version, train_generator

    settings = ctx.settings
    hp = GeneratorHyperParams()
    overrides: dict[str, Any] = {
        "max_examples": max_examples,
        "time_budget_s": time_budget,
        "epochs": epochs,
        "seed": seed,
    }
    hp = replace(hp, **{k: v for k, v in overrides.items() if v is not None})
    pairs = read_pairs(data)
    version = new_version(data_digest(pairs))
    out = out or settings.models_dir / "generator" / version
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out} exists and is not empty")
    with click.progressbar(length=1, label="training generator", file=sys.stderr) as bar:

        def progress(step: int, total: int, loss: float) -> None:
            bar.length = total
            bar.update(1)
            bar.label = f"training generator (loss {loss:.3f})"

        metrics = train_generator(
            pairs,
            out,
            hp=hp,
            embedder=_embedder(settings),
            cache_dir=settings.cache_dir,
            base_model=settings.generation.model,
            version=version,
            progress=progress,
        )
    activated = run_async(_register(settings, version, out, metrics, activate))
    result = {"version": version, "path": str(out), "activated": activated, **metrics}
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"generator {version} -> {out}\n"
            f"val loss {metrics['val_loss_base']} -> {metrics['val_loss']} on "
            f"{metrics['val_examples']} held-out questions; {metrics['examples']} examples in "
            f"{metrics['train_seconds']} s; {'activated' if activated else 'registered'}"
        )


async def _register(
    settings: Settings, version: str, path: Path, metrics: dict[str, Any], activate: bool | None
) -> bool:
    from bot.storage.db import Database
    from bot.storage.model_versions import (
        activate_model_version,
        active_model_version,
        register_model_version,
    )

    db = Database(settings.sqlalchemy_url)
    try:
        await db.upgrade()
        await register_model_version(db, "generator", version, path, metrics)
        if activate is None:
            activate = await active_model_version(db, "generator") is None
        if activate:
            await activate_model_version(db, "generator", version)
    finally:
        await db.dispose()
    return bool(activate)


@eval_group.command("replies")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV of question,answer[,intent] rows to answer and score.",
)
@click.option(
    "--index-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Build an in-memory index from these pairs instead of using the active index.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Score the first N rows only.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--model", "model_path", help="Generator directory or .gguf (default: settings).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def eval_replies_cmd(
    ctx: CliContext,
    data: Path,
    index_data: Path | None,
    limit: int | None,
    concurrency: int,
    model_path: str | None,
    as_json: bool,
) -> None:
    """Retrieve and generate a reply for each row; report grounding, leaks, ROUGE-L, speed."""
    from bot.generation import load_generator
    from bot.generation.evaluate import Case, evaluate_replies, verbatim_scores
    from finetune.generator.data import read_pairs
    from retrieval.consensus import order_answers

    settings = ctx.settings
    rows = read_pairs(data, limit=limit)
    cases = [Case(p.question, p.answer, p.intent) for p in rows]
    embedder = _embedder(settings)
    questions = [c.question for c in cases]
    if index_data is not None:
        from finetune.generator.retrieve import PairIndex

        found = PairIndex(read_pairs(index_data), embedder).search(
            questions, k=settings.retrieval.top_k
        )
    else:
        found = _active_index(settings, embedder).search(questions, k=settings.retrieval.top_k)
    hits = [order_answers(h, settings.retrieval.answer_order) for h in found]
    generator = load_generator(settings, model_path, embedder=embedder)

    async def run() -> Any:
        try:
            return await evaluate_replies(generator, cases, hits, concurrency=concurrency)
        finally:
            await generator.close()

    scores, _ = run_async(run())
    result = {
        **scores.to_dict(),
        "model": generator.version,
        "verbatim_rouge_l": verbatim_scores(cases, hits).rouge_l,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            click.echo(f"{key:24} {value}")
