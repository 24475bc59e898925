"""Merge a LoRA adapter into the base GGUF so llama.cpp runs the fine-tuned model at full speed.

The merge happens in GGUF space: every tensor is copied unchanged except those the adapter
touches, which are dequantized, given ``scale * B @ A`` and quantized again (Q8_0 by default:
a Q4 step is coarser than most of a LoRA update). llama.cpp's converter stores the rows of
``attn_q``/``attn_k`` permuted for its RoPE layout, so the update is permuted the same way.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.quants import dequantize, quantize
from safetensors.numpy import load_file

from bot.errors import ModelError

log = logging.getLogger("deskbot.finetune")


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` for q/k rows (n_head: query or key/value heads)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        raise ModelError(f"the GGUF file lacks {key}")
    return field.contents()


def lora_deltas(adapter_dir: Path) -> dict[str, np.ndarray]:
    """``module name -> scale * B @ A`` (float32, shape out x in) from a PEFT adapter."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    deltas: dict[str, np.ndarray] = {}
    for key, a in weights.items():
        if ".lora_A." not in key:
            continue
        b = weights[key.replace(".lora_A.", ".lora_B.")]
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        deltas[module] = scale * (b.astype(np.float32) @ a.astype(np.float32))
    if not deltas:
        raise ModelError(f"{adapter_dir} holds no LoRA weights")
    return deltas


def merge_lora_into_gguf(
    base: Path, adapter_dir: Path, out: Path, *, quant: str = "Q8_0", name: str | None = None
) -> Path:
    """Write ``out``: ``base`` with the adapter merged. Returns ``out``."""
    reader = gguf.GGUFReader(str(base))
    arch = str(_field(reader, gguf.Keys.General.ARCHITECTURE))
    if arch != "llama":
        raise ModelError(f"merging into GGUF supports llama-architecture models, not {arch}")
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    by_tensor: dict[str, np.ndarray] = {}
    for module, delta in lora_deltas(adapter_dir).items():
        mapped = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if mapped is None:
            raise ModelError(f"no GGUF tensor for the adapted module {module}")
        if mapped.endswith("attn_q.weight"):
            delta = _permute(delta, n_head)
        elif mapped.endswith("attn_k.weight"):
            delta = _permute(delta, n_head_kv)
        by_tensor[mapped] = delta
    _rewrite(reader, out, by_tensor, quant, name=name)
    log.info("wrote %s (%d tensors merged, %s)", out, len(by_tensor), quant)
    return out


# 4-bit formats whose matrix products are slow to unpack; requantize_gguf turns them to Q8_0.
_SLOW_PREFILL = {
    gguf.GGMLQuantizationType.Q4_0,
    gguf.GGMLQuantizationType.Q4_1,
    gguf.GGMLQuantizationType.Q5_0,
    gguf.GGMLQuantizationType.Q5_1,
}


def requantize_gguf(base: Path, out: Path, *, quant: str = "Q8_0") -> Path:
    """Write ``out``: ``base`` with its 4/5-bit tensors stored as ``quant`` instead.

    Q8_0 makes llama.cpp's prompt processing faster for slightly slower decoding; prompts of
    retrieved answers are long and replies short, so a reply arrives sooner. The values are
    those of the 4-bit file: nothing is gained or lost.
    """
    reader = gguf.GGUFReader(str(base))
    _rewrite(reader, out, {}, quant, requantize=_SLOW_PREFILL)
    log.info("wrote %s (%s)", out, quant)
    return out


def _rewrite(
    reader: gguf.GGUFReader,
    out: Path,
    deltas: dict[str, np.ndarray],
    quant: str,
    *,
    name: str | None = None,
    requantize: set[gguf.GGMLQuantizationType] | frozenset[gguf.GGMLQuantizationType] = frozenset(),
) -> None:
    """Copy ``reader``'s model to ``out``, adding ``deltas`` to (and requantizing) tensors."""
    arch = str(_field(reader, gguf.Keys.General.ARCHITECTURE))
    target = gguf.GGMLQuantizationType[quant.upper()]
    deltas = dict(deltas)
    tmp = out.with_name(f"{out.name}.part{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.NAME and name:
            value = name
        writer.add_key_value(field.name, value, kind, sub_type=sub)

    tensors: list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]] = []
    for tensor in reader.tensors:
        delta = deltas.pop(tensor.name, None)
        if delta is None and tensor.tensor_type not in requantize:
            tensors.append((tensor.name, tensor.data, tensor.tensor_type))
            continue
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if delta is not None:
            if weights.shape != delta.shape:
                raise ModelError(
                    f"{tensor.name}: base shape {weights.shape} but adapter update {delta.shape}"
                )
            weights = weights + delta
        if target == gguf.GGMLQuantizationType.F32:
            data = weights
        elif target == gguf.GGMLQuantizationType.F16:
            data = weights.astype(np.float16)
        else:
            data = quantize(weights, target)
        tensors.append((tensor.name, data, target))
    if deltas:
        raise ModelError(f"the base GGUF has no tensors {sorted(deltas)}")
    for tname, data, qtype in tensors:
        writer.add_tensor_info(tname, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    tmp.replace(out)  # a crash mid-write leaves no half file under the final name
