"""``deskbot chat``: talk to the bot in the terminal, through the same API the widget uses."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import click
from aiohttp import web

from bot.cli.app import CliContext, cli, pass_ctx, run_async
from bot.errors import DeskbotError
from bot.settings import Settings


@contextlib.asynccontextmanager
async def local_server(settings: Settings) -> AsyncIterator[str]:
    """The server ``deskbot serve`` runs, in this process on a free local port, without jobs.

    Yields its base URL; stops it (and closes its models) on the way out.
    """
    from bot.app import create_app

    runner = web.AppRunner(create_app(settings, run_jobs=False), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class WidgetClient:
    """One conversation through the widget API: what the widget and ``deskbot chat`` send."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.conversation_id: int | None = None
        self._auth: dict[str, str] = {}

    async def start(self) -> int:
        async with self.http.post(f"{self.url}/api/v1/conversations", json={}) as r:
            conv = await r.json()
        if r.status >= 300:
            raise DeskbotError(f"opening a conversation failed: {conv['error']['message']}")
        self.conversation_id = int(conv["id"])
        self._auth = {"Authorization": f"Bearer {conv['token']}"}
        return self.conversation_id

    async def send(self, text: str) -> tuple[int, dict[str, Any]]:
        """Send a customer message; the HTTP status and the JSON body (``reply``, or ``error``)."""
        async with self.http.post(
            f"{self.url}/api/v1/conversations/{self.conversation_id}/messages",
            json={"text": text},
            headers=self._auth,
        ) as r:
            return r.status, await r.json()


def reply_meta(reply: dict[str, Any]) -> str:
    """``[status, action, intent]`` of a reply, as the terminal shows it."""
    shown = [reply.get("status"), reply.get("action"), reply.get("intent")]
    return "[" + ", ".join(str(x) for x in shown if x) + "]"


async def _session(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = WidgetClient(http, url)
        await client.start()
        click.echo("Type a message (empty line or Ctrl-D to quit).", err=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            text = line.strip()
            if not text:
                return
            status, body = await client.send(text)
            if status != 200:
                click.echo(f"error: {body['error']['message']}", err=True)
                continue
            reply = body["reply"] or {}
            if reply.get("text"):
                click.echo(f"bot: {reply['text']}")
                for n, label in enumerate(reply.get("quick_replies") or [], 1):
                    click.echo(f"  {n}. {label}")
            elif reply.get("status") == "pending_review":
                click.echo("bot: (a reply is waiting for an agent's review)")
            click.echo(click.style(reply_meta(reply), dim=True), err=True)


@cli.command()
@click.option("--url", default=None, help="A running server; default: start one in this process.")
@pass_ctx
def chat(ctx: CliContext, url: str | None) -> None:
    """Talk to the bot in the terminal."""

    async def go() -> None:
        if url:
            await _session(url.rstrip("/"))
            return
        async with local_server(ctx.settings) as local:
            await _session(local)

    run_async(go())
