"""The remote backend: an OpenAI-compatible ``/v1/chat/completions`` server.

vLLM, the llama.cpp server, TGI and Ollama all speak it. Replies are streamed (server-sent
events, ``data: {...}`` lines ending with ``data: [DONE]``). Connection failures, timeouts and
5xx answers are retried with backoff while nothing has been streamed yet; after that, or when
retries run out, :class:`BackendUnavailableError` names the server and the cause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bot.errors import BackendUnavailableError, SettingsError
from bot.generation.generator import Generator, RawResult
from bot.generation.local import prompt_config
from bot.generation.types import ReplyRequest
from bot.settings import GenerationSettings
from finetune.generator.prompt import build_messages

log = logging.getLogger("deskbot.generation")

# Without the tokenizer of a remote model, ~4 characters per token is the usual estimate.
CHARS_PER_TOKEN = 4


class _Retryable(Exception):
    pass


class RemoteGenerator(Generator):
    def __init__(self, config: GenerationSettings, **kwargs: Any) -> None:
        if not config.remote_url:
            raise SettingsError(
                "setting 'generation.remote_url' (DESKBOT_GENERATION__REMOTE_URL) is required "
                "when generation.backend is 'remote'"
            )
        super().__init__(config, **kwargs)
        base = config.remote_url.rstrip("/")
        if base.endswith("/chat/completions"):
            self.url = base
        elif base.endswith("/v1"):
            self.url = base + "/chat/completions"
        else:
            self.url = base + "/v1/chat/completions"
        self.model = config.remote_model
        self.version = f"remote:{config.remote_model}"
        self.prompt = prompt_config(config)
        self._session: aiohttp.ClientSession | None = None

    def _messages(self, request: ReplyRequest, max_new: int) -> list[dict[str, str]]:
        budget = (self.config.context_tokens - max_new) * CHARS_PER_TOKEN
        n_turns = min(len(request.history), self.prompt.max_turns)
        n_sources = min(len(request.hits), self.prompt.max_sources)
        while True:
            messages = build_messages(request, self.prompt, n_sources=n_sources, n_turns=n_turns)
            if sum(len(m["content"]) for m in messages) <= budget:
                return messages
            if n_turns:
                n_turns -= 1
            elif n_sources > 1:
                n_sources -= 1
            else:
                return messages

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Content-Type": "application/json"}
            key = self.config.remote_api_key.get_secret_value()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def _produce(self, request: ReplyRequest, result: RawResult) -> AsyncIterator[str]:
        max_new = request.max_new_tokens or self.config.max_new_tokens
        body = {
            "model": self.config.remote_model,
            "messages": self._messages(request, max_new),
            "max_tokens": max_new,
            "temperature": self.config.temperature,
            "stream": True,
        }
        result.sources = tuple(h.pair_id for h in request.hits[: self.prompt.max_sources])
        attempts = self.config.remote_retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
            streamed = False
            try:
                async for piece in self._request(body, result):
                    streamed = True
                    yield piece
                return
            except _Retryable as exc:
                last = exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = exc
            if streamed:
                break
            log.warning("remote generation attempt %d/%d failed: %s", attempt + 1, attempts, last)
        cause = last.__cause__ if isinstance(last, _Retryable) and last.__cause__ else last
        what = "timed out" if isinstance(cause, TimeoutError) else f"failed: {cause}"
        raise BackendUnavailableError(
            f"LLM server {self.url} {what}"
            + ("" if streamed else f" (after {attempts} attempt{'s' * (attempts > 1)})"),
            url=self.url,
        ) from last

    async def _request(self, body: dict[str, Any], result: RawResult) -> AsyncIterator[str]:
        timeout = aiohttp.ClientTimeout(
            total=self.config.remote_timeout_s, sock_read=self.config.remote_timeout_s
        )
        started = time.perf_counter()
        async with self._client().post(self.url, json=body, timeout=timeout) as response:
            if response.status >= 500 or response.status == 429:
                raise _Retryable(f"HTTP {response.status}: {(await response.text())[:200]}")
            if response.status >= 400:
                raise BackendUnavailableError(
                    f"LLM server {self.url} refused the request: HTTP {response.status} "
                    f"{(await response.text())[:200]}",
                    url=self.url,
                    status=response.status,
                )
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                data = await response.json(content_type=None)  # a server that ignored "stream"
                choice = (data.get("choices") or [{}])[0]
                text = (choice.get("message") or {}).get("content") or ""
                result.tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
                result.finish_reason = choice.get("finish_reason") or "stop"
                if text:
                    result.first_token_s = time.perf_counter() - started
                    yield text
                return
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    event = json.loads(payload)
                except ValueError:
                    log.warning("LLM server sent a line that is not JSON: %.100s", payload)
                    continue
                if event.get("usage"):
                    result.tokens = int(event["usage"].get("completion_tokens") or result.tokens)
                for choice in event.get("choices") or []:
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if result.first_token_s is None:
                            result.first_token_s = time.perf_counter() - started
                        result.tokens += 1  # one event per token, unless usage says otherwise
                        yield piece

    async def _close_backend(self) -> None:
        if self._session is not None:
            await self._session.close()
