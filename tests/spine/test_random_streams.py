"""Counter-based random streams: the numbers are a function of (seed, path, draw, stream,
element) only, reproduced bit for bit from the integer specification; uniform, independent
across streams and draws; and chain b of a sampler draws the same numbers in any batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physml_lang.runtime.random import (
    RandomStreams,
    _finalise,
    _finalise_functional,
    reference_bits,
)

M64 = (1 << 64) - 1


@pytest.mark.parametrize("seed,path", [(0, ()), (7, (3,)), (2**40 + 5, (1, 2))])
def test_bits_follow_the_integer_specification(seed: int, path: tuple[int, ...]) -> None:
    r = RandomStreams(seed, path=path)
    r.bits((2, 3))  # draw 0
    words = r.bits((4, 5)).reshape(-1)  # draw 1
    for index in (0, 1, 7, 19):
        assert int(words[index]) & M64 == reference_bits(seed, path, 1, index)


def test_a_chain_draws_the_same_numbers_in_any_batch() -> None:
    whole = RandomStreams(1).uniform((10, 6))
    assert torch.equal(RandomStreams(1, first=4).uniform((3, 6)), whole[4:7])
    assert torch.equal(RandomStreams(1).uniform((4, 6)), whole[:4])
    assert torch.equal(RandomStreams(1).streams(4).uniform((3, 6)), whole[4:7])


def test_forks_are_reproducible_and_distinct() -> None:
    root = RandomStreams(3)
    a = root.fork(2).uniform((100,))
    root.uniform((50,))  # draws of the parent do not move its forks
    assert torch.equal(root.fork(2).uniform((100,)), a)
    assert not torch.equal(root.fork(1).uniform((100,)), a)
    assert not torch.equal(RandomStreams(4).fork(2).uniform((100,)), a)


def test_state_restores_the_stream() -> None:
    r = RandomStreams(5)
    r.uniform((3, 4))
    saved = r.state()
    expected = r.uniform((3, 4))
    s = RandomStreams(5)
    s.restore(saved)
    assert torch.equal(s.uniform((3, 4)), expected)


def _z(mean: float, expected: float, sd: float, n: int) -> float:
    return abs(mean - expected) / (sd / math.sqrt(n))


def test_uniform_moments_and_bins() -> None:
    n = 200_000
    for dtype in (torch.float32, torch.float64):
        u = RandomStreams(11).uniform((n,), dtype).double().numpy()
        assert 0.0 <= u.min() and u.max() < 1.0
        assert _z(u.mean(), 0.5, math.sqrt(1 / 12), n) < 4
        counts = np.bincount((u * 20).astype(int), minlength=20)
        chi2 = float(((counts - n / 20) ** 2 / (n / 20)).sum())
        assert chi2 < 19 + 4 * math.sqrt(2 * 19)  # 19 degrees of freedom, 4 sigma


def test_no_correlation_between_streams_draws_or_neighbours() -> None:
    r = RandomStreams(2)
    a = r.uniform((64, 4096)).double() - 0.5
    b = r.uniform((64, 4096)).double() - 0.5
    sd = (1 / 12) / math.sqrt(a.numel())  # the standard error of a mean product of two uniforms
    for prod in (a * b, a[1:] * a[:-1], a[:, 1:] * a[:, :-1]):
        assert abs(float(prod.mean())) < 4 * sd * math.sqrt(a.numel() / prod.numel())


def test_integers_and_normals() -> None:
    n = 300_000
    k = RandomStreams(9).integers(2, 7, (n,))
    assert int(k.min()) == 2 and int(k.max()) == 6
    counts = torch.bincount(k - 2, minlength=5).double()
    chi2 = float(((counts - n / 5) ** 2 / (n / 5)).sum())
    assert chi2 < 4 + 4 * math.sqrt(8)
    x = RandomStreams(9).normal((n,), torch.float64)
    assert _z(float(x.mean()), 0.0, 1.0, n) < 4
    assert _z(float((x**2).mean()), 1.0, math.sqrt(2), n) < 4
    assert _z(float((x**4).mean()), 3.0, math.sqrt(96), n) < 4
    p = RandomStreams(9).permutation(50)
    assert sorted(p.tolist()) == list(range(50))


def test_meta_device_draws_have_the_right_shapes() -> None:
    r = RandomStreams(0, "meta")
    assert r.uniform((3, 4)).shape == (3, 4) and r.uniform((3, 4)).device.type == "meta"
    assert r.integers(0, 5, (2, 2)).dtype == torch.int64
    assert r.normal((5,), torch.float64).dtype == torch.float64


def test_metropolis_chains_do_not_depend_on_the_batch() -> None:
    """Chain b of an Ising sampler evolves identically in a batch of 3 and of 6 chains."""
    import physml_lang
    from physml_lang.catalogue import CATALOGUE

    program = physml_lang.compile(
        "model I(L: int = 6) {\n lattice square(L, L, boundary = periodic)\n"
        " field s: spin on sites\n energy E = -sum(s[i] * s[j] for (i, j) in bonds)\n}\n")
    cm = program.model("I")
    entry = CATALOGUE.samplers.lookup("metropolis", "lattice")
    options = entry.schema(chains=3)
    finals = []
    for chains in (3, 6):
        beta = torch.full((chains,), 0.45, dtype=cm.dtype)
        sampler = entry.implementation(cm, options, beta, RandomStreams(4))
        state = sampler.initial_state()
        for _ in range(10):
            state = sampler.sweep(state)
        finals.append(state["s"])
    assert torch.equal(finals[0], finals[1][:3])


def test_the_fused_rounds_compute_the_eager_ones() -> None:
    """The function the CUDA path compiles gives the eager rounds' bits (checked here eagerly;
    the GPU pass checks the compiled kernel against the CPU)."""
    weyl = torch.arange(1000, dtype=torch.int64) * -7046029254386353131
    offset = -0x1234567890ABCDE
    assert torch.equal(_finalise_functional(weyl, torch.tensor(offset)), _finalise(weyl, offset))
