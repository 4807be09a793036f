"""The compiled CPU draws of RandomStreams (runtime/random_kernels.py): uniforms and
Box-Muller normals bit-identical to the unfused torch path, for every shape (across the cache
blocks of the normals too), dtype and slice of streams, and built from the integer
specification of runtime/random.py."""

from __future__ import annotations

import math

import pytest
import torch

import physml_lang.runtime.random as random_module
from physml_lang.runtime.random import RandomStreams, reference_bits

pytest.importorskip("numba")


def unfused(streams: RandomStreams, what: str, shape: tuple[int, ...], dtype: torch.dtype):
    """The draw through the torch path (the compiled kernel switched off)."""
    saved = list(random_module._CPU_KERNEL)
    random_module._CPU_KERNEL[:] = [None]
    try:
        return getattr(streams, what)(shape, dtype)
    finally:
        random_module._CPU_KERNEL[:] = saved


@pytest.mark.parametrize("shape", [(1,), (7,), (5, 3), (1000, 6), (33, 2, 5), (0, 3), (), (40001, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("first", [0, 17])
def test_fused_draws_equal_the_torch_path_bit_for_bit(shape, dtype, first) -> None:
    fused, plain = (RandomStreams(5, path=(2,), first=first) for _ in range(2))
    for what in ("normal", "uniform", "normal"):
        a = getattr(fused, what)(shape, dtype)
        b = unfused(plain, what, shape, dtype)
        assert a.dtype == b.dtype == dtype and a.shape == b.shape == shape
        assert torch.equal(a, b), (what, shape, dtype, first)
    assert fused.draws == plain.draws == 5  # a normal consumes two draws, as before


def test_fused_uniforms_follow_the_integer_specification() -> None:
    u = RandomStreams(9, path=(1,)).uniform((4, 5), torch.float64).reshape(-1)
    for index in (0, 3, 19):
        assert float(u[index]) == (reference_bits(9, (1,), 0, index) >> 11) * 2.0**-53


def test_fused_normals_are_standard_normal() -> None:
    z = RandomStreams(3).normal((200_000,), torch.float64)
    assert abs(float(z.mean())) < 5 / math.sqrt(z.numel())
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / z.numel())
    assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / z.numel())
