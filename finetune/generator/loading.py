"""Find and load the generator: bundled GGUF, cached safetensors, HF directories, adapters.

Training loads its base model here and writes the artifact layout read here, and the server
(``bot.generation.load_generator``) loads what training wrote.

The bundled SmolLM2-135M-Instruct GGUF is converted once by transformers' GGUF support and
cached as safetensors under ``settings.cache_dir / "generator"``, so later starts read plain
safetensors. A directory may be a Hugging Face causal-LM directory or a fine-tuned artifact
from ``deskbot train generator`` (a PEFT adapter plus ``model.gguf``, the merged model
quantized for llama.cpp).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.bundled import generator_gguf_path
from bot.errors import ModelError
from finetune.generator.export import requantize_gguf

log = logging.getLogger("deskbot.generation")

MERGED_GGUF = "model.gguf"
ARTIFACT_INFO = "deskbot_generator.json"


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where the weights of one generator come from.

    ``hf_dir`` loads with transformers (``gguf_file`` set when it is a GGUF), ``adapter_dir`` is
    a PEFT adapter applied on top, ``gguf`` is the file llama.cpp runs (None when there is none).
    """

    name: str
    hf_dir: Path
    gguf_file: str | None = None
    adapter_dir: Path | None = None
    gguf: Path | None = None
    # A fine-tuned artifact's deskbot_generator.json: the prompt shape it was trained on and
    # its hyperparameters (served as trained; see bot/generation/local.py).
    info: dict[str, Any] = field(default_factory=dict)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]


def resolve(model: str | os.PathLike[str] = "") -> ModelSource:
    """Describe the generator named by ``model`` (a path), or the bundled one when empty."""
    if not str(model):
        gguf = generator_gguf_path()
        return ModelSource(
            name=f"SmolLM2-135M-Instruct:{gguf.name}",
            hf_dir=gguf.parent,
            gguf_file=gguf.name,
            gguf=gguf,
        )
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name=path.name, hf_dir=path.parent, gguf_file=path.name, gguf=path)
    if not path.is_dir():
        raise ModelError(f"generation model {path} is neither a directory nor a .gguf file")
    if (path / "adapter_config.json").is_file():
        info = _artifact_info(path)
        base = resolve(info.get("base_model", ""))
        merged = path / MERGED_GGUF
        return ModelSource(
            name=f"{base.name}+{path.name}",
            hf_dir=base.hf_dir,
            gguf_file=base.gguf_file,
            adapter_dir=path,
            gguf=merged if merged.is_file() else None,
            info=info,
        )
    if (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        return ModelSource(name=path.name, hf_dir=path, gguf=ggufs[0] if ggufs else None)
    raise ModelError(
        f"generation model {path} holds no config.json, adapter_config.json or .gguf file"
    )


def _artifact_info(path: Path) -> dict[str, Any]:
    file = path / ARTIFACT_INFO
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except ValueError as exc:
        raise ModelError(f"{file}: not valid JSON ({exc})") from None


def cached_hf_dir(source: ModelSource, cache_dir: Path) -> Path:
    """A safetensors directory for ``source``: converted from GGUF once, then reused."""
    if source.gguf_file is None:
        return source.hf_dir
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = source.hf_dir / source.gguf_file
    target = cache_dir / "generator" / f"{gguf.stem}-{_fingerprint(gguf)}"
    if (target / "config.json").is_file():
        return target
    started = time.perf_counter()
    log.info("converting %s to safetensors under %s (once)", gguf, target)
    try:
        model = AutoModelForCausalLM.from_pretrained(source.hf_dir, gguf_file=source.gguf_file)
        tokenizer = AutoTokenizer.from_pretrained(source.hf_dir, gguf_file=source.gguf_file)
    except Exception as exc:
        raise ModelError(f"cannot load the GGUF generator {gguf}: {exc}") from exc
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _save_dequantized(model, tmp)
    tokenizer.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process converted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s", time.perf_counter() - started)
    return target


def cached_gguf(gguf: Path, cache_dir: Path, quant: str) -> Path:
    """The GGUF llama.cpp should run: ``gguf`` re-stored as ``quant`` once, then reused."""
    if quant == "original":
        return gguf
    target = cache_dir / "generator" / f"{gguf.stem}-{_fingerprint(gguf)}.{quant}.gguf"
    if target.is_file():
        return target
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("re-storing %s as %s under %s (once)", gguf.name, quant, target.parent)
    try:
        requantize_gguf(gguf, target, quant=quant)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot convert {gguf} to {quant}: {exc}") from exc
    log.info("converted in %.1f s", time.perf_counter() - started)
    return target


def _save_dequantized(model: Any, directory: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors.

    transformers marks GGUF-loaded models as quantized and refuses ``save_pretrained``, though
    the weights are already dequantized floats; the config minus its quantization entry and
    the tensors (tied ones once) are all a later ``from_pretrained`` needs.
    """
    from safetensors.torch import save_model

    directory.mkdir(parents=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(directory)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(directory)
    save_model(model, str(directory / "model.safetensors"), metadata={"format": "pt"})


def load_tokenizer(source: ModelSource, cache_dir: Path) -> Any:
    from transformers import AutoTokenizer

    directory = cached_hf_dir(source, cache_dir)
    try:
        return AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer from {directory}: {exc}") from exc


def load_transformers_model(source: ModelSource, cache_dir: Path, *, merge: bool = True) -> Any:
    """The causal LM in fp32, with the fine-tuned adapter applied (merged unless asked not to)."""
    import torch
    from transformers import AutoModelForCausalLM

    directory = cached_hf_dir(source, cache_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"cannot load the generator from {directory}: {exc}") from exc
    if source.adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter_dir)
        if merge:
            model = model.merge_and_unload()
    return model.eval()
