"""Training data for learned dynamics: simulate a known Hamiltonian, add observation noise.

Trajectories are integrated with Yoshida-4 substeps from random initial conditions; the targets
are the exact time derivatives (qdot, pdot) = (dH/dp, -dH/dq) at the clean states, and Gaussian
noise of std ``noise`` is added to the observed (q, p) (and optionally to the targets), as in
Greydanus et al. (2019).

Random numbers come from :class:`~physml_lang.runtime.random.RandomStreams` with the trajectory
on the leading axis (initial states (count, ...), noise (count, T, n)): trajectory b gets the same
initial state and noise whatever the count. Two sets of helpers: the standard systems of the
paper (:func:`make_dataset`), and the data of the ``learn_dynamics`` task for a declared model
(:func:`initial_states`, :func:`reference_trajectories`, :func:`simulated`, :class:`TrainingData`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from physml_lang.catalogue.dynamics import TrajectoryOptions
from physml_lang.compiler.models.phase_space import PhaseSpaceModel

from ..random import RandomStreams
from .integrators import evolve, yoshida4_step
from .system import HamiltonianSystem, kepler, mass_spring, pendulum

Tensor = torch.Tensor
F64 = torch.float64
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


def _uniform(streams: RandomStreams, dtype: torch.dtype):
    """u(lo, hi, *shape): uniform on [lo, hi), trajectories on the leading axis."""

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * streams.uniform(shape, torch.float64).to(dtype)

    return u


def initial_conditions(
    name: SystemName, count: int, streams: RandomStreams, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Random initial states (count, n) in the ranges of Greydanus et al. (2019)."""
    u = _uniform(streams, dtype)

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
    t = torch.linspace(0.0, t_span, points, dtype=q0.dtype, device=q0.device)
    return torch.stack(qs, 1), torch.stack(ps, 1), t


def make_dataset(
    name: SystemName,
    trajectories: int,
    streams: RandomStreams,
    t_span: float = 3.0,
    points: int = 30,
    noise: float = 0.1,
    noise_derivatives: bool = False,
    dtype: torch.dtype = torch.float64,
) -> DynamicsData:
    """Simulate ``trajectories`` orbits of a standard system and add observation noise."""
    system = standard_system(name)
    q0, p0 = initial_conditions(name, trajectories, streams, dtype)
    q, p, t = simulate(system, q0, p0, t_span, points)
    with torch.no_grad():
        dq, dp = system.dH_dp(q, p), -system.dH_dq(q, p)

    def noisy(x: Tensor) -> Tensor:
        return x + noise * streams.normal(x.shape, torch.float64).to(dtype)

    if noise_derivatives:
        dq, dp = noisy(dq), noisy(dp)
    return DynamicsData(t, noisy(q), noisy(p), dq, dp, q, p, system)


# ---------------------------------------------------------------- the learn_dynamics task


def initial_states(cm: PhaseSpaceModel, o: TrajectoryOptions, count: int,
                   streams: RandomStreams) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(count, n) initial states of a declared model for simulated data and rollouts:
    ``circle``: each (q_k, p_k) at a radius uniform in ``o.radius`` and a uniform angle;
    ``normal``: q, p ~ N(0, radius[1]^2); ``kepler``: two bodies at +-x about their centre of
    mass with near-circular speeds for equal masses (separation 1 .. 3, speed 0.8 .. 1.2 x
    circular); ``orbit``: one body about the origin on a bound, eccentric orbit (distance in
    ``o.radius``, 0.6 .. 1.2 x the circular speed, heading within 0.5 rad of tangential)."""
    lo, hi = o.radius
    n = cm.n
    u = _uniform(streams, F64)
    if o.start == "circle":
        r, phi = u(lo, hi, count, n), u(0.0, 2 * math.pi, count, n)
        return r * torch.cos(phi), r * torch.sin(phi)
    if o.start == "normal":
        return hi * streams.normal((count, n), F64), hi * streams.normal((count, n), F64)
    if o.start == "orbit":
        prm = cm.model.params
        gm = float(prm.get("GM", float(prm.get("G", 1.0)) * float(prm.get("M", 1.0))))
        r, phi = u(lo, hi, count), u(0.0, 2 * math.pi, count)
        speed = torch.sqrt(gm / r) * u(0.6, 1.2, count)
        heading = phi + math.pi / 2 + u(-0.5, 0.5, count)
        q = torch.zeros(count, n, dtype=F64, device=r.device)
        p = torch.zeros_like(q)
        q[:, 0], q[:, 1] = r * torch.cos(phi), r * torch.sin(phi)
        p[:, 0], p[:, 1] = speed * torch.cos(heading), speed * torch.sin(heading)
        return q, p
    D = cm.shape[1]
    m = float(cm.model.params.get("m", 1.0))
    G = float(cm.model.params.get("G", 1.0))
    rad, ang = u(0.5, 1.5, count), u(0.0, 2 * math.pi, count)
    x1 = torch.zeros(count, D, dtype=F64, device=rad.device)
    v1 = torch.zeros(count, D, dtype=F64, device=rad.device)
    x1[:, 0], x1[:, 1] = rad * torch.cos(ang), rad * torch.sin(ang)
    v = torch.sqrt(G * m / (4 * rad)) * u(0.8, 1.2, count)
    v1[:, 0], v1[:, 1] = -v * torch.sin(ang), v * torch.cos(ang)
    return torch.cat([x1, -x1], -1), m * torch.cat([v1, -v1], -1)


def reference_trajectories(cm: PhaseSpaceModel, q0: Tensor, p0: Tensor, t_span: float,
                           points: int, substeps: int) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Exact trajectories q, p (B, points, n) from (B, n) initial states, at the times t
    (points,) in [0, t_span]: ``substeps`` steps of a 4th-order symplectic integrator
    (yoshida4; the implicit midpoint rule for a non-separable H) between saved points."""
    name = "yoshida4" if cm.separable else "implicit_midpoint"
    dt = t_span / (points - 1) / substeps
    tr = evolve(cm.system, q0, p0, dt, (points - 1) * substeps, name, save_every=substeps,
                blowup_threshold=None)  # fmt: skip
    t = torch.linspace(0.0, t_span, points, dtype=F64, device=q0.device)
    return tr.q.transpose(0, 1), tr.p.transpose(0, 1), t


def simulated(cm: PhaseSpaceModel, o: TrajectoryOptions,
              streams: RandomStreams) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Training trajectories of a declared model (``o.count`` from :func:`initial_states`):
    t (T,), noisy q, p and the exact derivatives dq, dp at the clean states, each
    (count, T, n); Gaussian noise of std ``o.noise`` on q and p."""
    q0, p0 = initial_states(cm, o, o.count, streams)
    qc, pc, t = reference_trajectories(cm, q0, p0, o.t_span, o.points, o.substeps)
    with torch.no_grad():
        dq, dp = cm.system.dH_dp(qc, pc), -cm.system.dH_dq(qc, pc)
    q = qc + o.noise * streams.normal(qc.shape, F64)
    p = pc + o.noise * streams.normal(pc.shape, F64)
    return t, q, p, dq, dp


@dataclass
class TrainingData:
    """Training data of learned dynamics: ``states`` q, p, dq, dp of shape (N, n) (states
    and their time derivatives), ``z0``, ``z1`` (M, 2n): pairs of consecutive states, and
    ``dt`` the time between them."""

    states: list[Tensor]
    z0: Tensor
    z1: Tensor
    dt: float

    @classmethod
    def of(cls, t: Tensor, q: Tensor, p: Tensor, dq: Tensor, dp: Tensor,
           device: torch.device) -> TrainingData:  # fmt: skip
        """From trajectories q, p, dq, dp (N_traj, T, n) at times t (T,), on ``device``."""
        n = q.shape[-1]
        z = torch.cat([q, p], -1).to(device)
        return cls([x.reshape(-1, n).to(device) for x in (q, p, dq, dp)],
                   z[:, :-1].reshape(-1, 2 * n), z[:, 1:].reshape(-1, 2 * n),
                   float(t[1] - t[0]))  # fmt: skip
