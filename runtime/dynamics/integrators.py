"""Time integrators for Hamilton's equations, batched over trajectories.

Every integrator maps (q, p) of shape (..., n) one step of size ``dt`` forward (``dt`` a float or a
tensor broadcastable against q, e.g. one step size per trajectory):

- ``leapfrog`` (= velocity Verlet, kick-drift-kick): order 2, symplectic and time-reversible for
  separable H = T(p) + V(q);
- ``yoshida4``: the order-4 Yoshida (1990) composition of three leapfrog steps, symplectic;
- ``implicit_midpoint``: z' = z + dt J grad H((z + z') / 2), order 2, symplectic for *any* H
  (non-separable, e.g. a learned H_theta), solved by fixed-point iteration to a tolerance;
- ``euler`` (explicit) and ``rk4``: non-symplectic references (their energy drifts).

:func:`evolve` produces trajectories (T, B, n) and energies (T, B) and raises
:class:`EnergyBlowupError` when the relative energy error exceeds a threshold or the state stops
being finite ("step size too large").
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue, NoOptions
from physml_lang.catalogue.dynamics import INTEGRATOR_FACTS, ImplicitMidpointOptions

from .system import HamiltonianLike, HamiltonianSystem, as_system

Tensor = torch.Tensor
Step = Callable[[HamiltonianSystem, Tensor, Tensor, "float | Tensor"], tuple[Tensor, Tensor]]


class IntegratorError(RuntimeError):
    """Base class of integration failures the front end reports as user errors."""


class EnergyBlowupError(IntegratorError):
    """The energy error exploded (or the state became non-finite): the step is too large."""

    def __init__(self, step: int, dt: float, rel_error: float, integrator: str = ""):
        self.step, self.dt, self.rel_error, self.integrator = step, dt, rel_error, integrator
        what = "non-finite state" if not np.isfinite(rel_error) else (
            f"relative energy error {rel_error:.3g}")  # fmt: skip
        super().__init__(
            f"{integrator or 'integration'} blew up at step {step} (dt = {dt:g}): {what}; "
            "the step size is too large for this system"
        )


class ConvergenceError(IntegratorError):
    """An implicit integrator's fixed-point iteration did not converge (dt too large)."""

    def __init__(self, iterations: int, residual: float, dt: float):
        self.iterations, self.residual, self.dt = iterations, residual, dt
        super().__init__(
            f"implicit midpoint did not converge in {iterations} iterations (residual "
            f"{residual:.3g}, dt = {dt:g}); reduce the step size"
        )


class NotSeparableError(IntegratorError):
    """An integrator that needs H = T(p) + V(q) was given a non-separable H."""


def _scalar(dt: float | Tensor) -> float:
    return float(dt) if not isinstance(dt, Tensor) else float(dt.abs().max())


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def leapfrog_step(
    system: HamiltonianSystem, q: Tensor, p: Tensor, dt: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Kick-drift-kick: p -= dt/2 dV/dq; q += dt dT/dp; p -= dt/2 dV/dq (separable H)."""
    p = p - 0.5 * dt * system.dH_dq(q, p)
    q = q + dt * system.dH_dp(q, p)
    p = p - 0.5 * dt * system.dH_dq(q, p)
    return q, p


_CBRT2 = 2.0 ** (1.0 / 3.0)
_YOSHIDA = (1.0 / (2.0 - _CBRT2), -_CBRT2 / (2.0 - _CBRT2), 1.0 / (2.0 - _CBRT2))


def yoshida4_step(
    system: HamiltonianSystem, q: Tensor, p: Tensor, dt: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Order-4 symmetric composition: leapfrog(w1 dt) o leapfrog(w0 dt) o leapfrog(w1 dt)."""
    for w in _YOSHIDA:
        q, p = leapfrog_step(system, q, p, w * dt)
    return q, p


def implicit_midpoint_step(
    system: HamiltonianSystem,
    q: Tensor,
    p: Tensor,
    dt: float | Tensor,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> tuple[Tensor, Tensor]:
    """Solve z' = z + dt J grad H((z + z')/2) by fixed-point iteration (converges for
    dt * Lipschitz(grad H) < 2). Stops when max |z'_{k+1} - z'_k| <= tol * (1 + max |z|)."""
    scale = tol * (1.0 + float(torch.maximum(q.detach().abs().max(), p.detach().abs().max())))
    gq, gp = system.gradients(q, p)
    q1, p1 = q + dt * gp, p - dt * gq  # explicit Euler predictor
    residual = float("inf")
    for _ in range(max_iter):
        gq, gp = system.gradients(0.5 * (q + q1), 0.5 * (p + p1))
        q2, p2 = q + dt * gp, p - dt * gq
        dq, dp = (q2 - q1).detach(), (p2 - p1).detach()
        residual = float(torch.maximum(dq.abs().max(), dp.abs().max()))
        q1, p1 = q2, p2
        if residual <= scale:
            return q1, p1
    if not np.isfinite(residual):
        return q1, p1  # let the caller's blow-up check report the non-finite state
    raise ConvergenceError(max_iter, residual, _scalar(dt))


def euler_step(
    system: HamiltonianSystem, q: Tensor, p: Tensor, dt: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Explicit Euler (order 1, not symplectic: energy grows)."""
    gq, gp = system.gradients(q, p)
    return q + dt * gp, p - dt * gq


def rk4_step(
    system: HamiltonianSystem, q: Tensor, p: Tensor, dt: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Classical Runge-Kutta 4 (order 4, not symplectic: energy drifts secularly)."""

    f = system.vector_field

    k1q, k1p = f(q, p)
    k2q, k2p = f(q + 0.5 * dt * k1q, p + 0.5 * dt * k1p)
    k3q, k3p = f(q + 0.5 * dt * k2q, p + 0.5 * dt * k2p)
    k4q, k4p = f(q + dt * k3q, p + dt * k3p)
    return (
        q + dt / 6.0 * (k1q + 2 * k2q + 2 * k3q + k4q),
        p + dt / 6.0 * (k1p + 2 * k2p + 2 * k3p + k4p),
    )


# --------------------------------------------------------------------------------------------
# Configured integrators (the implementations of the catalogue's integrator entries)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Integrator:
    """A configured integrator: ``step(system, q, p, dt) -> (q, p)`` plus its properties."""

    name: str
    step_fn: Step
    symplectic: bool
    requires_separable: bool
    order: int
    options: BaseModel = field(default_factory=NoOptions)

    def step(
        self, system: HamiltonianLike, q: Tensor, p: Tensor, dt: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.step_fn(as_system(system), q, p, dt)

    def check(self, system: HamiltonianLike) -> None:
        """Raise NotSeparableError when this integrator cannot be symplectic for ``system``."""
        if self.requires_separable and not getattr(system, "separable", False):
            raise NotSeparableError(
                f"{self.name} needs a separable Hamiltonian H = T(p) + V(q); use "
                "implicit_midpoint for a non-separable one"
            )


def _configured(name: str, fn: Step, options: BaseModel) -> Integrator:
    """The integrator ``name`` stepping with ``fn``, its properties the catalogue's facts."""
    facts = INTEGRATOR_FACTS[name]
    return Integrator(name, fn, facts.symplectic, facts.requires_separable, facts.order, options)


def _simple(name: str, fn: Step):
    def factory(options: NoOptions) -> Integrator:
        return _configured(name, fn, options)

    return factory


def _implicit_factory(options: ImplicitMidpointOptions) -> Integrator:
    def step(s: HamiltonianSystem, q: Tensor, p: Tensor, dt: float | Tensor):
        return implicit_midpoint_step(s, q, p, dt, options.tol, options.max_iter)

    return _configured("implicit_midpoint", step, options)


# factories (validated options -> Integrator), bound to the catalogue's entries by ``bind``;
# module-level so that each entry is bound to one object
LEAPFROG = _simple("leapfrog", leapfrog_step)
VERLET = _simple("verlet", leapfrog_step)
YOSHIDA4 = _simple("yoshida4", yoshida4_step)
EULER = _simple("euler", euler_step)
RK4 = _simple("rk4", rk4_step)


def bind(catalogue: Catalogue) -> None:
    """Attach the integrator factories to their catalogue entries."""
    integrators = catalogue.integrators
    integrators.bind("leapfrog", LEAPFROG)
    integrators.bind("verlet", VERLET)
    integrators.bind("yoshida4", YOSHIDA4)
    integrators.bind("implicit_midpoint", _implicit_factory)
    integrators.bind("euler", EULER)
    integrators.bind("rk4", RK4)


def make_integrator(name: str, **options: object) -> Integrator:
    """Look up ``name`` among the catalogue's integrators and validate its options (pydantic
    errors)."""
    entry = CATALOGUE.integrators.get(name)
    if entry is None:
        known = sorted(CATALOGUE.integrators.names(""))  # the Hamiltonian integrators
        raise KeyError(f"unknown integrator '{name}'; known: {', '.join(known)}")
    return CATALOGUE.integrators.implementation(name)(entry.schema(**options))


# --------------------------------------------------------------------------------------------
# Trajectories
# --------------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Saved states of a batch of trajectories.

    t: (T,), q, p: (T, B, n), energy: (T, B); ``dt`` the step and ``integrator`` its name.
    """

    t: Tensor
    q: Tensor
    p: Tensor
    energy: Tensor
    dt: float
    integrator: str

    @property
    def energy_error(self) -> Tensor:
        """Relative energy error (H(t) - H(0)) / |H(0)|, shape (T, B)."""
        return (self.energy - self.energy[0]) / _energy_scale(self.energy[0])

    def save_npz(self, path: str | Path) -> Path:
        """Write t, q, p, energy, energy_error, dt to ``path`` atomically (np.savez, no pickle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "t": self.t, "q": self.q, "p": self.p, "energy": self.energy,
            "energy_error": self.energy_error,
        }  # fmt: skip
        np_arrays = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, dt=np.float64(self.dt), integrator=np.str_(self.integrator), **np_arrays)
        os.replace(tmp, path)
        return path

    def plot(
        self, out_dir: str | Path, prefix: str = "trajectory", max_curves: int = 8
    ) -> list[Path]:
        """Phase portrait (q_0 vs p_0) and |relative energy error| vs time as PNGs (Agg)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        q = self.q.detach().cpu().numpy()
        p = self.p.detach().cpu().numpy()
        t = self.t.detach().cpu().numpy()
        err = self.energy_error.detach().abs().cpu().numpy()
        paths = []

        fig = Figure(figsize=(5, 5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for b in range(min(max_curves, q.shape[1])):
            ax.plot(q[:, b, 0], p[:, b, 0], lw=0.8)
        ax.set_xlabel("q[0]")
        ax.set_ylabel("p[0]")
        ax.set_title(f"phase portrait ({self.integrator}, dt={self.dt:g})")
        paths.append(out / f"{prefix}_phase.png")
        fig.savefig(paths[-1], dpi=110)

        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for b in range(min(max_curves, err.shape[1])):
            ax.plot(t[1:], np.maximum(err[1:, b], 1e-17), lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("|H(t) - H(0)| / |H(0)|")
        ax.set_title(f"energy error ({self.integrator}, dt={self.dt:g})")
        paths.append(out / f"{prefix}_energy_error.png")
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=110)
        return paths


def _energy_scale(E0: Tensor) -> Tensor:
    """|H(0)| per trajectory, floored so that H(0) = 0 does not divide by zero."""
    floor = 1e-8 * max(1.0, float(E0.abs().mean())) if E0.numel() else 1e-8
    return E0.abs().clamp_min(floor)


def _check_state(E: Tensor, q: Tensor, E0: Tensor, scale: Tensor, threshold: float | None,
                 k: int, dt: float, name: str) -> None:  # fmt: skip
    """EnergyBlowupError at step k for a non-finite state, or a relative energy error above
    ``threshold`` (None: not checked)."""
    finite = bool(torch.isfinite(E).all()) and bool(torch.isfinite(q).all())
    rel = float(((E - E0).abs() / scale).max()) if finite else float("inf")
    if not finite or (threshold is not None and rel > threshold):
        raise EnergyBlowupError(k, float(dt), rel, name)


def evolve(
    system: HamiltonianLike,
    q0: Tensor,
    p0: Tensor,
    dt: float,
    steps: int,
    integrator: str | Integrator = "leapfrog",
    options: dict[str, object] | None = None,
    save_every: int = 1,
    blowup_threshold: float | None = 0.5,
    out_dir: str | Path | None = None,
    prefix: str = "trajectory",
    stop_nonfinite: bool = True,
) -> Trajectory:
    """Integrate ``steps`` steps of size ``dt`` from (q0, p0) of shape (B, n).

    Saves every ``save_every`` steps (plus the initial state): T = steps // save_every + 1.
    At each save the relative energy error is checked; above ``blowup_threshold`` (None: off) or
    a non-finite state raises :class:`EnergyBlowupError`. With neither (``blowup_threshold``
    None, ``stop_nonfinite`` False) nothing is checked: a diverging trajectory carries inf or
    NaN (a learned model's rollout, counted by its caller). With ``out_dir``, writes
    ``{prefix}.npz`` and the two plots there. Runs without autograd graphs (autograd systems
    compute their own gradients).
    """
    integ = integrator if isinstance(integrator, Integrator) else make_integrator(
        integrator, **(options or {}))  # fmt: skip
    sys_ = as_system(system)
    integ.check(sys_)
    if save_every < 1 or steps < 0:
        raise ValueError("save_every must be >= 1 and steps >= 0")
    with torch.no_grad():
        q, p = q0.clone(), p0.clone()
        qs, ps, Es, ts = [q], [p], [sys_.hamiltonian(q, p)], [0.0]
        scale = _energy_scale(Es[0])
        checked = stop_nonfinite or blowup_threshold is not None
        for k in range(1, steps + 1):
            q, p = integ.step(sys_, q, p, dt)
            if k % save_every == 0 or k == steps:
                E = sys_.hamiltonian(q, p)
                if checked:
                    _check_state(E, q, Es[0], scale, blowup_threshold, k, dt, integ.name)
                if k % save_every == 0:
                    qs.append(q)
                    ps.append(p)
                    Es.append(E)
                    ts.append(k * dt)
    traj = Trajectory(
        torch.tensor(ts, dtype=q0.dtype, device=q0.device),
        torch.stack(qs), torch.stack(ps), torch.stack(Es), float(dt), integ.name,
    )  # fmt: skip
    if out_dir is not None:
        traj.save_npz(Path(out_dir) / f"{prefix}.npz")
        traj.plot(out_dir, prefix)
    return traj
