"""``deskbot eval conversations``: scripted conversations through the real reply path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot.cli.app import CliContext, echo_json, eval_group, pass_ctx, run_async


@eval_group.command("conversations")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Conversations JSONL.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Intent model DIR.")
@click.option("--split", help="Only conversations of this split (e.g. dev or test).")
@click.option("--single", is_flag=True, help="Send each question on its own instead.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--url", help="A running server instead (its rate limits must allow the load).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def eval_conversations_cmd(
    ctx: CliContext,
    data: Path,
    model_dir: Path | None,
    split: str | None,
    single: bool,
    concurrency: int,
    url: str | None,
    as_json: bool,
) -> None:
    """Per-turn-type pass rates and the share of conversations that pass whole.

    The conversations run through an in-process server on a scratch database that serves
    the deployment's active models (or --model), so nothing is added to the deployment.
    """
    from tqdm import tqdm

    from bot.app import create_app
    from bot.dialogue.evaluate import load_conversations, play

    convs = load_conversations(data)
    if split:
        convs = [c for c in convs if c.split == split]
        if not convs:
            raise click.BadParameter(f"no conversation of split {split!r}", param_hint="--split")
    settings = ctx.settings
    if model_dir is not None:
        intent = settings.intent.model_copy(update={"model": str(model_dir)})
        settings = settings.model_copy(update={"intent": intent})
    bar = tqdm(total=len(convs), disable=as_json, unit="conv", desc="conversations")
    result = run_async(
        play(
            settings,
            convs,
            concurrency=concurrency,
            single=single,
            progress=bar.update,
            url=url,
            create_app=create_app,
        )
    )
    bar.close()
    if as_json:
        echo_json(result)
        return
    click.echo(format_result(result))


def format_result(result: dict[str, Any]) -> str:
    lines = []
    if "single" in result:
        for split, r in result["single"].items():
            lines.append(
                f"[{split}] {r['questions']} questions: answered automatically "
                f"{_pct(r['answered_automatically'])}, right intent when answered "
                f"{_pct(r['right_intent_when_answered'])}; {r['out_of_domain']} out-of-domain "
                f"lines answered {_pct(r['out_of_domain_answered'])}"
            )
    for split, r in result.get("conversations", {}).items():
        lines.append(
            f"[{split}] {r['conversations']} conversations, passed whole: "
            f"{_pct(r['conversations_passed'])}"
        )
        for kind, rate in r["turn_pass_rate"].items():
            lines.append(f"    {kind:<18} {_pct(rate):>7}  ({r['turns'][kind]} turns)")
        t = r["targets"]
        ood = _pct(t["out_of_domain_answered_in_scope"])
        lines.append(f"    out-of-domain answered as if in scope: {ood}")
    lines.append(f"{result['seconds']} s")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
