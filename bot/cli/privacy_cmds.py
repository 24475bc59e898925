"""``deskbot privacy export|erase|purge``: data-subject requests and the retention purge."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from bot import privacy
from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async
from bot.storage.db import Database


@cli.group("privacy")
def privacy_group() -> None:
    """Export or erase one person's data; purge what is past retention."""


def _subject_options(func: Any) -> Any:
    func = click.option(
        "--platform-user",
        default=None,
        metavar="CHANNEL:ID",
        help="A platform user, e.g. telegram:main:12345.",
    )(func)
    func = click.option("--email", default=None, help="Every conversation carrying this address.")(
        func
    )
    return click.option("--conversation", type=int, default=None, help="One conversation id.")(func)


def _subject(conversation: int | None, email: str | None, platform_user: str | None) -> Any:
    return privacy.parse_subject(
        conversation=conversation, email=email, platform_user=platform_user
    )


@privacy_group.command("export")
@_subject_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the JSON here (created readable by its owner only). Default: standard output.",
)
@pass_ctx
def privacy_export(
    ctx: CliContext,
    conversation: int | None,
    email: str | None,
    platform_user: str | None,
    out: str | None,
) -> None:
    """Write everything stored about one person as JSON (GDPR art. 15)."""
    subject = _subject(conversation, email, platform_user)

    async def go() -> dict[str, Any]:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            return await privacy.export_subject(db, subject)
        finally:
            await db.dispose()

    data = run_async(go())
    if out is None:
        echo_json(data)
        return
    path = Path(out)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    n = len(data["conversations"])
    click.echo(
        f"wrote {path}: {n} conversation(s), {len(data['knowledge_pairs'])} knowledge pair(s)",
        err=True,
    )


@privacy_group.command("erase")
@_subject_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def privacy_erase(
    ctx: CliContext,
    conversation: int | None,
    email: str | None,
    platform_user: str | None,
    yes: bool,
) -> None:
    """Delete everything stored about one person (GDPR art. 17) and print what was touched."""
    subject = _subject(conversation, email, platform_user)
    if not yes:
        click.confirm(f"Erase everything stored about {subject.as_json()}?", abort=True)
    settings = ctx.settings

    async def go() -> dict[str, Any]:
        db = Database(settings.sqlalchemy_url)
        try:
            await db.upgrade()
            report = await privacy.erase_subject(db, subject, settings)
            report.index_masked = await privacy.mask_stored_index(settings, db, report.pair_ids)
            if report.pair_ids and not settings.redis_url.get_secret_value():
                report.notes.append(
                    "a running server without Redis keeps returning the erased pairs until it "
                    "restarts; while serving, use POST /api/v1/admin/privacy/erase instead"
                )
            return report.as_json()
        finally:
            await db.dispose()

    echo_json(run_async(go()))


@privacy_group.command("purge")
@pass_ctx
def privacy_purge(ctx: CliContext) -> None:
    """Run the retention purge once now (privacy.retain_days); servers also run it on a timer."""

    async def go() -> dict[str, Any] | None:
        db = Database(ctx.settings.sqlalchemy_url)
        try:
            await db.upgrade()
            report = await privacy.purge_expired(db, ctx.settings)
            return None if report is None else report.as_json()
        finally:
            await db.dispose()

    result = run_async(go())
    if result is None:
        click.echo("retention is off (privacy.retain_days = 0); nothing purged", err=True)
        return
    echo_json(result)
