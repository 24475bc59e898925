"""The :class:`Generator` the server calls, and what every backend shares.

A backend produces raw token text; this module filters placeholders out of the stream as it
goes, then fills them in the full text, scores grounding and assembles the :class:`Draft`.

Streaming: ``stream(request)`` returns a :class:`ReplyStream`, an async iterator of text
pieces; after it is exhausted ``await stream.draft`` gives the final :class:`Draft` (whose
``text`` is the full reply filled as a whole: the pieces are the same text filled slot by
slot, so around a missing slot the wording can differ ("order your order" streamed, "your
order" in the draft), and a question asking for a missing value is only in ``draft.text``).
Store and send ``draft.text``; the pieces are for live display.
Breaking out of the loop (or ``await stream.aclose()``) cancels the generation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.generation import grounding
from bot.generation.placeholders import PlaceholderStream, fill, given_values
from bot.generation.types import Draft, ReplyRequest
from bot.settings import GenerationSettings

log = logging.getLogger("deskbot.generation")


@dataclass
class RawResult:
    """What a backend reports about one generation, filled in while it runs."""

    sources: tuple[int, ...] = ()
    tokens: int = 0
    prompt_tokens: int = 0
    first_token_s: float | None = None
    finish_reason: str = "stop"
    text: str = ""


class ReplyStream:
    """Async iterator of reply text pieces; ``draft`` resolves to the :class:`Draft` at the end."""

    def __init__(self, pieces: AsyncGenerator[str, None], draft: asyncio.Future[Draft]) -> None:
        self._pieces = pieces
        self.draft = draft

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        await self._pieces.aclose()
        if not self.draft.done():
            self.draft.cancel()


def conversation(request: ReplyRequest) -> list[tuple[str, str]]:
    return [*request.history, ("customer", request.message)]


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: callers that only stream are not warned


class Generator(ABC):
    """Writes grounded replies. Build one with :func:`bot.generation.load_generator`."""

    version: str = ""
    model: str = ""
    # The bundled base model, untuned (see generation.send_base_drafts).
    bundled_base: bool = False

    def __init__(
        self,
        config: GenerationSettings,
        *,
        embedder: Any | None = None,
        embedder_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self._embedder = embedder
        self._embedder_factory = embedder_factory
        # Prompt building and grounding are short CPU work: one helper thread, off the loop.
        self._aux = ThreadPoolExecutor(1, thread_name_prefix="deskbot-generation-aux")

    @abstractmethod
    def _produce(self, request: ReplyRequest, result: RawResult) -> AsyncIterator[str]:
        """Yield raw text pieces; fill ``result`` as generation goes."""

    async def _close_backend(self) -> None:
        return None

    def stream(self, request: ReplyRequest) -> ReplyStream:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Draft] = loop.create_future()
        future.add_done_callback(_retrieve_exception)
        return ReplyStream(self._run(request, future), future)

    async def generate(self, request: ReplyRequest) -> Draft:
        stream = self.stream(request)
        async for _ in stream:
            pass
        return await stream.draft

    async def _run(
        self, request: ReplyRequest, future: asyncio.Future[Draft]
    ) -> AsyncGenerator[str, None]:
        started = time.perf_counter()
        result = RawResult()
        turns = conversation(request)
        loop = asyncio.get_running_loop()
        raw: list[str] = []
        try:
            # Reading the customer's values runs patterns over every turn: off the loop.
            slots = await loop.run_in_executor(
                self._aux, functools.partial(PlaceholderStream, turns, facts=self.config.facts)
            )
            async for piece in self._produce(request, result):
                raw.append(piece)
                out = slots.feed(piece)
                if out:
                    yield out
            tail = slots.finish()
            if tail:
                yield tail
            result.text = "".join(raw)
            draft = await loop.run_in_executor(
                self._aux, self._finalize, request, result, time.perf_counter() - started
            )
            if not future.done():
                future.set_result(draft)
        except BaseException as exc:
            if not future.done():
                if isinstance(exc, GeneratorExit | asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise

    def _get_embedder(self) -> Any | None:
        if self._embedder is None and self._embedder_factory is not None:
            try:
                self._embedder = self._embedder_factory()
            except Exception:
                log.exception("no embedder for grounding; using content overlap only")
            self._embedder_factory = None
        return self._embedder

    def _finalize(self, request: ReplyRequest, result: RawResult, elapsed_s: float) -> Draft:
        turns = conversation(request)
        facts = self.config.facts
        by_id = {h.pair_id: h for h in request.hits}
        used = [by_id[i] for i in result.sources if i in by_id] or list(request.hits[:1])
        filled_sources = [fill(h.answer, turns, facts=facts, ask=False)[0] for h in used]
        fallback = fill(request.hits[0].answer, turns, facts=facts)[0] if request.hits else ""
        text, missing = fill(result.text.strip(), turns, facts=facts)
        if not text:
            log.warning("the generator returned an empty reply")
        # The customer's words are no evidence (they may be an injection): only the values
        # they gave that identify them or their order may appear without a source, and what
        # is promised must be in the team's answers as written, not filled with their amounts.
        given = given_values(t for role, t in turns if role == "customer")
        team = [fill(h.answer, (), facts=facts, ask=False)[0] for h in used]
        promises = tuple(grounding.unsupported_promises(text, team))
        value = (
            grounding.score(text, filled_sources, self._get_embedder(), given=given)
            if text and not promises
            else 0.0
        )
        return Draft(
            text=text,
            grounding=value,
            grounded=bool(text) and value >= self.config.grounding_threshold and not promises,
            fallback=fallback,
            sources=tuple(h.pair_id for h in used) if request.hits else (),
            missing_slots=tuple(missing),
            tokens=result.tokens,
            model=self.version,
            first_token_ms=None if result.first_token_s is None else result.first_token_s * 1000,
            elapsed_ms=elapsed_s * 1000,
            finish_reason=result.finish_reason,
            unsupported_promises=promises,
        )

    async def close(self) -> None:
        await self._close_backend()
        self._aux.shutdown(wait=False, cancel_futures=True)
