"""The bundled SmolLM2 model through the real runtimes (slow: loads and runs a 135M model)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.generation import ReplyRequest, load_generator
from bot.settings import load_settings
from finetune.generator.loading import MERGED_GGUF, cached_hf_dir, load_transformers_model, resolve
from retrieval.hit import Hit
from tests.conftest import share_generator_cache

pytestmark = pytest.mark.slow

HIT = Hit(
    1,
    0.82,
    "how can I cancel my order",
    "I understand you want to cancel order {{Order Number}}. Log in, open "
    "'{{Online Order Interaction}}', select the order and click Cancel, or call "
    "{{Customer Support Phone Number}}.",
    "cancel_order",
)


QUESTIONS = (
    "Where is my parcel?",
    "how do I reset my password",
    "what payment methods do you accept",
    "I need to change my shipping address",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory, generator_cache) -> Path:
    home = tmp_path_factory.mktemp("home")
    share_generator_cache(home, generator_cache)
    return home


@pytest.mark.parametrize("runtime", ["llama_cpp", "transformers"])
async def test_bundled_model_replies_without_placeholders(home, runtime):
    if runtime == "llama_cpp":
        pytest.importorskip("llama_cpp")
    settings = load_settings(
        home=str(home),
        generation={"runtime": runtime, "max_new_tokens": 48, "grounding_embedder": False},
    )
    generator = load_generator(settings)
    try:
        draft = await generator.generate(
            ReplyRequest(message="Please cancel my order ORD-99812", hits=(HIT,))
        )
    finally:
        await generator.close()
    assert draft.text.strip()
    assert "{{" not in draft.text and "{{" not in draft.fallback
    assert "ORD-99812" in draft.fallback
    assert 0 < draft.tokens <= 48
    assert draft.model.startswith("llama.cpp:" if runtime == "llama_cpp" else "transformers:")
    if runtime == "llama_cpp":  # the version names the Q8_0 copy that ran, not the Q4_1 file
        assert draft.model.endswith("@Q8_0")
    # The GGUF was converted once into the cache; later loads read safetensors from there.
    cached = cached_hf_dir(resolve(""), settings.cache_dir)
    assert (cached / "model.safetensors").is_file()


def _greedy_llama_cpp(gguf: Path, prompt: list[int], tokenizer, n: int) -> list[int]:
    from bot.generation.engine_llama import LlamaCppEngine
    from bot.generation.scheduler import Job

    engine = LlamaCppEngine(gguf, stop_ids=frozenset(), max_batch=1, context_tokens=256)
    done = threading.Event()
    job = Job(prompt, n, tokenizer, on_done=lambda _: done.set())
    try:
        engine.run([job], lambda _: [])
    finally:
        engine.close()
    return job.token_ids


def _greedy_hf(model, prompt: list[int], n: int) -> list[int]:
    import torch

    ids = torch.tensor([prompt])
    out = model.generate(ids, max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return out[0, len(prompt) :].tolist()


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_adapter_merged_into_gguf_matches_transformers(home, tmp_path):
    """The GGUF merge (with llama.cpp's q/k row permutation) computes what PEFT computes."""
    pytest.importorskip("llama_cpp")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from finetune.generator.export import merge_lora_into_gguf

    torch.manual_seed(0)
    source = resolve("")
    tokenizer = AutoTokenizer.from_pretrained(cached_hf_dir(source, home / "cache"))
    base = load_transformers_model(source, home / "cache")
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(base, config)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    merged = peft_model.merge_and_unload().eval()
    out = merge_lora_into_gguf(source.gguf, adapter, adapter / MERGED_GGUF, quant="F32")

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How do I reset my password?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    want = _greedy_hf(merged, list(prompt), 12)
    got = _greedy_llama_cpp(out, list(prompt), tokenizer, 12)
    base_tokens = _greedy_llama_cpp(source.gguf, list(prompt), tokenizer, 12)
    assert got == want
    assert base_tokens != want  # the adapter changed the output, so the check means something


def _next_token_choices(gguf: Path, ids: list[int], *, flash_attention: bool = False) -> list[int]:
    """The model's top next token at every position of ``ids`` (teacher-forced)."""
    import numpy as np

    from bot.generation.engine_llama import LlamaCppEngine

    engine = LlamaCppEngine(
        gguf,
        stop_ids=frozenset(),
        max_batch=1,
        context_tokens=256,
        flash_attention=flash_attention,
    )
    try:
        engine._decode([(token, pos, 0, True) for pos, token in enumerate(ids)])
        return [int(np.argmax(engine._logits(i))) for i in range(len(ids))]
    finally:
        engine.close()


def _agreement(
    tokenizer,
    gguf: Path,
    want: Callable[[list[int]], list[int]],
    got: Callable[[list[int]], list[int]],
) -> float:
    """How often ``got`` picks ``want``'s next token along greedy replies to QUESTIONS."""
    agree = total = 0
    for question in QUESTIONS:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        ids = list(prompt) + _greedy_llama_cpp(gguf, list(prompt), tokenizer, 32)
        expected = want(ids)[len(prompt) - 1 : -1]
        chosen = got(ids)[len(prompt) - 1 : -1]
        agree += sum(a == b for a, b in zip(chosen, expected, strict=True))
        total += len(expected)
    return agree / total


def test_requantized_gguf_keeps_the_models_output(home):
    """The Q8_0 copy llama.cpp runs by default predicts as the bundled Q4_1 file does.

    Compared token by token along the same text rather than by free greedy decoding: a single
    near-tie (this base model has many) would send two free continuations apart for good.
    """
    pytest.importorskip("llama_cpp")
    import gguf
    from transformers import AutoTokenizer

    from finetune.generator.loading import cached_gguf

    source = resolve("")
    assert source.gguf is not None
    # The session's cache: the copy the runtime loads, converted once for every test.
    out = cached_gguf(source.gguf, home / "cache", "Q8_0")
    assert cached_gguf(source.gguf, home / "cache", "Q8_0") == out
    assert cached_gguf(source.gguf, home / "cache", "original") == source.gguf
    types = {t.tensor_type for t in gguf.GGUFReader(str(out)).tensors}
    assert gguf.GGMLQuantizationType.Q8_0 in types
    assert gguf.GGMLQuantizationType.Q4_1 not in types

    tokenizer = AutoTokenizer.from_pretrained(cached_hf_dir(source, home / "cache"))
    agreement = _agreement(
        tokenizer,
        source.gguf,
        lambda ids: _next_token_choices(source.gguf, ids),
        lambda ids: _next_token_choices(out, ids),
    )
    # Measured 121 of 128. Along transformers' fp32 replies to 8 questions (384 tokens), the
    # Q4_1 file and its Q8_0 copy each chose the reference's token 96-97% of the time.
    assert agreement >= 0.9


def test_flash_attention_keeps_the_models_output(home):
    """Both attention kernels (chosen per CPU by ``generation.flash_attention``) agree."""
    pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    source = resolve("")
    assert source.gguf is not None
    tokenizer = AutoTokenizer.from_pretrained(cached_hf_dir(source, home / "cache"))
    agreement = _agreement(
        tokenizer,
        source.gguf,
        lambda ids: _next_token_choices(source.gguf, ids),
        lambda ids: _next_token_choices(source.gguf, ids, flash_attention=True),
    )
    assert agreement >= 0.95


def test_shared_prompt_start_is_reused_without_changing_replies(home):
    """Prompts sharing a start reuse its KV cells, alone or in a batch, with the same tokens."""
    pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    from bot.generation.engine_llama import LlamaCppEngine
    from bot.generation.scheduler import Job

    source = resolve("")
    assert source.gguf is not None
    tokenizer = AutoTokenizer.from_pretrained(cached_hf_dir(source, home / "cache"))
    system = "You are the support assistant of Acme. Answer briefly and politely. " * 3

    def prompt(question: str) -> list[int]:
        return list(
            tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": question}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        )

    questions = ["Where is my parcel?", "How do I reset my password?", "Can I pay by card?"]
    alone = [_greedy_llama_cpp(source.gguf, prompt(q), tokenizer, 10) for q in questions]

    engine = LlamaCppEngine(source.gguf, stop_ids=frozenset(), max_batch=2, context_tokens=256)
    try:
        first = Job(prompt(questions[0]), 10, tokenizer)
        engine.run([first], lambda _: [])
        assert engine.reused_tokens == 0
        batch = [Job(prompt(q), 10, tokenizer) for q in questions[1:]]
        engine.run(batch, lambda _: [])
        assert engine.reused_tokens >= 2 * 30  # both shared the system prompt's cells
    finally:
        engine.close()
    assert [first.token_ids] + [j.token_ids for j in batch] == alone
