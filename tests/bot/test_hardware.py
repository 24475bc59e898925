"""The bf16 decision reads the CPU's flags, not torch's "oneDNN could do it" answer."""

from __future__ import annotations

import pytest

from bot.core import hardware

ICELAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni avx512_vbmi\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"


def test_avx512_without_bf16_is_not_fast() -> None:
    assert not hardware.cpu_has_native_bf16(ICELAKE)


def test_avx512_bf16_or_amx_is_fast() -> None:
    assert hardware.cpu_has_native_bf16(SAPPHIRE)
    assert hardware.cpu_has_native_bf16("flags\t: sse amx_bf16\n")


def test_no_flags_line_is_not_fast() -> None:
    assert not hardware.cpu_has_native_bf16("processor\t: 0\n")


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("1", True)])
def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("DESKBOT_BF16", value)
    hardware.bf16_fast.cache_clear()
    try:
        assert hardware.bf16_fast() is expected
    finally:
        hardware.bf16_fast.cache_clear()


def test_int8_linear_matches_float32_row_by_row() -> None:
    import torch

    from bot.core.precision import Int8Linear, resolve

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(2, 7, 64)
    x[1] *= 50  # a row with much larger values must not coarsen the other rows
    exact = linear(x)
    got = Int8Linear(linear)(x)
    assert got.shape == exact.shape
    cos = torch.nn.functional.cosine_similarity(got.flatten(0, 1), exact.flatten(0, 1), dim=-1)
    assert cos.min() > 0.999
    alone = Int8Linear(linear)(x[:1])
    torch.testing.assert_close(alone, got[:1])
    assert resolve("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve("fp8")


@pytest.mark.parametrize(
    ("amx", "bf16", "vnni", "expected"),
    [
        (True, True, True, "bf16"),  # Sapphire Rapids: AMX tiles beat int8 VNNI
        (False, True, True, "int8"),  # AVX512-BF16 without AMX (Cooper Lake)
        (False, False, True, "int8"),  # Ice Lake
        (False, True, False, "bf16"),
        (False, False, False, "fp32"),
    ],
)
def test_auto_precision_follows_the_cpu(
    monkeypatch: pytest.MonkeyPatch, amx: bool, bf16: bool, vnni: bool, expected: str
) -> None:
    from bot.core import precision

    monkeypatch.setattr(precision, "has_amx", lambda: amx)
    monkeypatch.setattr(precision, "bf16_fast", lambda: bf16)
    monkeypatch.setattr(precision, "int8_fast", lambda: vnni)
    assert precision.resolve("auto") == expected
    assert precision.resolve("int8") == "int8"  # an explicit setting is never second-guessed


def test_amx_is_read_from_the_tile_flag() -> None:
    assert hardware.cpu_has_amx(SAPPHIRE)
    assert not hardware.cpu_has_amx(ICELAKE)
    assert not hardware.cpu_has_amx("processor\t: 0\n")


ZEN3 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma f16c bmi2 sha_ni vaes\n"


def test_avx512_is_read_from_the_foundation_flag() -> None:
    assert hardware.cpu_has_avx512(ICELAKE)
    assert hardware.cpu_has_avx512(SAPPHIRE)
    assert not hardware.cpu_has_avx512(ZEN3)


@pytest.mark.parametrize(
    ("setting", "avx512", "expected"),
    [
        ("auto", False, True),  # AVX2 only: flash attention paid there
        ("auto", True, False),  # AVX-512: it cost a fifth of the decode speed
        ("on", True, True),  # an explicit setting is never second-guessed
        ("off", False, False),
    ],
)
def test_flash_attention_follows_the_cpu_unless_set(
    monkeypatch: pytest.MonkeyPatch, setting: str, avx512: bool, expected: bool
) -> None:
    from bot.generation import engine_llama

    monkeypatch.setattr(engine_llama, "has_avx512", lambda: avx512)
    assert engine_llama.use_flash_attention(setting) is expected
