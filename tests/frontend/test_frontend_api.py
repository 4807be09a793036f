"""The Python API: ``physml_lang.compile(source_or_path, **params)`` gives the energy as a torch
module, steppable samplers, and ``.run()`` returning the rows ``physml run`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from frontend_util import GOLDEN, TINY, json_rows, physml

import physml_lang
from physml_lang import PhysmlError

GOOD = GOLDEN / "good"


def random_spins(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randint(0, 2, shape, generator=g) - 1).float()


def test_energy_periodic_matches_hand_computation():
    p = physml_lang.compile(GOOD / "ising2d_periodic.phys", L=8, J=0.7, h=0.3)
    s = random_spins((5, 8, 8))
    e = p.energy(s)
    assert e.shape == (5,)
    bonds = s * torch.roll(s, -1, dims=1) + s * torch.roll(s, -1, dims=2)
    expected = -0.7 * bonds.sum(dim=(1, 2)) - 0.3 * s.sum(dim=(1, 2))
    torch.testing.assert_close(e, expected)
    # the ground states: all up has E = -2 J N - h N
    up = torch.ones(1, 8, 8)
    torch.testing.assert_close(p.energy(up), torch.tensor([-2 * 0.7 * 64 - 0.3 * 64]))


def test_energy_open_boundaries_matches_hand_computation():
    p = physml_lang.compile(GOOD / "ising2d_open.phys", L=5, h=0.0)
    s = random_spins((3, 5, 5), seed=1)
    vertical = (s[:, 1:, :] * s[:, :-1, :]).sum((1, 2))
    horizontal = (s[:, :, 1:] * s[:, :, :-1]).sum((1, 2))
    expected = -(vertical + horizontal)
    torch.testing.assert_close(p.energy(s), expected)


def test_energy_potts_matches_hand_computation():
    p = physml_lang.compile(GOOD / "potts3.phys", L=6)
    g = torch.Generator().manual_seed(2)
    s = torch.randint(0, 3, (4, 6, 6), generator=g).float()
    same = (s == torch.roll(s, -1, 1)).float() + (s == torch.roll(s, -1, 2)).float()
    torch.testing.assert_close(p.energy(s), -same.sum((1, 2)))


def test_energy_sk_matches_couplings():
    """Dense path: E = -sum_{i<j} J_ij s_i s_j with J_ij ~ N(0, 1/sqrt(N)) from numpy's seeded
    generator, upper triangle mirrored (checker._random_array)."""
    N = 7
    p = physml_lang.compile(GOOD / "sk.phys", N=N, seed=3)
    rng = np.random.default_rng(3)
    J = np.triu(rng.normal(0, 1 / np.sqrt(N), size=(N, N)), 1)
    s = random_spins((6, N), seed=4)
    expected = -torch.einsum("bi,ij,bj->b", s.double(), torch.tensor(J), s.double())
    torch.testing.assert_close(p.energy(s).double(), expected, rtol=1e-5, atol=1e-5)


def test_energy_triangular_matches_hand_computation():
    p = physml_lang.compile(GOOD / "triangular.phys", L=6)
    s = random_spins((3, 6, 6), seed=5)
    r = torch.roll
    bonds = s * r(s, -1, 1) + s * r(s, -1, 2) + s * r(r(s, -1, 1), 1, 2)  # (1,0), (0,1), (1,-1)
    torch.testing.assert_close(p.energy(s), -bonds.sum((1, 2)))


def test_energy_j1j2_matches_hand_computation():
    p = physml_lang.compile(GOOD / "j1j2.phys", L=6, J1=1.0, J2=0.5)
    s = random_spins((3, 6, 6), seed=6)
    r = torch.roll
    nn = s * r(s, -1, 1) + s * r(s, -1, 2)
    nnn = s * r(r(s, -1, 1), -1, 2) + s * r(r(s, -1, 1), 1, 2)  # (1, 1), (1, -1)
    torch.testing.assert_close(p.energy(s), -nn.sum((1, 2)) - 0.5 * nnn.sum((1, 2)))


def test_compile_from_source_text():
    p = physml_lang.compile(TINY, L=6)
    assert p.energy(torch.ones(2, 6, 6)).tolist() == [-72.0, -72.0]


def test_sampler_can_be_stepped():
    p = physml_lang.compile(GOOD / "ising2d_periodic.phys", L=8)
    sampler = p.sampler("metropolis", T=2.0, chains=4)
    state = sampler.initial_state()
    assert state["s"].shape == (4, 8, 8)
    for _ in range(3):
        state = sampler.sweep(state)
    s = state["s"]
    assert s.shape == (4, 8, 8)
    assert set(s.unique().tolist()) <= {-1.0, 1.0}
    acc = sampler.acceptance()
    assert acc.shape == (4,)
    assert bool(((acc >= 0) & (acc <= 1)).all())
    assert p.energy(s).shape == (4,)


def test_sampler_is_reproducible_by_seed():
    p = physml_lang.compile(GOOD / "ising2d_periodic.phys", L=4)

    def states(seed):
        sampler = p.sampler("metropolis", T=2.0, chains=2, seed=seed)
        state = sampler.initial_state()
        for _ in range(5):
            state = sampler.sweep(state)
        return state["s"]

    assert torch.equal(states(1), states(1))
    assert not torch.equal(states(1), states(2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"T": 0.0}, "> 0"),
        ({"T": -1.0}, "> 0"),
        ({"beta": 0.0}, "> 0"),
        ({}, "exactly one of T or beta"),
        ({"T": 1.0, "chainz": 2}, "chainz"),
    ],
)
def test_sampler_mistakes_are_physml_errors(kwargs, message):
    p = physml_lang.compile(GOOD / "ising2d_periodic.phys", L=4)
    with pytest.raises(PhysmlError) as info:
        p.sampler("metropolis", **kwargs)
    assert message in str(info.value)


def test_unknown_sampler_did_you_mean():
    p = physml_lang.compile(GOOD / "ising2d_periodic.phys", L=4)
    with pytest.raises(PhysmlError, match="did you mean 'metropolis'"):
        p.sampler("metropolsi", T=2.0)


def test_run_returns_the_rows_the_command_writes(tmp_path: Path):
    path = tmp_path / "tiny.phys"
    path.write_text(TINY)
    result = physml_lang.compile(path).run(sets={"T": 2.0}, seed=7, device="cpu")
    code, _, err = physml("run", str(path), "--set", "T=2.0", "--seed", "7", "--device", "cpu",
                          "--out", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert json_rows(result.rows) == summary["rows"]
    assert result.summary["params"] == summary["params"]


def test_compile_params_act_like_set(tmp_path: Path):
    path = tmp_path / "tiny.phys"
    path.write_text(TINY)
    result = physml_lang.compile(path, L=6).run(sets={"T": 2.0}, device="cpu")
    assert result.summary["params"]["L"] == 6


def test_compile_errors_are_physml_errors_with_spans():
    with pytest.raises(PhysmlError) as info:
        physml_lang.compile(TINY.replace("square(", "sqare("), L=4).energy  # noqa: B018
    d = info.value.diagnostics[0]
    assert d.code == "P209" and d.hint == "did you mean 'square'?"
    assert (d.span.line, d.span.column) == (2, 13)
