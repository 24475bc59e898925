"""The local backend: a model on this machine behind the batching scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bot.generation.generator import Generator, RawResult
from bot.generation.scheduler import BatchScheduler, Completion, Engine, Job
from bot.generation.types import ReplyRequest
from bot.settings import GenerationSettings
from finetune.generator.prompt import PromptBuilder, PromptConfig


class _Done:
    __slots__ = ("result",)

    def __init__(self, result: Completion | BaseException) -> None:
        self.result = result


# The base model loops without a penalty on what it already said.
BASE_REPETITION_PENALTY = 1.15
# The parts of a fine-tuned artifact's prompt that shaped what it learned: it is served with
# them, as trained, whatever the settings say for the base model.
_TRAINED_SHAPE = ("max_sources", "source_max_words", "max_turns")


def prompt_config(
    config: GenerationSettings, trained: Mapping[str, Any] | None = None
) -> PromptConfig:
    shape = {k: v for k, v in ((trained or {}).get("prompt") or {}).items() if k in _TRAINED_SHAPE}
    return PromptConfig(
        company_name=config.company_name,
        context_tokens=config.context_tokens,
        max_new_tokens=config.max_new_tokens,
        **{"max_sources": config.max_sources, **shape},
    )


def repetition_penalty(config: GenerationSettings, trained: Mapping[str, Any] | None) -> float:
    """The setting when set, else what the artifact recorded, else the base model's."""
    if config.repetition_penalty is not None:
        return config.repetition_penalty
    recorded = ((trained or {}).get("hyperparameters") or {}).get("serve_repetition_penalty")
    return float(recorded) if recorded is not None else BASE_REPETITION_PENALTY


class LocalGenerator(Generator):
    """Generates with an :class:`Engine` (llama.cpp or transformers) on a worker thread."""

    def __init__(
        self,
        engine: Engine,
        tokenizer: Any,
        config: GenerationSettings,
        *,
        model: str,
        trained: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        self.engine = engine
        self.tokenizer = tokenizer
        self.prompts = PromptBuilder(tokenizer, prompt_config(config, trained))
        self.repetition_penalty = repetition_penalty(config, trained)
        self.scheduler = BatchScheduler(
            engine, max_batch=config.max_batch, max_wait_ms=config.batch_wait_ms
        )
        self.model = model
        self.version = f"{engine.name}:{model}"

    async def _produce(self, request: ReplyRequest, result: RawResult) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        max_new = request.max_new_tokens or self.config.max_new_tokens
        prompt = await loop.run_in_executor(
            self._aux, lambda: self.prompts.build(request, max_new_tokens=max_new)
        )
        result.sources = prompt.sources
        result.prompt_tokens = len(prompt.ids)
        queue: asyncio.Queue[str | _Done] = asyncio.Queue()

        def put(item: str | _Done) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                job.cancelled.set()

        job = Job(
            prompt_ids=prompt.ids,
            max_new_tokens=max_new,
            detokenizer=self.tokenizer,
            on_piece=put,
            on_done=lambda r: put(_Done(r)),
            temperature=self.config.temperature,
            repetition_penalty=self.repetition_penalty,
        )
        self.scheduler.submit(job)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    if isinstance(item.result, BaseException):
                        raise item.result
                    done = item.result
                    result.tokens = done.tokens
                    result.first_token_s = done.first_token_s
                    result.finish_reason = done.finish_reason
                    return
                yield item
        finally:
            job.cancelled.set()

    async def _close_backend(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.scheduler.close)
