"""Fine-tune the reply generator with LoRA: (prompt with retrieved answers) → the agent's answer.

Prompts are built by :mod:`finetune.generator.prompt`, exactly as at inference; only the answer
tokens count in the loss. The artifact is a versioned PEFT directory with ``metrics.json``,
``deskbot_generator.json`` (base model and training facts) and, when the base model is a GGUF,
``model.gguf``: the merged model for the llama.cpp runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bot.core.hardware import bf16_fast
from bot.errors import InputError
from finetune.generator.data import QAPair, split_by_question
from finetune.generator.hparams import GeneratorHyperParams
from finetune.generator.loading import (
    ARTIFACT_INFO,
    MERGED_GGUF,
    load_tokenizer,
    load_transformers_model,
    resolve,
)
from finetune.generator.prompt import PromptBuilder, PromptConfig, ReplyRequest
from finetune.generator.retrieve import PairIndex
from retrieval.consensus import consensus_order

log = logging.getLogger("deskbot.finetune")

Progress = Callable[[int, int, float], None]  # (step, total steps, loss)


@dataclass(frozen=True, slots=True)
class Example:
    input_ids: list[int]
    labels: list[int]


def new_version(digest: str) -> str:
    """Time, data digest and a random tag: two runs on the same data in one second differ."""
    return f"generator-{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest[:8]}-{secrets.token_hex(2)}"


def data_digest(pairs: Sequence[QAPair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(f"{p.question}\x1f{p.answer}\x1e".encode())
    return h.hexdigest()


def build_examples(
    pairs: Sequence[QAPair],
    index: PairIndex,
    tokenizer: Any,
    prompt: PromptConfig,
    hp: GeneratorHyperParams,
) -> list[Example]:
    """Tokenised training examples; prompt tokens are masked (-100) in the labels."""
    builder = PromptBuilder(tokenizer, prompt)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if not isinstance(end, int) or end == tokenizer.unk_token_id:
        end = tokenizer.eos_token_id
    examples: list[Example] = []
    # As at inference: retrieval.top_k hits, the most agreed-on answer first; the prompt keeps
    # the first hp.sources.
    hits_all = index.search([p.question for p in pairs], k=max(hp.retrieved, hp.sources))
    for pair, hits in zip(pairs, hits_all, strict=True):
        request = ReplyRequest(
            message=pair.question, hits=consensus_order(hits), intent=pair.intent
        )
        ids = builder.build(request, max_new_tokens=hp.max_answer_tokens).ids
        answer = tokenizer(pair.answer, add_special_tokens=False)["input_ids"]
        answer = (
            answer[: hp.max_answer_tokens]
            if len(answer) >= hp.max_answer_tokens
            else [
                *answer,
                end,
            ]
        )
        examples.append(Example([*ids, *answer], [-100] * len(ids) + list(answer)))
    return examples


def _autocast(device: torch.device, enabled: bool) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def answer_loss(model: Any, ex: Example, device: torch.device, bf16: bool) -> tuple[Any, int]:
    """(mean loss over the answer tokens, their count).

    The answer is the end of every example, so logits are computed for its positions only:
    over the whole prompt the vocabulary softmax and its backward are a large share of a step.
    """
    n = sum(1 for x in ex.labels if x != -100)
    ids = torch.tensor([ex.input_ids], device=device)
    target = torch.tensor(ex.labels[-n:], device=device)
    with _autocast(device, bf16):
        logits = model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits.float(), target), n


@torch.no_grad()
def evaluate_loss(
    model: Any, examples: Sequence[Example], device: torch.device, bf16: bool
) -> float:
    """Mean per-token loss on the answer tokens."""
    model.eval()
    total, count = 0.0, 0
    for ex in examples:
        loss, n = answer_loss(model, ex, device, bf16)
        total += float(loss) * n
        count += n
    return total / max(count, 1)


def train_generator(
    pairs: Sequence[QAPair],
    out: Path,
    *,
    hp: GeneratorHyperParams,
    embedder: Any,
    cache_dir: Path,
    base_model: str = "",
    prompt: PromptConfig | None = None,
    version: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train, save the artifact under ``out`` and return its metrics."""
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    rng = random.Random(hp.seed)
    torch.manual_seed(hp.seed)
    prompt = prompt or PromptConfig(max_sources=hp.sources)
    train_pairs, held_out = split_by_question(pairs)
    if not train_pairs or not held_out:
        raise InputError(
            f"need questions on both sides of the split; got {len(train_pairs)} train and "
            f"{len(held_out)} held-out pairs from {len(pairs)} rows"
        )
    chosen = rng.sample(train_pairs, min(hp.max_examples, len(train_pairs)))
    val_pairs = rng.sample(held_out, min(hp.val_examples, len(held_out)))
    # The index is the training side: what retrieval would know when these questions arrive.
    pool = train_pairs if len(train_pairs) <= 8000 else rng.sample(train_pairs, 8000)
    index = PairIndex(pool, embedder)
    log.info("index of %d pairs built in %.0f s", len(pool), time.perf_counter() - started)

    source = resolve(base_model)
    tokenizer = load_tokenizer(source, cache_dir)
    train_set = build_examples(chosen, index, tokenizer, prompt, hp)
    val_set = build_examples(val_pairs, index, tokenizer, prompt, hp)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Only where bf16 is native: emulated bf16 (AVX2, no AVX512-BF16) trains many times slower
    # than fp32.
    bf16 = hp.bf16 and (device.type == "cuda" or bf16_fast())
    model = load_transformers_model(source, cache_dir).to(device)
    base_val = evaluate_loss(model, val_set, device, bf16)
    lora = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.lora_targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    steps = math.ceil(len(train_set) * hp.epochs / hp.batch_size)

    def lr_at(step: int) -> float:
        if step < hp.warmup_steps:
            return (step + 1) / hp.warmup_steps
        return max(0.1, 1 - (step - hp.warmup_steps) / max(1, steps - hp.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    order = [i for _ in range(hp.epochs) for i in rng.sample(range(len(train_set)), len(train_set))]
    losses: list[float] = []
    seen = 0
    stopped_early = False
    train_started = time.perf_counter()
    for step in range(steps):
        model.train()
        batch = order[step * hp.batch_size : (step + 1) * hp.batch_size]
        batch_loss = 0.0
        for i in batch:
            loss = answer_loss(model, train_set[i], device, bf16)[0] / len(batch)
            loss.backward()
            batch_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seen += len(batch)
        losses.append(batch_loss)
        if progress is not None:
            progress(step + 1, steps, batch_loss)
        if time.perf_counter() - started > hp.time_budget_s and step + 1 < steps:
            log.warning(
                "time budget of %.0f s reached after %d/%d steps", hp.time_budget_s, step + 1, steps
            )
            stopped_early = True
            break
    train_s = time.perf_counter() - train_started
    val_loss = evaluate_loss(model, val_set, device, bf16)

    version = version or new_version(data_digest(pairs))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "version": version,
        "base_model": base_model,
        "base_name": source.name,
        "prompt": asdict(prompt),
        "hyperparameters": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(hp).items()
        },
    }
    (out / ARTIFACT_INFO).write_text(json.dumps(info, indent=2))
    metrics: dict[str, Any] = {
        "version": version,
        "examples": seen,
        "steps": len(losses),
        "stopped_early": stopped_early,
        "train_loss_first": sum(losses[:5]) / max(1, len(losses[:5])),
        "train_loss_last": sum(losses[-5:]) / max(1, len(losses[-5:])),
        "val_loss_base": round(base_val, 4),
        "val_loss": round(val_loss, 4),
        "val_examples": len(val_set),
        "trainable_params": trainable,
        "train_seconds": round(train_s, 1),
        "examples_per_second": round(seen / train_s, 3) if train_s else None,
        "device": device.type,
        "bf16": bf16,
        "rows": len(pairs),
        "train_questions": len({p.question for p in train_pairs}),
    }
    if source.gguf is not None:
        from finetune.generator.export import merge_lora_into_gguf

        t0 = time.perf_counter()
        merge_lora_into_gguf(
            source.gguf, out, out / MERGED_GGUF, quant=hp.export_quant, name=version
        )
        metrics["gguf_export_seconds"] = round(time.perf_counter() - t0, 1)
        metrics["gguf_quant"] = hp.export_quant
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("generator %s: val loss %.3f -> %.3f", version, base_val, val_loss)
    return metrics
