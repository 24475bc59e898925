"""``deskbot eval replies`` end to end, generating through a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web
from click.testing import CliRunner

from bot.cli import cli


@pytest.fixture
def fake_llm_url():
    """A chat-completions server on its own thread (the CLI runs its own event loop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        # Echo the first retrieved answer, as a perfectly grounded model would.
        system = body["messages"][0]["content"]
        answer = system.split("Answer: ", 1)[1].split("\n\n")[0]
        return web.json_response(
            {
                "choices": [{"message": {"content": answer}, "finish_reason": "stop"}],
                "usage": {"completion_tokens": len(answer.split())},
            }
        )

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = site._server.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield f"http://127.0.0.1:{state['port']}"
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_eval_replies_prints_the_figures(tmp_path, fake_llm_url, monkeypatch):
    index = tmp_path / "index.csv"
    index.write_text(
        "question,answer,intent\n"
        "how do I cancel my order,"
        '"You can cancel order {{Order Number}} on the Orders page.",cancel\n'
        "where is my refund,Refunds reach your account within 5 days.,refund\n"
    )
    data = tmp_path / "qa.csv"
    data.write_text(
        "question,answer,intent\n"
        "i want to cancel order ORD-1234,You can cancel order {{Order Number}} online.,cancel\n"
        "when do I get my refund back,Refunds take 5 days.,refund\n"
    )
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DESKBOT_GENERATION__BACKEND", "remote")
    monkeypatch.setenv("DESKBOT_GENERATION__REMOTE_URL", fake_llm_url)
    result = CliRunner().invoke(
        cli, ["eval", "replies", "--data", str(data), "--index-data", str(index), "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["n"] == 2
    assert figures["placeholder_leak_rate"] == 0.0
    assert figures["grounded_rate"] == 1.0
    assert 0.3 < figures["rouge_l"] < 1.0
    assert figures["tokens_per_s"] > 0 and figures["model"] == "remote:default"
    for key in ("first_token_ms_p50", "verbatim_rouge_l"):
        assert key in figures
