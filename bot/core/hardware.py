"""What this CPU does fast. Checked once; ``DESKBOT_BF16=0|1`` overrides the check."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def bf16_fast() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them torch emulates bf16 and it is much slower than float32, so callers fall
    back. The CPU's flags decide: torch's own check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) says yes on any AVX-512 CPU, because
    oneDNN *can* run bf16 there, not because it is fast; it is used only where the flags
    cannot be read.
    """
    forced = os.environ.get("DESKBOT_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    cpuinfo = _cpuinfo()
    if cpuinfo is not None:
        return cpu_has_native_bf16(cpuinfo)
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError, ImportError):
        return False


def cpu_has_native_bf16(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo`` text lists a native bf16 instruction set."""
    return bool(_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


@functools.cache
def int8_fast() -> bool:
    """True on x86 CPUs with VNNI (int8 dot products) and a torch with oneDNN."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    return bool(_flags(_cpuinfo() or "") & {"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def has_amx() -> bool:
    """True on CPUs with AMX tiles (Intel Sapphire Rapids and later)."""
    return cpu_has_amx(_cpuinfo() or "")


def cpu_has_amx(cpuinfo: str) -> bool:
    return "amx_tile" in _flags(cpuinfo)


@functools.cache
def has_avx512() -> bool:
    """True on CPUs with AVX-512 (foundation instructions)."""
    return cpu_has_avx512(_cpuinfo() or "")


def cpu_has_avx512(cpuinfo: str) -> bool:
    return "avx512f" in _flags(cpuinfo)


@functools.cache
def _cpuinfo() -> str | None:
    """``/proc/cpuinfo``, read once; ``None`` where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def _flags(cpuinfo: str) -> set[str]:
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
