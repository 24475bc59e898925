"""The network: a Hugging Face encoder, pooling, L2 normalisation and a linear head."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from bot.core.bundled import encoder_path
from bot.core.hardware import bf16_fast
from bot.errors import ModelError

log = logging.getLogger("deskbot.intent")

BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"


def resolve_encoder(name: str | None) -> Path:
    """An encoder directory: the bundled one for ``""``/``None``/:data:`BUNDLED_ENCODER`."""
    if not name or name == BUNDLED_ENCODER:
        return encoder_path()
    path = Path(name)
    if not (path / "config.json").is_file():
        raise ModelError(f"encoder {name!r} is not a Hugging Face model directory (no config.json)")
    return path


def load_encoder(name: str | None) -> tuple[PreTrainedTokenizerBase, nn.Module]:
    path = resolve_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load encoder {path}: {exc}") from None
    return tokenizer, encoder


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT calls a transformers API that transformers 5 marks deprecated; not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def bf16_supported() -> bool:
    return bf16_fast()


def autocast(enabled: bool) -> contextlib.AbstractContextManager[object]:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


class IntentNet(nn.Module):
    """Encoder + pooling (+ L2 normalisation) + linear head; returns logits."""

    def __init__(
        self, encoder: nn.Module, num_labels: int, *, pooling: str = "mean", normalize: bool = True
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled = pooled.float()
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def length_sorted_batches(ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length, so each batch pads little."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@torch.inference_mode()
def run_batched(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ids: Sequence[Sequence[int]],
    pad_id: int,
    *,
    batch_size: int = 64,
    bf16: bool = False,
) -> torch.Tensor:
    """Apply ``fn(input_ids, attention_mask)`` to all sequences, batched by length, in order."""
    outputs: list[torch.Tensor] = []
    positions: list[int] = []
    for batch in length_sorted_batches(ids, batch_size):
        input_ids, mask = pad([ids[i] for i in batch], pad_id)
        with autocast(bf16):
            out = fn(input_ids, mask)
        outputs.append(out.float())
        positions.extend(batch)
    stacked = torch.cat(outputs)
    result = torch.empty_like(stacked)
    result[torch.tensor(positions)] = stacked
    return result
