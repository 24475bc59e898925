"""``deskbot train intent`` and ``deskbot eval intent``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from sqlmodel import col, select

from bot.cli.app import CliContext, echo_json, eval_group, pass_ctx, run_async, train
from bot.errors import InputError, ModelError
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import (
    activate_model_version,
    active_model_version,
    register_model_version,
)
from bot.storage.models import Message, Role
from finetune.intent.data import Examples, as_examples
from finetune.intent.hparams import IntentHyperParams

log = logging.getLogger("deskbot.intent")

# Figures copied from metrics.json into the model registry row.
SUMMARY_KEYS = ("training_seconds", "train_examples", "dev_examples", "intents", "data_sha256")


async def labelled_messages(db: Database) -> Examples:
    """Customer messages with an intent label; an agent's correction wins over the model's.

    Messages the model called out of scope and nobody corrected are left out: their stored
    intent is only the model's best guess.
    """
    async with db.session() as s:
        rows = (
            await s.exec(
                select(Message.text, Message.intent, Message.corrected_intent, Message.verdict)
                .where(Message.role == Role.CUSTOMER)
                .where(
                    col(Message.intent).is_not(None) | col(Message.corrected_intent).is_not(None)
                )
                .order_by(col(Message.id))
            )
        ).all()
    pairs = []
    for text, intent, corrected, verdict in rows:
        if corrected:
            pairs.append((text, corrected))
        elif intent and verdict != "out_of_scope":
            pairs.append((text, intent))
    if not pairs:
        raise InputError(
            "the database holds no labelled customer messages; pass --data TRAIN.csv "
            "or import conversations with an intent column first"
        )
    return Examples.from_pairs(pairs)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: metrics[k] for k in SUMMARY_KEYS if k in metrics}
    for split in ("dev", "test"):
        if split in metrics:
            out[split] = {k: v for k, v in metrics[split].items() if k != "per_intent"}
    return out


async def register_intent_model(
    settings: Settings, path: Path, *, activate: bool | None = None
) -> tuple[str, bool]:
    """Register the artifact at ``path`` as an ``intent`` version; activate it when asked or,
    with ``activate=None``, when no intent model is active yet. Returns (version, activated)."""
    from finetune.intent.artifact import read_config, read_metrics

    config = read_config(path)
    db = Database(settings.sqlalchemy_url)
    try:
        await db.upgrade()
        await register_model_version(
            db, "intent", config.version, path, _summary(read_metrics(path))
        )
        if activate is None:
            activate = await active_model_version(db, "intent") is None
        if activate:
            await activate_model_version(db, "intent", config.version)
    finally:
        await db.dispose()
    return config.version, activate


def train_and_register(
    settings: Settings,
    data: Examples | Path | None,
    hp: IntentHyperParams,
    *,
    dev: Path | None = None,
    test: Path | None = None,
    text_col: str = "text",
    label_col: str = "intent",
    out: Path | None = None,
    activate: bool | None = None,
    progress: bool = True,
) -> tuple[Path, str, bool]:
    """Train an intent model (from ``data`` or the database's labelled messages), register it.

    This is what ``deskbot train intent`` runs; ``deskbot prepare`` can call it too.
    """
    from finetune.intent.train import new_version, train_intent

    if data is None:
        db = Database(settings.sqlalchemy_url)

        async def _load() -> Examples:
            try:
                await db.upgrade()
                return await labelled_messages(db)
            finally:
                await db.dispose()

        examples = run_async(_load())
    else:
        examples = as_examples(data, text_col, label_col)
    version = new_version(examples.digest())
    out = out or settings.models_dir / "intent" / version
    path = train_intent(
        examples,
        hp,
        out,
        progress,
        dev=dev,
        test=test,
        text_col=text_col,
        label_col=label_col,
        oos_label=settings.intent.oos_label,
        base_encoder=settings.intent.base_encoder or None,
        version=version,
    )
    version, activated = run_async(register_intent_model(settings, path, activate=activate))
    return path, version, activated


@train.command("intent")
@click.option(
    "--data", type=click.Path(path_type=Path), help="Training CSV; default: the database."
)
@click.option(
    "--dev", type=click.Path(path_type=Path), help="Dev CSV; default: held out from --data."
)
@click.option("--test", type=click.Path(path_type=Path), help="Test CSV, reported in metrics.json.")
@click.option("--text-col", default="text", show_default=True)
@click.option("--label-col", default="intent", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Artifact directory.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the number of epochs.")
@click.option("--seed", type=int, help="Override the random seed.")
@click.option(
    "--preset",
    type=click.Choice(["default", "quick", "few-shot"]),
    default="default",
    show_default=True,
    help="quick: a few hundred examples in about a minute; few-shot: ~10 per intent.",
)
@click.option(
    "--activate/--no-activate",
    default=None,
    help="Make it the active intent model (default: only if none is active).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def train_intent_cmd(
    ctx: CliContext,
    data: Path | None,
    dev: Path | None,
    test: Path | None,
    text_col: str,
    label_col: str,
    out: Path | None,
    epochs: int | None,
    seed: int | None,
    preset: str,
    activate: bool | None,
    as_json: bool,
) -> None:
    """Fine-tune the intent classifier (LoRA), calibrate it and register it as a version."""
    hp = {
        "default": IntentHyperParams,
        "quick": IntentHyperParams.quick,
        "few-shot": IntentHyperParams.few_shot,
    }[preset]()
    if epochs is not None:
        hp = hp.with_(epochs=epochs)
    if seed is not None:
        hp = hp.with_(seed=seed)
    path, version, activated = train_and_register(
        ctx.settings,
        data,
        hp,
        dev=dev,
        test=test,
        text_col=text_col,
        label_col=label_col,
        out=out,
        activate=activate,
    )
    from finetune.intent.artifact import read_metrics

    metrics = read_metrics(path)
    if as_json:
        echo_json({"path": str(path), "version": version, "active": activated, **_summary(metrics)})
        return
    dev_m = metrics.get("dev", {})
    click.echo(
        f"intent model {version} saved to {path} ({metrics.get('training_seconds')} s); "
        f"dev accuracy {dev_m.get('accuracy', float('nan')):.4f}, "
        f"{'active' if activated else 'registered, not active'}"
    )
    if "test" in metrics:
        click.echo(f"test accuracy {metrics['test']['accuracy']:.4f}")


async def _active_path(settings: Settings) -> Path:
    db = Database(settings.sqlalchemy_url)
    try:
        await db.upgrade()
        row = await active_model_version(db, "intent")
    finally:
        await db.dispose()
    if row is None:
        raise ModelError(
            "no intent model is active; pass --model DIR or run `deskbot train intent`"
        )
    return Path(row.path)


@eval_group.command("intent")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Default: active one.")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Labelled CSV.")
@click.option("--text-col", default="text", show_default=True)
@click.option("--label-col", default="intent", show_default=True)
@click.option("--oos-label", help="Out-of-scope label in the data (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def eval_intent_cmd(
    ctx: CliContext,
    model_dir: Path | None,
    data: Path,
    text_col: str,
    label_col: str,
    oos_label: str | None,
    as_json: bool,
) -> None:
    """Accuracy, macro-F1, out-of-scope figures, calibration error and latency on a CSV.

    Without --json, also writes a confusion-matrix PNG and an errors CSV to DIR/reports/.
    """
    from finetune.intent.classifier import IntentClassifier
    from finetune.intent.data import read_csv
    from finetune.intent.evaluate import (
        evaluate_report,
        format_report,
        write_confusion_png,
        write_errors_csv,
    )

    path = model_dir or Path(ctx.settings.intent.model or run_async(_active_path(ctx.settings)))
    examples = read_csv(data, text_col, label_col)
    classifier = IntentClassifier.load(path, precision=ctx.settings.intent.precision)
    report = evaluate_report(
        classifier, examples.texts, examples.labels, oos_label or classifier.oos_label
    )
    if as_json:
        echo_json(
            {
                "model": str(path),
                "version": classifier.version,
                "precision": classifier.precision,
                # The frozen-head mix (finetune/intent/frozen_head.py): weight 1.0 is none.
                "frozen_weight": classifier.config.frozen_weight
                if classifier.frozen_encoder
                else 1.0,
                **report.metrics,
            }
        )
        return
    reports = path / "reports"
    reports.mkdir(exist_ok=True)
    stem = Path(data.name.removesuffix(".gz")).stem
    png = write_confusion_png(report, reports / f"{stem}_confusion.png")
    errors = write_errors_csv(report, reports / f"{stem}_errors.csv")
    click.echo(f"intent model {classifier.version} on {data}")
    click.echo(format_report(report.metrics))
    click.echo(f"confusion matrix: {png}\nerrors: {errors}")
