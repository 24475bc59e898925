"""``deskbot telegram set-webhook`` and ``deskbot channels``: chat-platform set-up."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import click

from bot.cli.app import CliContext, cli, echo_json, pass_ctx, run_async
from bot.errors import InputError, NotFoundError


@cli.command("channels")
@pass_ctx
def channels_list(ctx: CliContext) -> None:
    """List configured chat channels and their webhook paths."""
    rows = [
        {
            "channel": name,
            "connector": ch.connector,
            "enabled": ch.enabled,
            "webhook": f"/webhooks/{ch.connector}/{name}",
        }
        for name, ch in ctx.settings.connectors.channels.items()
    ]
    echo_json(rows)


@cli.group()
def telegram() -> None:
    """Telegram Bot API set-up."""


def webhook_url(url: str, channel: str) -> str:
    """The full webhook URL; a bare origin gets ``/webhooks/telegram/<channel>`` appended."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise InputError(f"--url must be an https URL (Telegram requires it), got {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path=f"/webhooks/telegram/{channel}")
    return urlunsplit(parts)


@telegram.command("set-webhook")
@click.option("--channel", required=True, help="Channel name in [connectors.channels].")
@click.option(
    "--url",
    "url",
    required=True,
    help="Public https URL: the full webhook URL or just the server's origin.",
)
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram has queued.")
@pass_ctx
def telegram_set_webhook(ctx: CliContext, channel: str, url: str, drop_pending: bool) -> None:
    """Register the channel's webhook and secret token with Telegram (setWebhook)."""
    from connectors.connector_set import ConnectorSet
    from connectors.telegram import TelegramConnector, set_webhook

    found = ctx.settings.connectors.channels.get(channel)
    if found is None or found.connector != "telegram":
        raise NotFoundError(f"no telegram channel {channel!r} in settings connectors.channels")
    full_url = webhook_url(url, channel)
    connectors = ConnectorSet.from_configs({channel: ("telegram", found.config)})
    connector = connectors.get("telegram", channel)
    assert isinstance(connector, TelegramConnector)

    async def go() -> dict[str, object]:
        try:
            return await set_webhook(connector, full_url, drop_pending_updates=drop_pending)
        finally:
            await connectors.close()

    answer = run_async(go())
    click.echo(
        f"telegram webhook for {channel!r} set to {full_url}: {answer.get('description', 'ok')}"
    )
