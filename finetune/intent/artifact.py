"""The intent artifact on disk: a plain Hugging Face / PEFT directory.

Layout::

    adapter/                 PEFT LoRA adapter (save_pretrained)
    tokenizer/               the encoder's tokenizer
    head.safetensors         the linear head (weight, bias)
    labels.json              label names in head order
    intent_config.json       base encoder, pooling, temperature, thresholds, version
    hyperparams.json         IntentHyperParams used for training
    metrics.json             dev and test figures, training time, data hash
    frozen_head.safetensors  optional: a head over the frozen encoder's vectors (frozen_head.py)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from bot.errors import InputError, ModelError
from finetune.intent.model import IntentNet, load_encoder, quiet_peft

log = logging.getLogger("deskbot.intent")

FORMAT = 1
CONFIG_FILE = "intent_config.json"
REQUIRED = ("adapter", "tokenizer", "head.safetensors", "labels.json", CONFIG_FILE)


@dataclass(frozen=True)
class IntentConfig:
    version: str
    base_encoder: str
    labels: tuple[str, ...]
    oos_label: str
    pooling: str
    normalize: bool
    max_length: int
    bf16: bool
    temperature: float
    oos_threshold: float
    ambiguity_margin: float
    # The frozen-head mix (finetune/intent/frozen_head.py): the frozen encoder that
    # frozen_head.safetensors reads, the model's weight (1.0: no mix) and the head's temperature.
    frozen_encoder: str | None = None
    frozen_weight: float = 1.0
    frozen_tau: float = 1.0
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> IntentConfig:
        try:
            if data.get("format") != FORMAT:
                raise ModelError(f"{where}: unknown artifact format {data.get('format')!r}")
            return cls(**{**data, "labels": tuple(data["labels"])})
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{where}: malformed {CONFIG_FILE} ({exc})") from None


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_artifact(
    out_dir: str | Path,
    *,
    net: IntentNet,
    tokenizer: PreTrainedTokenizerBase,
    config: IntentConfig,
    hyperparams: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Write the artifact next to ``out_dir`` and rename it into place, so no half is seen.

    ``net.encoder`` must still be the PEFT-wrapped model (before merging).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already exists and is not empty; choose another --out")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if not isinstance(net.encoder, PeftModel):
        raise ModelError("save_artifact needs the unmerged PEFT encoder")
    net.encoder.save_pretrained(tmp / "adapter")
    tokenizer.save_pretrained(tmp / "tokenizer")
    head = {k: v.detach().float().contiguous() for k, v in net.head.state_dict().items()}
    save_file(head, tmp / "head.safetensors")
    write_json(tmp / "labels.json", list(config.labels))
    write_json(tmp / CONFIG_FILE, config.to_dict())
    write_json(tmp / "hyperparams.json", hyperparams)
    write_json(tmp / "metrics.json", metrics)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out


def read_config(path: str | Path) -> IntentConfig:
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"intent model {path} does not exist")
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise ModelError(f"intent model {path} is incomplete: missing {', '.join(missing)}")
    try:
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path / CONFIG_FILE}: unreadable ({exc})") from None
    return IntentConfig.from_dict(data, path / CONFIG_FILE)


def load_artifact(path: str | Path) -> tuple[IntentConfig, PreTrainedTokenizerBase, IntentNet]:
    """Load config, tokenizer and the network with the LoRA weights merged in (eval mode)."""
    path = Path(path)
    config = read_config(path)
    _, encoder = load_encoder(config.base_encoder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
        with quiet_peft():
            peft_encoder = PeftModel.from_pretrained(encoder, path / "adapter")
            merged = peft_encoder.merge_and_unload()
        net = IntentNet(
            merged, len(config.labels), pooling=config.pooling, normalize=config.normalize
        )
        net.head.load_state_dict(load_file(path / "head.safetensors"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load intent model {path}: {exc}") from None
    net.eval()
    return config, tokenizer, net


def read_metrics(path: str | Path) -> dict[str, Any]:
    file = Path(path) / "metrics.json"
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))


def update_metrics(path: str | Path, extra: dict[str, Any]) -> dict[str, Any]:
    metrics = {**read_metrics(path), **extra}
    write_json(Path(path) / "metrics.json", metrics)
    return metrics
