"""Reply generation: grounded drafts from a small local LM or a remote LLM server.

The server builds one :class:`Generator` with :func:`load_generator` (slow: run it in an
executor at start-up) and calls ``await generator.generate(request)`` or iterates
``generator.stream(request)`` and then ``await stream.draft``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from bot.errors import ModelError, SettingsError
from bot.generation.generator import Generator, ReplyStream
from bot.generation.types import Draft, ReplyRequest
from bot.settings import Settings

__all__ = ["Draft", "Generator", "ReplyRequest", "ReplyStream", "load_generator"]

log = logging.getLogger("deskbot.generation")


def load_generator(
    settings: Settings,
    model_path: str | os.PathLike[str] | None = None,
    *,
    embedder: Any | None = None,
) -> Generator:
    """The generator ``settings.generation`` asks for.

    ``model_path`` (e.g. the active registered generator version) overrides
    ``settings.generation.model``. ``embedder`` (with ``encode(list[str])``) is shared with
    retrieval when given; otherwise one is loaded on first use for the grounding check.
    """
    config = settings.generation
    factory = None
    if embedder is None and config.grounding_embedder:
        from bot.generation.embedding import load_embedder

        def factory() -> Any:
            return load_embedder(settings.retrieval.embedder)

    if config.backend == "off":
        raise SettingsError("setting 'generation.backend' is 'off': there is no generator")
    if config.backend == "remote":
        from bot.generation.remote import RemoteGenerator

        return RemoteGenerator(config, embedder=embedder, embedder_factory=factory)

    from bot.generation import engine_llama
    from bot.generation.engine_hf import TransformersEngine
    from bot.generation.local import LocalGenerator
    from finetune.generator.loading import (
        cached_gguf,
        load_tokenizer,
        load_transformers_model,
        resolve,
    )

    source = resolve(model_path if model_path is not None else config.model)
    cache = Path(settings.cache_dir)
    tokenizer = load_tokenizer(source, cache)
    engine: Any
    use_llama = config.runtime in ("auto", "llama_cpp") and source.gguf is not None
    if use_llama and not engine_llama.available():
        if config.runtime == "llama_cpp":
            raise ModelError("generation.runtime is 'llama_cpp' but llama-cpp-python is missing")
        log.warning("llama-cpp-python is not installed: generating with transformers (slower)")
        use_llama = False
    if config.runtime == "llama_cpp" and source.gguf is None:
        raise ModelError(f"generation.runtime is 'llama_cpp' but {source.name} has no .gguf file")
    name = source.name
    if use_llama:
        hf = TransformersEngine.stop_ids_of(tokenizer)
        gguf = cached_gguf(source.gguf, cache, config.gguf_quant)  # type: ignore[arg-type]
        if gguf != source.gguf:
            name = f"{source.name}@{config.gguf_quant}"  # the reply records what really ran
        engine = engine_llama.LlamaCppEngine(
            gguf,
            stop_ids=hf,
            max_batch=config.max_batch,
            context_tokens=config.context_tokens,
            threads=config.threads or None,
            flash_attention=engine_llama.use_flash_attention(config.flash_attention),
        )
    else:
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        model = load_transformers_model(source, cache)
        engine = TransformersEngine(model, tokenizer, max_batch=config.max_batch)
    log.info("generator %s ready (%s)", name, engine.name)
    generator = LocalGenerator(
        engine,
        tokenizer,
        config,
        model=name,
        trained=source.info,
        embedder=embedder,
        embedder_factory=factory,
    )
    generator.bundled_base = not str(model_path if model_path is not None else config.model)
    return generator
