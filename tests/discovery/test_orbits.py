"""Orbit measures, batched over trajectories: periods of analytic orbits, Kepler's semi-major
axis and period against the exact two-body values."""

from __future__ import annotations

import math

import torch

from physml_lang.runtime.discovery.orbits import orbit_measures, unwrapped, winding_period

F64 = torch.float64


def test_unwrapped_angles_and_winding_periods():
    t = torch.linspace(0, 10, 501, dtype=F64)
    omega = torch.tensor([1.0, 2.0, 0.3], dtype=F64)[:, None]
    angle = torch.remainder(omega * t, 2 * math.pi) - math.pi
    phase = unwrapped(angle)
    assert torch.allclose(phase, omega * t, atol=1e-12)
    period, turns = winding_period(t, phase)
    assert turns.tolist() == [1.0, 3.0, 0.0]
    assert torch.allclose(period[:2], 2 * math.pi / omega[:2, 0], rtol=1e-12)
    assert torch.isnan(period[2])  # 0.3 rad/s turns less than once in 10 s


def test_oscillator_period_and_amplitude():
    """q = A cos(w t + phi), p = -A w sin(w t + phi): period 2 pi / w, amplitude A."""
    t = torch.linspace(0, 20, 2001, dtype=F64)
    A = torch.tensor([0.5, 1.0, 2.0], dtype=F64)[:, None]
    w = torch.tensor([1.0, 2.5, 0.7], dtype=F64)[:, None]
    phi = torch.tensor([0.0, 1.0, 2.0], dtype=F64)[:, None]
    q = (A * torch.cos(w * t + phi)).unsqueeze(-1)
    p = (-A * w * torch.sin(w * t + phi)).unsqueeze(-1)
    m = orbit_measures(t, q, p, ())
    assert torch.allclose(m.period, 2 * math.pi / w[:, 0], rtol=1e-6)
    assert torch.allclose(m.amplitude, A[:, 0], rtol=1e-4)
    assert m.semi_major_axis is None


def test_kepler_ellipses():
    """Two bodies (G = m = 1) on ellipses of eccentricity e: the separation r(E) = a (1 - e cos
    E), time t = (E - e sin E) / n with n = sqrt(G M / a^3): measured a and P against exact."""
    a = torch.tensor([1.0, 2.0, 3.0], dtype=F64)[:, None]
    e = torch.tensor([0.0, 0.3, 0.6], dtype=F64)[:, None]
    n = torch.sqrt(2.0 / a**3)  # G (m1 + m2) = 2
    t = torch.linspace(0, 40, 4001, dtype=F64)
    # solve Kepler's equation M = E - e sin E by Newton iterations (batched)
    M = n * t
    E = M.clone()
    for _ in range(50):
        E = E - (E - e * torch.sin(E) - M) / (1 - e * torch.cos(E))
    x = a * (torch.cos(E) - e)
    y = a * torch.sqrt(1 - e**2) * torch.sin(E)
    rel = torch.stack([x, y], -1)  # (B, T, 2)
    q = torch.cat([rel / 2, -rel / 2], -1)  # bodies at +-rel/2: q[i, a] flattened
    m = orbit_measures(t, q, torch.zeros_like(q), (2, 2))
    assert torch.allclose(m.semi_major_axis, a[:, 0], rtol=1e-5)
    assert torch.allclose(m.period, 2 * math.pi / n[:, 0], rtol=1e-5)
