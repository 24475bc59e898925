"""Fine-tune an encoder with LoRA into an intent classifier, calibrate it and save the artifact."""

from __future__ import annotations

import logging
import math
import os
import random
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from tqdm.auto import tqdm

from bot.errors import InputError
from finetune.intent.artifact import CONFIG_FILE, IntentConfig, save_artifact, write_json
from finetune.intent.calibrate import (
    choose_ambiguity_margin,
    choose_oos_threshold,
    fit_temperature,
)
from finetune.intent.classifier import IntentClassifier
from finetune.intent.data import Examples, ExamplesLike, as_examples, check_trainable, split_dev
from finetune.intent.frozen_head import (
    FrozenHead,
    choose_mix,
    class_means,
    embedder_for,
    linear,
    save_head,
)
from finetune.intent.hparams import IntentHyperParams
from finetune.intent.model import (
    BUNDLED_ENCODER,
    IntentNet,
    autocast,
    bf16_supported,
    load_encoder,
    pad,
    quiet_peft,
    run_batched,
    tokenize,
)

log = logging.getLogger("deskbot.intent")


def new_version(data_hash: str) -> str:
    """Time, data hash and a random tag: two runs on the same data in one second differ."""
    return f"intent-{datetime.now(UTC):%Y%m%d-%H%M%S}-{data_hash[:8]}-{secrets.token_hex(2)}"


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, pool_batches: int, rng: random.Random
) -> Iterator[list[int]]:
    """Shuffled batches of similar-length examples (sorted inside shuffled pools)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * max(1, pool_batches)
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches


def warmup_cosine(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


@torch.no_grad()
def prototype_head(
    net: IntentNet,
    ids: list[list[int]],
    targets: torch.Tensor,
    pad_id: int,
    scale: float,
    bf16: bool,
) -> None:
    """Set the head to scaled class-mean embeddings: a nearest-prototype classifier."""
    emb = run_batched(net.embed, ids, pad_id, batch_size=128, bf16=bf16)
    num = net.head.out_features
    protos = torch.zeros(num, emb.shape[1]).index_add_(0, targets, emb)
    protos = torch.nn.functional.normalize(protos, dim=-1)
    net.head.weight.copy_(protos * scale)
    net.head.bias.zero_()


def train_intent(
    data: ExamplesLike,
    hp: IntentHyperParams,
    out_dir: str | Path,
    progress: bool = True,
    *,
    dev: ExamplesLike | None = None,
    test: ExamplesLike | None = None,
    text_col: str = "text",
    label_col: str = "intent",
    oos_label: str = "oos",
    base_encoder: str | None = None,
    version: str | None = None,
) -> Path:
    """Train, calibrate and save an intent model; returns the artifact directory ``out_dir``.

    ``data``/``dev``/``test`` are :class:`Examples`, ``(text, label)`` pairs or CSV paths.
    Without ``dev``, a stratified ``hp.dev_fraction`` of ``data`` is held out. ``test``
    figures, when given, go into ``metrics.json``.
    """
    started = time.perf_counter()
    examples = as_examples(data, text_col, label_col)
    check_trainable(examples)
    if dev is None:
        train_ex, dev_ex = split_dev(examples, hp.dev_fraction, hp.seed)
    else:
        train_ex, dev_ex = examples, as_examples(dev, text_col, label_col)
    check_trainable(train_ex, "training data after holding out the dev split")
    labels = tuple(sorted(train_ex.counts()))
    unknown = sorted(set(dev_ex.labels) - set(labels))
    if unknown:
        log.warning("dev intents absent from training are dropped: %s", ", ".join(unknown))
        dev_ex = dev_ex.subset(i for i, lab in enumerate(dev_ex.labels) if lab in labels)
    if len(dev_ex) == 0:
        raise InputError("the dev set shares no intent with the training data")
    data_hash = (
        examples.digest()
        if dev is None
        else Examples(examples.texts + dev_ex.texts, examples.labels + dev_ex.labels).digest()
    )
    version = version or new_version(data_hash)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already exists and is not empty; choose another output directory")

    label_id = {lab: i for i, lab in enumerate(labels)}
    bf16 = hp.bf16 and bf16_supported()
    torch.manual_seed(hp.seed)
    rng = random.Random(hp.seed)
    encoder_name = base_encoder or BUNDLED_ENCODER
    tokenizer, encoder = load_encoder(encoder_name)
    pad_id = tokenizer.pad_token_id or 0
    net = IntentNet(encoder, len(labels), pooling=hp.pooling, normalize=hp.normalize)
    train_ids = tokenize(tokenizer, train_ex.texts, hp.max_length)
    dev_ids = tokenize(tokenizer, dev_ex.texts, hp.max_length)
    targets = torch.tensor([label_id[lab] for lab in train_ex.labels])
    dev_targets = torch.tensor([label_id[lab] for lab in dev_ex.labels])

    net.eval()
    prototype_head(net, train_ids, targets, pad_id, hp.head_init_scale, bf16)
    lora = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.lora_targets),
    )
    with quiet_peft():
        net.encoder = get_peft_model(encoder, lora)
    lora_params = [p for p in net.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": lora_params, "lr": hp.lr},
            {"params": list(net.head.parameters()), "lr": hp.head_lr},
        ],
        weight_decay=hp.weight_decay,
    )
    lengths = [len(x) for x in train_ids]
    steps_per_epoch = math.ceil(len(train_ids) / hp.batch_size)
    total = steps_per_epoch * hp.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(max(1, int(hp.warmup_ratio * total)), total)
    )
    log.info(
        "training %d intents on %d examples (dev %d), %d epochs, %d trainable parameters",
        len(labels),
        len(train_ex),
        len(dev_ex),
        hp.epochs,
        sum(p.numel() for p in lora_params) + sum(p.numel() for p in net.head.parameters()),
    )

    history: list[dict[str, float]] = []
    bar = tqdm(total=total, desc="intent", unit="batch", disable=not progress, dynamic_ncols=True)
    dev_acc = float("nan")
    for epoch in range(1, hp.epochs + 1):
        net.train()
        running = 0.0
        seen = 0
        for batch in bucketed_batches(lengths, hp.batch_size, hp.bucket_pool_batches, rng):
            input_ids, mask = pad([train_ids[i] for i in batch], pad_id)
            with autocast(bf16):
                logits = net(input_ids, mask)
            loss = torch.nn.functional.cross_entropy(
                logits.float(), targets[batch], label_smoothing=hp.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + list(net.head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(batch)
            seen += len(batch)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{running / seen:.4f}", dev_acc=f"{dev_acc:.4f}")
        net.eval()
        dev_logits = run_batched(net, dev_ids, pad_id, bf16=bf16)
        dev_acc = float((dev_logits.argmax(-1) == dev_targets).float().mean())
        bar.set_postfix(epoch=epoch, loss=f"{running / seen:.4f}", dev_acc=f"{dev_acc:.4f}")
        history.append({"epoch": epoch, "loss": running / seen, "dev_accuracy": dev_acc})
        log.info("epoch %d: loss %.4f, dev accuracy %.4f", epoch, running / seen, dev_acc)
    bar.close()
    train_seconds = time.perf_counter() - started

    frozen_encoder = None
    if hp.frozen_mix:
        log.info("frozen heads: embedding %d examples with the frozen encoder", len(train_ex))
        embedder = embedder_for(encoder_name)
        frozen_encoder = embedder.name
        frozen_vectors = embedder.encode(list(train_ex.texts))
    config = IntentConfig(
        version=version,
        base_encoder=encoder_name,
        labels=labels,
        oos_label=oos_label,
        pooling=hp.pooling,
        normalize=hp.normalize,
        max_length=hp.max_length,
        bf16=hp.bf16,
        temperature=1.0,
        oos_threshold=0.0,
        ambiguity_margin=0.0,
        frozen_encoder=frozen_encoder,
    )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_artifact(
        tmp, net=net, tokenizer=tokenizer, config=config, hyperparams=hp.to_dict(), metrics={}
    )
    heads: dict[str, FrozenHead] = {}
    if frozen_encoder:
        y = targets.numpy()
        heads = {
            "prototypes": class_means(frozen_vectors, y, len(labels)),
            "linear": linear(frozen_vectors, y, len(labels), seed=hp.seed),
        }
        save_head(tmp, heads["prototypes"])  # replaced by the head the dev split picks
    config, metrics = _calibrate_and_measure(
        tmp, config, hp, dev_ex, test, text_col, label_col, heads
    )
    metrics.update(
        {
            "version": version,
            "base_encoder": encoder_name,
            "intents": len(labels),
            "train_examples": len(train_ex),
            "dev_examples": len(dev_ex),
            "data_sha256": data_hash,
            "training_seconds": round(train_seconds, 1),
            "history": history,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    write_json(tmp / CONFIG_FILE, config.to_dict())
    write_json(tmp / "metrics.json", metrics)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    log.info("saved intent model %s to %s (%.0f s)", version, out, time.perf_counter() - started)
    return out


def _calibrate_and_measure(
    path: Path,
    config: IntentConfig,
    hp: IntentHyperParams,
    dev_ex: Examples,
    test: ExamplesLike | None,
    text_col: str,
    label_col: str,
    heads: dict[str, FrozenHead],
) -> tuple[IntentConfig, dict[str, Any]]:
    """Fit temperature and thresholds on dev logits computed exactly as the runtime will."""
    from finetune.intent.evaluate import evaluate

    classifier = IntentClassifier.load(path)
    logits = classifier.logits(list(dev_ex.texts))
    label_id = {lab: i for i, lab in enumerate(config.labels)}
    targets = torch.tensor([label_id[lab] for lab in dev_ex.labels])
    temperature = fit_temperature(logits, targets)
    probs = torch.softmax(logits / temperature, dim=-1)
    model_top1 = float((probs.argmax(-1) == targets).float().mean())
    mixing: dict[str, Any] = {}
    if heads:
        vectors = classifier.plain_vectors(list(dev_ex.texts))
        choice = choose_mix(probs, vectors, heads, targets)
        save_head(path, heads[choice.kind])
        classifier.frozen_head = heads[choice.kind]
        config = replace(config, frozen_weight=choice.weight, frozen_tau=choice.tau)
        classifier.config = config
        probs = classifier.mixed(probs, vectors)
        mixing = {
            "frozen_head": choice.kind,
            "frozen_weight": choice.weight,
            "frozen_tau": choice.tau,
            "dev_top1_model_only": model_top1,
            "dev_top1_mixed": choice.accuracy,
        }
    top2 = probs.topk(min(2, probs.shape[1]), dim=-1)
    confidence = top2.values[:, 0].numpy()
    predicted = top2.indices[:, 0].numpy()
    margin = (top2.values[:, 0] - top2.values[:, -1]).numpy()
    gold = targets.numpy()
    oos_index = label_id.get(config.oos_label)
    threshold = choose_oos_threshold(confidence, predicted, gold, oos_index, hp.oos_keep_correct)
    in_scope = confidence >= threshold
    if oos_index is not None:
        in_scope &= predicted != oos_index
    ambiguity = choose_ambiguity_margin(
        margin[in_scope],
        (predicted == gold)[in_scope].astype(float),
        hp.confident_accuracy,
        hp.max_ambiguity_margin,
    )
    config = replace(
        config, temperature=temperature, oos_threshold=threshold, ambiguity_margin=ambiguity
    )
    classifier.config = config
    metrics: dict[str, Any] = {
        "calibration": {
            "temperature": temperature,
            "oos_threshold": threshold,
            "ambiguity_margin": ambiguity,
            **mixing,
            "dev_nll_before": float(torch.nn.functional.cross_entropy(logits, targets)),
            "dev_nll_after": float(
                torch.nn.functional.cross_entropy(logits / temperature, targets)
            ),
        },
        "dev": evaluate(classifier, dev_ex.texts, dev_ex.labels, config.oos_label),
        "dev_top1_accuracy": float(np.mean(predicted == gold)),
    }
    if test is not None:
        test_ex = as_examples(test, text_col, label_col)
        metrics["test"] = evaluate(classifier, test_ex.texts, test_ex.labels, config.oos_label)
    return config, metrics
