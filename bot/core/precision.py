"""Inference precision for the encoders (retrieval embedder and intent classifier).

``auto`` picks what is fastest here without hurting accuracy measurably:

- ``bf16``: autocast to bfloat16, on CPUs with AMX: oneDNN runs bf16 products on the AMX
  tiles, faster there than int8 or float32.
- ``int8``: every ``nn.Linear`` in int8 (:class:`Int8Linear`: weights per output channel,
  activations per row, so results do not depend on the batch), when the CPU has VNNI and no
  AMX: faster than float32, with vectors close to the float32 ones.
- ``bf16`` also on other CPUs with native bf16 and no VNNI.
- ``fp32`` otherwise.

Training always runs in float32/bf16 (see ``finetune``); this is for serving and for encoding
an index, which must use the same precision as its queries.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import nn

from bot.core.hardware import bf16_fast, has_amx, int8_fast

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")


def resolve(precision: str) -> Literal["fp32", "bf16", "int8"]:
    """The concrete precision for a setting value; ``auto`` asks the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if has_amx() and bf16_fast():
            return "bf16"
        if int8_fast():
            return "int8"
        return "bf16" if bf16_fast() else "fp32"
    return precision  # type: ignore[return-value]


class Int8Linear(nn.Module):
    """A Linear layer computing in int8: weights per output channel, activations per row.

    Each row (token) is quantised with its own scale, so a text's result does not depend on
    the other texts in its batch. torch's ``quantize_dynamic`` uses one scale for the whole
    batch: there a query's vector moved by cosine 0.97 with its batch neighbours; here by
    < 0.003, and it stays within cosine 0.993 of float32 (mean 0.9976, Banking77 queries).
    The product runs in ``torch._int_mm`` (oneDNN's VNNI kernels).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp(min=1e-8) / 127
        self.register_buffer("weight_scale", scale)
        self.register_buffer(
            "weight_t", torch.round(weight / scale[:, None]).to(torch.int8).t().contiguous()
        )
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features = linear.in_features
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        scale = rows.abs().amax(1, keepdim=True).clamp_(min=1e-8).div_(127)
        quantised = torch.round(rows / scale).to(torch.int8)
        out = torch._int_mm(quantised, self.weight_t).float().mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(module: nn.Module) -> nn.Module:
    """``module`` (changed in place) with every ``nn.Linear`` replaced by :class:`Int8Linear`."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
        else:
            quantize_int8(child)
    return module.eval()


def bf16_weights(module: nn.Module) -> nn.Module:
    """``module`` (changed in place) with every ``nn.Linear`` stored in bfloat16.

    Under :func:`autocast` a Linear computes in bfloat16 anyway, but autocast converts a float32
    weight again on every call, which for a short text costs more than the product itself.
    Stored converted, the results are the same to the bit and the per-call copy is gone.

    For serving processes only: once such a module has encoded many texts, training in the
    same process ran markedly slower on an AMX CPU (measured; the cause was not found), and
    the server never trains in its own process.
    """
    for child in module.modules():
        if isinstance(child, nn.Linear):
            child.to(torch.bfloat16)
    return module.eval()


def prepare(module: nn.Module, precision: str, *, serving: bool = False) -> nn.Module:
    """``module`` (changed in place) readied for inference at ``precision`` (a resolved one):
    its Linear layers in int8, or, in a serving process, stored in bfloat16 for
    :func:`autocast`."""
    if precision == "int8":
        return quantize_int8(module)
    if precision == "bf16" and serving:
        return bf16_weights(module)
    return module.eval()


def autocast(precision: str) -> contextlib.AbstractContextManager[object]:
    """The autocast context a forward pass runs in (bf16 only)."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
