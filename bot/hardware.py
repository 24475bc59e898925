"""What this CPU does fast. Checked once; ``DESKBOT_BF16=0|1`` overrides the check."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def bf16_fast() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them torch emulates bf16 and it is slower than float32, so callers fall back.
    """
    forced = os.environ.get("DESKBOT_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError, ImportError):
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
