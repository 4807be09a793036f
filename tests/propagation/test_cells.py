"""The recurrent cells of the ``rnn`` learner: the unitary cell keeps the norm to round-off
whatever its weights; the plain cell does not."""

from __future__ import annotations

import math

import torch

from physml_lang.catalogue.propagation import RNNOptions
from physml_lang.runtime.propagation.cells import PlainCell, UnitaryCell, build_cell
from physml_lang.runtime.propagation.exact import gaussian_packets, inner

F64 = torch.float64
G, H = 32, 0.5


def _packets() -> torch.Tensor:
    x = -8 + (torch.arange(G, dtype=F64) + 0.5) * H
    return gaussian_packets(x, H, torch.tensor([-1.0, 0.5, 2.0], dtype=F64),
                            torch.tensor([1.0, 0.8, 1.5], dtype=F64),
                            torch.tensor([0.5, -1.0, 0.0], dtype=F64))  # fmt: skip


def test_unitary_cell_keeps_the_norm_for_any_weights():
    gen = torch.Generator().manual_seed(0)
    cell = UnitaryCell(G)
    with torch.no_grad():
        cell.S.copy_(torch.randn(G, G, generator=gen, dtype=F64))
        cell.A.copy_(torch.randn(G, G, generator=gen, dtype=F64))
    theta = cell.generator()
    torch.testing.assert_close(theta, theta.mH, rtol=0, atol=0)
    with torch.no_grad():
        states = cell.steps(_packets(), 500)
    norms = inner(states, states, H).real
    assert float((norms - 1).abs().max()) < 1e-11
    assert float((states[:, -1] - _packets()).abs().max()) > 0.1  # it moved


def test_plain_cell_starts_near_the_identity_and_does_not_keep_the_norm():
    gen = torch.Generator().manual_seed(0)
    cell = build_cell(RNNOptions(hidden=16), G, H, gen)
    assert isinstance(cell, PlainCell)
    psi = _packets()
    with torch.no_grad():
        one = cell.steps(psi, 1)[:, 0]
        assert float((one - psi).abs().max()) < 0.05
        for p in cell.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=F64))
        states = cell.steps(psi, 50)
    drift = float((inner(states, states, H).real - 1).abs().max())
    assert drift > 1e-3 and math.isfinite(drift)
    assert isinstance(build_cell(RNNOptions(unitary=True), G, H, gen), UnitaryCell)
