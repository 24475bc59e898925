"""The remote backend against a local server speaking the OpenAI chat-completions protocol."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from bot.errors import BackendUnavailableError, SettingsError
from bot.generation.remote import RemoteGenerator
from bot.generation.types import ReplyRequest
from bot.settings import GenerationSettings
from retrieval.hit import Hit

HIT = Hit(3, 0.8, "where is my order", "Track order {{Order Number}} on the Orders page.", "track")
REQUEST = ReplyRequest(message="where is order ORD-5566?", hits=(HIT,), intent="track")


class FakeLLM:
    """Records requests; answers by ``mode``: stream, plain JSON, slow, or failing first."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.mode = "stream"
        self.failures_left = 0
        self.pieces = ["Track order ", "{{Order", " Number}}", " on the Orders page."]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.failures_left:
            self.failures_left -= 1
            return web.json_response({"error": "overloaded"}, status=503)
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "plain":
            return web.json_response(
                {
                    "choices": [
                        {"message": {"content": "".join(self.pieces)}, "finish_reason": "stop"}
                    ],
                    "usage": {"completion_tokens": 9},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in self.pieces:
            event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


@pytest.fixture
async def fake(aiohttp_server):
    llm = FakeLLM()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", llm.handle)
    server = await aiohttp_server(app)
    llm.url = str(server.make_url("/"))
    return llm


def _generator(url: str, **kw) -> RemoteGenerator:
    settings = GenerationSettings(
        backend="remote", remote_url=url, remote_model="smol", grounding_embedder=False, **kw
    )
    return RemoteGenerator(settings)


async def test_streams_pieces_and_fills_the_slot(fake):
    gen = _generator(fake.url, remote_api_key="sk-test", company_name="Acme")
    try:
        stream = gen.stream(REQUEST)
        pieces = [p async for p in stream]
        draft = await stream.draft
    finally:
        await gen.close()
    assert "".join(pieces) == "Track order ORD-5566 on the Orders page."
    assert draft.text == "Track order ORD-5566 on the Orders page."
    assert draft.grounded and draft.grounding == 1.0
    assert draft.sources == (3,) and draft.tokens == 4 and draft.model == "remote:smol"
    sent = fake.requests[0]
    assert sent["stream"] is True and sent["model"] == "smol"
    assert sent["messages"][0]["role"] == "system" and "Acme" in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "where is order ORD-5566?"}
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"


async def test_a_server_that_does_not_stream_still_works(fake):
    fake.mode = "plain"
    gen = _generator(fake.url)
    try:
        draft = await gen.generate(REQUEST)
    finally:
        await gen.close()
    assert draft.text == "Track order ORD-5566 on the Orders page."
    assert draft.tokens == 9


async def test_5xx_answers_are_retried(fake):
    fake.failures_left = 2
    gen = _generator(fake.url, remote_retries=2)
    try:
        draft = await gen.generate(REQUEST)
    finally:
        await gen.close()
    assert len(fake.requests) == 3
    assert draft.text.startswith("Track order ORD-5566")


async def test_timeout_raises_backend_unavailable(fake):
    fake.mode = "slow"
    gen = _generator(fake.url, remote_timeout_s=0.3, remote_retries=1)
    try:
        with pytest.raises(BackendUnavailableError, match=r"timed out \(after 2 attempts"):
            await gen.generate(REQUEST)
    finally:
        await gen.close()
    assert len(fake.requests) == 2


async def test_a_server_that_is_down_raises_backend_unavailable(unused_tcp_port):
    gen = _generator(f"http://127.0.0.1:{unused_tcp_port}", remote_retries=0)
    try:
        with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{unused_tcp_port}"):
            await gen.generate(REQUEST)
    finally:
        await gen.close()


def test_remote_needs_a_url():
    with pytest.raises(SettingsError, match="remote_url"):
        RemoteGenerator(GenerationSettings(backend="remote"))
