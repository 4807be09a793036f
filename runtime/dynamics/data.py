"""Training data for learned dynamics: simulate a known Hamiltonian, add observation noise.

Trajectories are integrated with Yoshida-4 substeps from random initial conditions; the targets
are the exact time derivatives (qdot, pdot) = (dH/dp, -dH/dq) at the clean states, and Gaussian
noise of std ``noise`` is added to the observed (q, p) (and optionally to the targets), as in
Greydanus et al. (2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .integrators import yoshida4_step
from .system import HamiltonianSystem, kepler, mass_spring, pendulum

Tensor = torch.Tensor
SystemName = Literal["mass_spring", "pendulum", "kepler"]


@dataclass
class DynamicsData:
    """Trajectories of shape (N_traj, T, n): noisy observations ``q, p``, clean ``q_true,
    p_true``, target derivatives ``dq, dp``; ``t``: (T,)."""

    t: Tensor
    q: Tensor
    p: Tensor
    dq: Tensor
    dp: Tensor
    q_true: Tensor
    p_true: Tensor
    system: HamiltonianSystem

    def flat(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(q, p, dq, dp) flattened over trajectories and times: (N_traj * T, n)."""
        n = self.q.shape[-1]
        return tuple(x.reshape(-1, n) for x in (self.q, self.p, self.dq, self.dp))  # type: ignore

    def pairs(self) -> tuple[Tensor, Tensor]:
        """Consecutive noisy states for map learners: z_t, z_{t+1}, each (N_traj * (T-1), 2n)."""
        z = torch.cat([self.q, self.p], dim=-1)
        return z[:, :-1].reshape(-1, z.shape[-1]), z[:, 1:].reshape(-1, z.shape[-1])


def standard_system(name: SystemName) -> HamiltonianSystem:
    """mass_spring (k = m = 1), pendulum (m = l = 1, g = 3), kepler (2D, m1 = m2 = G = 1)."""
    return {"mass_spring": mass_spring, "pendulum": pendulum, "kepler": kepler}[name]()


def initial_conditions(
    name: SystemName, count: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Random initial states (count, n) in the ranges of Greydanus et al. (2019)."""

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, dtype=dtype)

    if name in ("mass_spring", "pendulum"):
        # a circle of random radius in phase space
        r = u(0.1, 1.0, count, 1) if name == "mass_spring" else u(1.3, 2.3, count, 1)
        angle = u(0.0, 2 * math.pi, count, 1)
        return r * torch.cos(angle), r * torch.sin(angle)
    # Kepler: bodies at +-x, near-circular orbit about the centre of mass (zero momentum)
    rad = u(0.5, 1.5, count)
    phi = u(0.0, 2 * math.pi, count)
    x1 = torch.stack([rad * torch.cos(phi), rad * torch.sin(phi)], -1)
    v = torch.sqrt(1.0 / (4 * rad)) * u(0.8, 1.2, count)  # circular speed for G = m = 1
    v1 = torch.stack([-v * torch.sin(phi), v * torch.cos(phi)], -1)
    return torch.cat([x1, -x1], -1), torch.cat([v1, -v1], -1)


def simulate(
    system: HamiltonianSystem, q0: Tensor, p0: Tensor, t_span: float, points: int,
    substeps: int = 20,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Yoshida-4 trajectories sampled at ``points`` times in [0, t_span]: q, p (B, T, n), t (T,)."""
    dt = t_span / (points - 1) / substeps
    qs, ps = [q0], [p0]
    q, p = q0, p0
    with torch.no_grad():
        for _ in range(points - 1):
            for _ in range(substeps):
                q, p = yoshida4_step(system, q, p, dt)
            qs.append(q)
            ps.append(p)
    t = torch.linspace(0.0, t_span, points, dtype=q0.dtype)
    return torch.stack(qs, 1), torch.stack(ps, 1), t


def make_dataset(
    name: SystemName,
    trajectories: int,
    generator: torch.Generator,
    t_span: float = 3.0,
    points: int = 30,
    noise: float = 0.1,
    noise_derivatives: bool = False,
    dtype: torch.dtype = torch.float64,
) -> DynamicsData:
    """Simulate ``trajectories`` orbits of a standard system and add observation noise."""
    system = standard_system(name)
    q0, p0 = initial_conditions(name, trajectories, generator, dtype)
    q, p, t = simulate(system, q0, p0, t_span, points)
    with torch.no_grad():
        dq, dp = system.dH_dp(q, p), -system.dH_dq(q, p)

    def noisy(x: Tensor) -> Tensor:
        return x + noise * torch.randn(x.shape, generator=generator, dtype=dtype)

    if noise_derivatives:
        dq, dp = noisy(dq), noisy(dp)
    return DynamicsData(t, noisy(q), noisy(p), dq, dp, q, p, system)
