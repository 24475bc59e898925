"""The local backend on a tiny random Llama: batching, streaming, drafts."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.generation.engine_hf import TransformersEngine
from bot.generation.local import LocalGenerator
from bot.generation.scheduler import BatchScheduler, Job
from bot.generation.types import ReplyRequest
from bot.settings import GenerationSettings
from retrieval.hit import Hit

HIT = Hit(7, 0.9, "cancel order", "Cancel order {{Order Number}} on the Orders page.", "cancel")


def _prompt(tokenizer, text: str) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )


def _run_jobs(engine, prompts, max_new=12):
    scheduler = BatchScheduler(engine, max_batch=8, max_wait_ms=200)
    results, done = {}, threading.Event()

    def finished(i):
        def cb(result):
            results[i] = result
            if len(results) == len(prompts):
                done.set()

        return cb

    jobs = [
        Job(prompt_ids=p, max_new_tokens=max_new, detokenizer=engine.tokenizer, on_done=finished(i))
        for i, p in enumerate(prompts)
    ]
    for job in jobs:
        scheduler.submit(job)
    assert done.wait(60)
    scheduler.close()
    return [results[i] for i in range(len(prompts))], jobs, scheduler.batches


def test_batched_generation_equals_one_by_one(tiny_llama, tiny_tokenizer):
    engine = TransformersEngine(tiny_llama, tiny_tokenizer)
    prompts = [
        _prompt(tiny_tokenizer, t) for t in ("cancel my order", "track parcel now please", "hi")
    ]
    batched, jobs, batches = _run_jobs(engine, prompts)
    assert batches == [3]  # all three went through the model together
    for prompt, result, job in zip(prompts, batched, jobs, strict=True):
        alone, alone_jobs, _ = _run_jobs(engine, [prompt])
        assert alone_jobs[0].token_ids == job.token_ids  # left padding changes nothing
        assert alone[0].text == result.text
        assert result.tokens == len(job.token_ids) > 0


def _settings(**kw) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=16, batch_wait_ms=100, grounding_embedder=False, **kw)


@pytest.fixture
async def generator(tiny_llama, tiny_tokenizer):
    engine = TransformersEngine(tiny_llama, tiny_tokenizer)
    gen = LocalGenerator(engine, tiny_tokenizer, _settings(), model="tiny")
    yield gen
    await gen.close()


async def test_stream_yields_pieces_then_the_draft(generator):
    request = ReplyRequest(
        message="cancel order ORD-1234", history=(("bot", "Hello!"),), hits=(HIT,), intent="cancel"
    )
    stream = generator.stream(request)
    pieces = [p async for p in stream]
    draft = await stream.draft
    assert pieces and draft.tokens == 16  # random weights rarely stop early
    assert "".join(pieces).strip() == draft.text
    assert draft.sources == (7,)
    assert draft.fallback == "Cancel order ORD-1234 on the Orders page."
    assert draft.model == generator.version == "transformers:tiny"
    assert 0.0 <= draft.grounding <= 1.0
    assert draft.grounded == (draft.grounding >= 0.55)
    assert "{{" not in draft.text


async def test_concurrent_requests_share_batches(generator):
    requests = [ReplyRequest(message=f"question {i}", hits=(HIT,)) for i in range(4)]
    drafts = await asyncio.gather(*(generator.generate(r) for r in requests))
    assert all(d.tokens == 16 for d in drafts)
    assert max(generator.scheduler.batches) > 1


async def test_the_event_loop_keeps_running_while_generating(generator):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await generator.generate(ReplyRequest(message="hello there", hits=(HIT,), max_new_tokens=40))
    task.cancel()
    assert ticks > 5


async def test_leaving_the_stream_early_cancels_the_job(generator):
    request = ReplyRequest(message="hello there", hits=(HIT,), max_new_tokens=200)
    stream = generator.stream(request)
    async for _ in stream:
        break
    await stream.aclose()
    assert stream.draft.cancelled()
    # The worker is free again: a new request completes.
    draft = await generator.generate(ReplyRequest(message="next", hits=(HIT,)))
    assert draft.tokens == 16


def test_a_fine_tuned_artifact_is_served_as_it_was_trained(tmp_path):
    """Its prompt shape and its recorded penalty win over the base model's settings."""
    import json

    from bot.generation.local import BASE_REPETITION_PENALTY, prompt_config, repetition_penalty
    from finetune.generator.loading import ARTIFACT_INFO, resolve

    artifact = tmp_path / "generator-1"
    artifact.mkdir()
    (artifact / "adapter_config.json").write_text("{}")
    info = {
        "base_model": "",
        "prompt": {"max_sources": 2, "source_max_words": 60, "company_name": "Trained Co"},
        "hyperparameters": {"serve_repetition_penalty": 1.05},
    }
    (artifact / ARTIFACT_INFO).write_text(json.dumps(info))
    trained = resolve(artifact).info
    settings = GenerationSettings(company_name="Acme", max_sources=4)

    prompt = prompt_config(settings, trained)
    assert (prompt.max_sources, prompt.source_max_words) == (2, 60)
    assert prompt.company_name == "Acme"  # who the bot speaks for stays a setting
    assert repetition_penalty(settings, trained) == 1.05
    assert repetition_penalty(GenerationSettings(repetition_penalty=1.3), trained) == 1.3

    base = resolve("").info
    assert prompt_config(settings, base).max_sources == 4
    assert repetition_penalty(settings, base) == BASE_REPETITION_PENALTY
