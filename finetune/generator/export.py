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
from pathlib import Path

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


def _field(reader: gguf.GGUFReader, key: str) -> object:
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
    n_blocks = int(_field(reader, f"{arch}.block_count"))  # type: ignore[call-overload]
    n_head = int(_field(reader, f"{arch}.attention.head_count"))  # type: ignore[call-overload]
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv"))  # type: ignore[call-overload]
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
    target = gguf.GGMLQuantizationType[quant.upper()]

    writer = gguf.GGUFWriter(str(out), arch=arch, endianess=reader.endianess)
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
        delta = by_tensor.pop(tensor.name, None)
        if delta is None:
            tensors.append((tensor.name, tensor.data, tensor.tensor_type))
            continue
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if weights.shape != delta.shape:
            raise ModelError(
                f"{tensor.name}: base shape {weights.shape} but adapter update {delta.shape}"
            )
        merged = weights + delta
        if target == gguf.GGMLQuantizationType.F32:
            data = merged
        elif target == gguf.GGMLQuantizationType.F16:
            data = merged.astype(np.float16)
        else:
            data = quantize(merged, target)
        tensors.append((tensor.name, data, target))
    if by_tensor:
        raise ModelError(f"the base GGUF has no tensors {sorted(by_tensor)}")
    for tname, data, qtype in tensors:
        writer.add_tensor_info(tname, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    log.info("wrote %s (%d tensors merged, %s)", out, len(tensors), quant)
    return out
