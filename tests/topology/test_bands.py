"""Exact invariants of two-band Hamiltonians: the discrete winding number of chiral models and
the Fukui-Hatsugai-Suzuki Chern number, checked against closed forms (a pure harmonic winds
w times, Qi-Wu-Zhang's lower band has C = sign(m) for 0 < |m| < 2 and 0 beyond, momenta scaled
by p and q multiply C by p q) and against an independent count (the degree of d/|d| by solid
angles)."""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.topology.bands import (
    QWZ_SIGN,
    berry_flux_sum,
    chern_models,
    chern_number,
    chiral_models,
    fourier_curve,
    harmonic_models,
    k_grid,
    lower_band,
    max_neighbour_angle,
    plaquette_fluxes,
    qwz,
    skyrmion_number,
    winding_number,
)
from physml_lang.runtime.topology.datasets import chern_data, torus_symmetries, winding_data

CPU = "cpu"
F64 = torch.float64


def test_pure_harmonics_wind_their_order():
    k = k_grid(48, device=CPU)
    w = torch.arange(-5, 6, device=CPU)
    d = torch.stack([torch.cos(w[:, None] * k), torch.sin(w[:, None] * k)], 1)
    assert torch.equal(winding_number(d), w.to(F64))
    # an offset circle that misses the origin winds 0
    d0 = torch.stack([2 + torch.cos(k), torch.sin(k)])[None]
    assert winding_number(d0).item() == pytest.approx(0, abs=1e-12)


def test_dominant_harmonic_decides_below_rouche_bound():
    gen = torch.Generator().manual_seed(1)
    targets = torch.arange(-4, 5, device=CPU).repeat(20)
    coeff = chiral_models(targets, 4, 0.95, gen)
    d = fourier_curve(coeff, k_grid(1024, device=CPU))
    assert torch.equal(winding_number(d).round().long(), targets)
    # the coefficients are those of z = d_x + i d_y: z's e^{iwk} term has modulus 1
    z = torch.complex(d[:, 0], d[:, 1])
    c = torch.fft.fft(z, dim=-1) / 1024
    assert torch.allclose(c[torch.arange(targets.numel()), targets % 1024].abs(),
                          torch.ones(targets.numel(), dtype=F64), atol=1e-12)  # fmt: skip


def test_winding_data_labels_are_exact_and_balanced():
    gen = torch.Generator().manual_seed(0)
    x, y = winding_data([-2, 0, 3], 40, 32, 4, 1.5, gen)
    assert x.shape == (120, 2, 32) and x.dtype == torch.float32
    assert torch.equal(torch.bincount(y + 2), torch.tensor([40, 0, 40, 0, 0, 40]))
    assert torch.allclose(x.norm(dim=1), torch.ones(120, 32), atol=1e-6)  # d/|d|
    assert torch.equal(winding_number(x.double()).round().long(), y)


@pytest.mark.parametrize("m, chern", [(-3.0, 0), (-1.5, -1), (-0.5, -1), (0.5, 1), (1.5, 1),
                                      (2.5, 0)])  # fmt: skip
def test_qwz_chern_number_is_sign_m(m, chern):
    d = qwz(torch.tensor([m], dtype=F64, device=CPU), 16)
    assert chern_number(d).item() == pytest.approx(chern, abs=1e-9)
    assert QWZ_SIGN == 1.0
    # the degree of k -> d/|d| (independent: solid angles) is -C in this orientation
    assert skyrmion_number(d).item() == pytest.approx(-chern, abs=1e-9)


def test_scaled_momenta_multiply_the_chern_number():
    m = torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=F64, device=CPU)
    p = torch.tensor([2, -1, 2, 3], device=CPU)
    q = torch.tensor([1, 1, -1, 1], device=CPU)
    c = chern_number(qwz(m, 24, p=p, q=q))
    assert torch.allclose(c, torch.tensor([2.0, -1.0, 2.0, 3.0], dtype=F64), atol=1e-9)


def test_fhs_is_an_integer_gauge_invariant_and_matches_the_degree():
    gen = torch.Generator().manual_seed(3)
    targets = torch.tensor([-2, -1, 0, 1, 2] * 8, device=CPU)
    d = chern_models(targets, 16, 0.6, gen)
    c = chern_number(d)
    assert torch.allclose(c, c.round(), atol=1e-9)
    assert torch.allclose(c, -skyrmion_number(d), atol=1e-9)
    # a random U(1) phase at every k changes nothing (the link variables are gauge invariant)
    u = lower_band(d.movedim(1, -1))
    phase = torch.polar(torch.ones(u.shape[:-1], dtype=F64), 2 * math.pi * torch.rand(
        u.shape[:-1], generator=gen, dtype=F64))  # fmt: skip
    assert torch.allclose(berry_flux_sum(u * phase[..., None]), c, atol=1e-9)
    assert (c.round() == targets).float().mean() > 0.8  # the generator hits its targets


def test_chern_data_labels_are_exact_and_resolved():
    gen = torch.Generator().manual_seed(0)
    x, y = chern_data([-1, 0, 2], 10, 16, 0.3, gen)
    assert x.shape == (30, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(chern_number(x.double()).round().long(), y)
    assert torch.all(max_neighbour_angle(x.double()) < math.pi / 2)  # the grid resolves them
    # FHS's plaquette fluxes are then far from the branch cut at +-pi
    assert plaquette_fluxes(lower_band(x.double().movedim(1, -1))).abs().max() < math.pi / 2


def test_plaquette_fluxes_sum_to_the_chern_number():
    d = qwz(torch.tensor([1.0, -0.5, 2.5], dtype=F64, device=CPU), 16)
    f = plaquette_fluxes(lower_band(d.movedim(1, -1)))
    assert f.shape == (3, 16, 16)
    assert torch.allclose(f.sum((-2, -1)) / (2 * math.pi), chern_number(d), atol=1e-12)


def test_harmonic_family_holds_small_and_large_chern_numbers():
    gen = torch.Generator().manual_seed(0)
    d = harmonic_models(2000, 16, 2, 0.3, gen, device=CPU)
    assert d.shape == (2000, 3, 16, 16)
    c = chern_number(d)
    assert torch.allclose(c, c.round(), atol=1e-9)
    # where the grid resolves the model, FHS and the degree by solid angles agree
    resolved = max_neighbour_angle(d / d.norm(dim=1, keepdim=True)) < math.pi / 2
    assert resolved.float().mean() > 0.2
    assert torch.allclose(c[resolved], -skyrmion_number(d[resolved]), atol=1e-9)
    seen = set(c[resolved].round().long().tolist())
    assert {-2, -1, 0, 1, 2} <= seen  # p q up to 4 and several cones of either sign


def test_torus_symmetries_transform_the_chern_number_as_they_should():
    gen = torch.Generator().manual_seed(2)
    x, y = chern_data([-2, -1, 0, 1, 2], 6, 16, 0.3, gen)
    for _ in range(3):
        xa, ya = torus_symmetries(x, y, gen)
        assert torch.allclose(xa.norm(dim=1), torch.ones_like(xa[:, 0]), atol=1e-5)
        assert torch.equal(chern_number(xa.double()).round().long(), ya)
    assert not torch.equal(ya, y)  # some reflections flipped the sign
