"""``deskbot chat``: talk to the bot in the terminal, through the same API the widget uses."""

from __future__ import annotations

import asyncio
import socket
import sys

import aiohttp
import click
from aiohttp import web

from bot.cli.app import CliContext, cli, pass_ctx, run_async


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _session(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/conversations", json={}) as r:
            conv = await r.json()
        auth = {"Authorization": f"Bearer {conv['token']}"}
        click.echo("Type a message (empty line or Ctrl-D to quit).", err=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            text = line.strip()
            if not text:
                return
            async with http.post(
                f"{url}/api/v1/conversations/{conv['id']}/messages",
                json={"text": text},
                headers=auth,
            ) as r:
                body = await r.json()
            if r.status != 200:
                click.echo(f"error: {body['error']['message']}", err=True)
                continue
            reply = body["reply"] or {}
            shown = [reply.get("status"), reply.get("action"), reply.get("intent")]
            meta = "[" + ", ".join(str(x) for x in shown if x) + "]"
            if reply.get("text"):
                click.echo(f"bot: {reply['text']}")
                for n, label in enumerate(reply.get("quick_replies") or [], 1):
                    click.echo(f"  {n}. {label}")
            elif reply.get("status") == "pending_review":
                click.echo("bot: (a reply is waiting for an agent's review)")
            click.echo(click.style(meta, dim=True), err=True)


@cli.command()
@click.option("--url", default=None, help="A running server; default: start one in this process.")
@pass_ctx
def chat(ctx: CliContext, url: str | None) -> None:
    """Talk to the bot in the terminal."""

    async def go() -> None:
        if url:
            await _session(url.rstrip("/"))
            return
        from bot.app import create_app

        runner = web.AppRunner(create_app(ctx.settings, run_jobs=False), access_log=None)
        await runner.setup()
        port = _free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            await _session(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    run_async(go())
