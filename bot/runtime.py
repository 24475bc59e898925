"""The models a server process answers with, and their atomic swap.

:class:`ModelRuntime` holds one immutable :class:`ModelSet` (embedder, index, intent classifier,
generator, with their versions). A batch takes the set that is current when it starts and uses
it to the end; :meth:`ModelRuntime.reload` loads the newly active versions in a thread and then
replaces the set with one assignment, so a swap needs no restart and fails no request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.batching import MicroBatcher
from bot.dialogue.smalltalk import SmallTalkGuess, SmallTalkModel, without_greeting
from bot.dialogue.spelling import Speller
from bot.errors import ModelError
from bot.generation.placeholders.values import as_placeholders
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version
from bot.text import for_patterns
from finetune.intent.classifier import IntentClassifier, IntentPrediction, Verdict
from retrieval.consensus import order_answers
from retrieval.hit import Hit

log = logging.getLogger("deskbot.runtime")

# Used when no intent model is active: the nearest pairs vote (see _intent_from_hits).
KNN_CONFIDENT = 0.72
KNN_OUT_OF_SCOPE = 0.45


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    context: tuple[str, ...] = ()  # earlier customer turns, oldest first
    # Retrieve answers of this intent only (a clarification the customer answered, a
    # follow-up read with the topic); the prediction is still the model's for ``text``.
    intent: str | None = None


@dataclass(frozen=True, slots=True)
class Understanding:
    prediction: IntentPrediction | None
    hits: tuple[Hit, ...]
    intent_source: str  # "model", "retrieval" or "none"
    smalltalk: SmallTalkGuess | None = None  # the nearest small-talk example
    # Cosine similarity of the message alone to the nearest known question (no boosts):
    # how close it is to anything the bot has answers for.
    domain_score: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelSet:
    embedder: Any = None
    index: Any = None  # retrieval.index.KnowledgeIndex
    intent: IntentClassifier | None = None
    generator: Any = None  # bot.generation.Generator
    speller: Speller | None = None  # knows the index's words
    versions: dict[str, str | None] = field(default_factory=dict)


def _intent_from_hits(hits: Sequence[Hit]) -> IntentPrediction | None:
    """Without an intent model, the retrieved neighbours' intents stand in for one."""
    votes: dict[str, float] = {}
    for h in hits:
        if h.intent:
            votes[h.intent] = max(votes.get(h.intent, 0.0), h.score)
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    best, score = ranked[0]
    verdict: Verdict
    if score < KNN_OUT_OF_SCOPE:
        verdict = "out_of_scope"
    elif score < KNN_CONFIDENT or (len(ranked) > 1 and score - ranked[1][1] < 0.02):
        verdict = "ambiguous"
    else:
        verdict = "confident"
    return IntentPrediction(
        intent=best,
        confidence=float(score),
        top_k=tuple((k, float(v)) for k, v in ranked[:5]),
        verdict=verdict,
    )


class TrackedGenerator:
    """A generator that counts the replies it is working on, so a swap can close it after
    the last one (closing it earlier would fail them). Everything else is the generator's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.active = 0
        self._idle: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _enter(self) -> None:
        self.active += 1
        if self._idle is not None:
            self._idle.clear()

    def _exit(self, *_: Any) -> None:
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    def stream(self, request: Any) -> Any:
        stream = self.inner.stream(request)
        self._enter()
        stream.draft.add_done_callback(self._exit)  # resolved, failed or cancelled: done
        return stream

    async def generate(self, request: Any) -> Any:
        self._enter()
        try:
            return await self.inner.generate(request)
        finally:
            self._exit()

    async def close_when_idle(self, timeout_s: float) -> None:
        """Close after the replies in flight have finished, or after ``timeout_s`` at most."""
        if self.active:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except TimeoutError:
                log.warning("closing a replaced generator with %d replies unfinished", self.active)
        await self.inner.close()

    async def close(self) -> None:
        await self.inner.close()


def model_threads(settings: Settings) -> int:
    """Threads for the encoders: the setting, or one less than the cores (at least 1)."""
    if settings.server.model_threads:
        return settings.server.model_threads
    return max(1, (os.cpu_count() or 1) - 1)


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# A token of single-spaced visible text is rarely more than a few characters: this many per
# token of the encoders' caps holds every token they read, and spares the tokenizers the rest of
# a long text, which they would otherwise split whole to keep its first tokens.
CHARS_PER_TOKEN = 8
# Only texts this short are read a second time with their values as slots: in a longer text a
# value is a small share of the words and moves its vector little.
SLOT_READING_CHARS = 512


class ModelRuntime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        load_generator: bool = True,
        embedder: Any = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.models = ModelSet(embedder=embedder)
        self.want_generator = load_generator and settings.generation.backend != "off"
        self.smalltalk = SmallTalkModel()
        self._swap_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()  # replaced generators being closed
        batch = settings.server.batch_max_size if settings.server.batching else 1
        parallel = settings.server.parallel_encoders and (os.cpu_count() or 1) > 1
        # The two encoder threads share the model threads' budget (1 each on 2 cores).
        threads = max(1, model_threads(settings) // 2) if parallel else model_threads(settings)
        self.batcher: MicroBatcher[Query, Understanding] = MicroBatcher(
            self.understand_batch,
            max_size=batch,
            max_wait=settings.server.batch_max_wait_ms / 1000,
            name="understand",
            thread_init=functools.partial(_set_threads, threads),
            # Bounded by the reply slots upstream; the margin covers recovery passes.
            max_queue=settings.server.max_replies_in_flight * 2,
        )
        # A second encoder thread when there is a core to spare (see understand_batch).
        self._side = (
            ThreadPoolExecutor(
                1,
                thread_name_prefix="encode-side",
                initializer=functools.partial(_set_threads, threads),
            )
            if parallel
            else None
        )

    # -- loading -----------------------------------------------------------------------------

    async def _active_path(self, kind: str) -> tuple[str | None, Path | None]:
        row = await active_model_version(self.db, kind)
        return (row.version, Path(row.path)) if row else (None, None)

    async def load(self) -> ModelSet:
        """Load the active versions (first start) and make them current."""
        return await self.reload(("index", "intent", "generator"))

    async def reload(self, kinds: Sequence[str] = ("index", "intent")) -> ModelSet:
        """Load what is active now for ``kinds`` and swap atomically if anything changed.

        A replaced generator is closed in the background once its last reply has finished.
        """
        async with self._swap_lock:
            old = self.models
            new = await self._load(old, kinds=kinds)
            if new.versions != old.versions:
                log.info("swapping models %s -> %s", old.versions, new.versions)
            self.models = new
        if old.generator is not None and old.generator is not new.generator:
            task = asyncio.get_running_loop().create_task(
                old.generator.close_when_idle(self.settings.server.shutdown_timeout_s),
                name="close-old-generator",
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return new

    async def _load(self, current: ModelSet, kinds: Sequence[str]) -> ModelSet:
        from retrieval.embedder import Embedder
        from retrieval.store import IndexStore

        versions = dict(current.versions)
        embedder = current.embedder
        if embedder is None:
            embedder = await asyncio.to_thread(
                functools.partial(
                    Embedder,
                    self.settings.retrieval.embedder or None,
                    precision=self.settings.retrieval.precision,
                    serving=self.settings.server.encoder_bf16_weights,
                )
            )
        index, intent, generator = current.index, current.intent, current.generator
        speller = current.speller

        if "index" in kinds:
            version, _ = await self._active_path("index")
            store = IndexStore(self.settings.indexes_dir, self.settings.retrieval)
            if version is None:
                version = store.active_version()
            if version is not None and version != versions.get("index"):
                index = await asyncio.to_thread(store.load, version, embedder)
                if self.settings.dialogue.spelling:
                    speller = await asyncio.to_thread(Speller.from_questions, index.questions)
            versions["index"] = version if index is not None else None

        if "intent" in kinds:
            path: Path | None
            if self.settings.intent.model:
                path = Path(self.settings.intent.model)
                version = f"file:{path.name}"
            else:
                version, path = await self._active_path("intent")
            if path is not None and version != versions.get("intent"):
                if not path.exists():
                    raise ModelError(f"intent model {version} is missing at {path}")
                intent = await asyncio.to_thread(
                    IntentClassifier.load,
                    path,
                    precision=self.settings.intent.precision,
                    max_tokens=self.settings.intent.max_query_tokens,
                    serving=self.settings.server.encoder_bf16_weights,
                )
            elif path is None:
                intent = None
            versions["intent"] = version if intent is not None else None

        if "generator" in kinds and self.want_generator:
            version, path = await self._active_path("generator")
            if generator is None or version != versions.get("generator_version"):
                from bot.generation import load_generator

                # The old generator stays open: replies in flight finish on it, and the caller
                # closes it after its last job, once the new set is installed.
                generator = TrackedGenerator(
                    await asyncio.to_thread(load_generator, self.settings, path, embedder=embedder)
                )
            versions["generator_version"] = version
            versions["generator"] = getattr(generator, "version", None)
        return replace(
            current,
            embedder=embedder,
            index=index,
            intent=intent,
            generator=generator,
            speller=speller,
            versions=versions,
        )

    # -- inference -----------------------------------------------------------------------------

    def understand_batch(self, queries: list[Query]) -> list[Understanding]:
        """Intent and retrieval for a batch of messages (runs in the batcher's thread)."""
        models = self.models
        texts = [q.text for q in queries]
        read = [self._reading(t) for t in texts]
        contexts = [[self._reading(t) for t in q.context] for q in queries]
        intent = models.intent
        preds: list[IntentPrediction | None] = [None] * len(texts)
        has_index = models.index is not None and len(models.index) > 0
        if not has_index:
            if intent is not None:
                preds = list(intent.predict(read))
            chat = self._smalltalk(texts, None)
            return [
                Understanding(p, (), "model" if p else "none", c)
                for p, c in zip(preds, chat, strict=True)
            ]
        # Each text with the customer's values as slots is read in the same encoder call as
        # the texts: a second call would read every weight again for one more row.
        masked = {
            i: m
            for i, t in enumerate(read)
            if len(t) <= SLOT_READING_CHARS and (m := as_placeholders(t)) != t
        }
        every = read + list(masked.values())
        every_context = contexts + [[] for _ in masked]
        job = None
        if intent is not None and self._side is not None:
            # The two encoders are independent: the retrieval one runs on the side thread
            # while the intent one runs here, so a batch can use two cores.
            job = self._side.submit(models.index.encode_queries_plain, every, every_context)
        logits = intent.logits(read) if intent is not None else None
        if job is not None:
            plain, vectors = job.result()
        else:
            plain, vectors = models.index.encode_queries_plain(every, every_context)
        n = len(texts)
        plain, vectors, masked_plain = plain[:n], vectors[:n], plain[n:]
        if intent is not None and logits is not None:
            # An intent model with a frozen head needs the texts' plain vectors in its frozen
            # encoder: when that is the retrieval encoder, it takes these.
            share = intent.frozen_encoder == models.index.embedder.name
            preds = list(intent.predict_logits(logits, read, plain if share else None))
        labels = [
            q.intent or (p.label if p is not None else None)
            for q, p in zip(queries, preds, strict=True)
        ]
        forced = [i for i, q in enumerate(queries) if q.intent]
        hits = models.index.search_vectors(vectors, self.settings.retrieval.top_k, labels)
        if forced:
            # A chosen intent is a filter, not a boost: only its answers may answer.
            only = models.index.search_vectors(
                vectors[forced],
                self.settings.retrieval.top_k,
                [labels[i] for i in forced],
                intent_mode="filter",
            )
            for i, found in zip(forced, only, strict=True):
                hits[i] = found
        domain = models.index.search_vectors(plain, 1, intent_mode="off")
        self._domain_with_slots(list(masked), masked_plain, domain)
        chat = self._smalltalk(texts, plain)
        order = self.settings.retrieval.answer_order
        hits = [order_answers(found, order) for found in hits]
        out = []
        for pred, found, near, guess in zip(preds, hits, domain, chat, strict=True):
            score = near[0].score if near else 0.0
            if pred is None:
                pred, source = _intent_from_hits(found), "retrieval"
            else:
                source = "model"
            out.append(Understanding(pred, tuple(found), source, guess, score))
        return out

    def _reading(self, text: str) -> str:
        """What the encoders read of a text: its single-spaced, visible form (bot.text), cut at
        a length that still holds every token the encoders' caps let them read, without the
        greeting it opens with, its typos read as the words meant (bot.dialogue.spelling)."""
        cap = max(self.settings.retrieval.max_query_tokens, self.settings.intent.max_query_tokens)
        view = without_greeting(for_patterns(text)[: cap * CHARS_PER_TOKEN])
        speller = self.models.speller
        return speller.correct(view) if speller is not None else view

    def _domain_with_slots(self, rows: list[int], vectors: Any, domain: list[list[Hit]]) -> None:
        """Raise each message's nearest-question hit to that of its text with the customer's
        values as slots (``vectors``, for the messages at ``rows``), where that is nearer: logs
        keep questions as "order {{Order Number}}", and a real number only pulls a message away
        from them."""
        if not rows:
            return
        found = self.models.index.search_vectors(vectors, 1, intent_mode="off")
        for i, near in zip(rows, found, strict=True):
            if near and (not domain[i] or near[0].score > domain[i][0].score):
                domain[i] = near

    def _smalltalk(self, texts: list[str], plain: Any) -> list[SmallTalkGuess | None]:
        """The nearest small-talk example of each text, in the retrieval encoder's space."""
        embedder = self.models.embedder
        if embedder is None or not texts:
            return [None] * len(texts)
        if plain is None:
            plain = embedder.encode(texts, max_tokens=self.settings.retrieval.max_query_tokens)
        return list(self.smalltalk.classify(plain, embedder, texts))

    async def understand(self, query: Query) -> Understanding:
        return await self.batcher.submit(query)

    async def add_pairs(self, pairs: Sequence[Any]) -> int:
        """Add knowledge pairs (e.g. an approved agent reply) to the live index."""
        index = self.models.index
        if index is None:
            return 0
        return await asyncio.to_thread(index.add, list(pairs))

    @property
    def ready(self) -> bool:
        return self.models.embedder is not None

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.batcher.close()
        if self._side is not None:
            self._side.shutdown(wait=True, cancel_futures=True)
        if self.models.generator is not None:
            await self.models.generator.close()
