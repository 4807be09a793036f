"""Gradient-based samplers of continuous fields: HMC, overdamped Langevin (ULA), MALA.

Target density pi(x) ∝ exp(-S(x)) for a field x of shape (C, *site_shape) (C independent chains;
a vector of n components, or a lattice field). The caller gives the action ``S(x) -> (C,)`` and
its gradient ``grad_S(x) -> (C, *site_shape)`` -- derived symbolically by the compiler or by
autograd (:func:`autograd_grad`).

- ``hmc``: momenta p ~ N(0, m), ``n_steps`` steps of the same leapfrog/Yoshida integrator used
  for dynamics on H(x, p) = S(x) + |p|^2 / 2m, Metropolis accept with the exact H. Exact (the
  integrator is volume preserving and reversible).
- ``ula``: x' = x - h grad S + sqrt(2h) xi. Biased at O(h) (no accept step).
- ``mala``: the ULA proposal with a Metropolis-Hastings correction. Exact.

Random numbers come from :class:`~physml_lang.runtime.random.RandomStreams` with the chain on
the leading axis (momenta and noise (C, *site_shape), accept draws (C,)): chain c draws the same
numbers in any batch of chains and on any device.

Reference actions: :class:`Phi4Action` (lattice phi^4) and :class:`XYAction` (XY model, angles).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import HMCOptions, LangevinOptions
from physml_lang.diagnostics import Diagnostic, warn

from ..divergences import Divergences
from ..random import RandomStreams
from ..statistics import Estimate, binning_analysis
from .integrators import leapfrog_step, yoshida4_step
from .system import HamiltonianSystem

Tensor = torch.Tensor
Action = Callable[[Tensor], Tensor]
Measure = Callable[[Tensor], dict[str, Tensor]]


def _sum_sites(x: Tensor) -> Tensor:
    """Sum over all but the chain dimension: (C, ...) -> (C,)."""
    return x.reshape(x.shape[0], -1).sum(-1)


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    """(C,) -> (C, 1, 1, ...) broadcastable against x."""
    return v.reshape(v.shape + (1,) * (x.dim() - 1))


def autograd_grad(action: Action) -> Action:
    """grad S by autograd, for actions without a symbolic gradient (detached result)."""

    def grad(x: Tensor) -> Tensor:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(action(xx).sum(), xx)
        return g

    return grad


@dataclass
class SamplerResult:
    """Samples or measurements of a run.

    ``samples``: (T, C, *site_shape) when no ``measure`` was given, else None;
    ``observables``: name -> (T, C); ``acceptance_per_chain``: (C,); ``state``: final x.
    """

    samples: Tensor | None
    observables: dict[str, Tensor]
    acceptance: float
    acceptance_per_chain: Tensor
    state: Tensor
    info: dict[str, float] = field(default_factory=dict)

    def estimate(self, name: str) -> Estimate:
        """Mean and binning-analysis stderr of an observable over time and chains."""
        return binning_analysis(self.observables[name].detach().cpu().numpy())


def _record(
    x: Tensor, measure: Measure | None, samples: list[Tensor], obs: dict[str, list[Tensor]]
) -> None:
    if measure is None:
        samples.append(x.clone())
        return
    for k, v in measure(x).items():
        obs.setdefault(k, []).append(v.detach().clone())


def _finish(samples: list[Tensor], obs: dict[str, list[Tensor]], accepted: Tensor,
            proposals: int, x: Tensor, info: dict[str, float]) -> SamplerResult:  # fmt: skip
    per_chain = accepted / max(proposals, 1)
    return SamplerResult(
        torch.stack(samples) if samples else None,
        {k: torch.stack(v) for k, v in obs.items()},
        float(per_chain.mean()),
        per_chain,
        x,
        info,
    )


class HMCKernel:
    """One HMC trajectory per :meth:`step` for a batch of C chains x (C, *site_shape): momenta
    p ~ N(0, m), ``n_leapfrog`` steps of the leapfrog/Yoshida integrator on
    H(x, p) = S(x) + |p|^2 / 2m, Metropolis accept with the exact H.

    ``jitter`` draws each chain's step size uniformly in step_size * [1 - j, 1 + j] per
    trajectory (avoids resonances with the trajectory length). While ``track`` is set, the
    acceptance (``accepted`` (C,) of ``proposed``) and the Creutz check <exp(-dH)> = 1 are
    accumulated per chain (:meth:`info`); :meth:`tensors` / :meth:`restore` checkpoint them
    (the random numbers' state is the streams' draw counter, kept by their owner). A
    trajectory whose H becomes non-finite is rejected and recorded in ``diverged``
    (:class:`Divergences`, on the device); :meth:`divergence` names a chain stuck behind them."""

    def __init__(self, action: Action, grad_action: Action, streams: RandomStreams,
                 step_size: float, n_leapfrog: int, mass: float = 1.0, jitter: float = 0.0,
                 integrator: Literal["leapfrog", "yoshida4"] = "leapfrog"):  # fmt: skip
        self.integrate = {"leapfrog": leapfrog_step, "yoshida4": yoshida4_step}[integrator]
        self.system = HamiltonianSystem(
            lambda x, p: action(x) + _sum_sites(p * p) / (2 * mass),
            lambda x, p: grad_action(x),
            lambda x, p: p / mass,
            True,
            "hmc",
        )
        self.streams, self.step_size, self.n_leapfrog = streams, step_size, n_leapfrog
        self.mass, self.jitter = mass, jitter
        self.track = True
        self.accepted: Tensor | None = None  # (C,), allocated by start()
        self.proposed = 0
        self.sums: dict[str, Tensor] = {}
        self.diverged: Divergences | None = None  # since start(), burn-in included

    def start(self, x: Tensor) -> None:
        """Allocate the counters for the chains of x (and reset them)."""
        C = x.shape[0]
        self.accepted = torch.zeros(C, dtype=x.dtype, device=x.device)
        self.proposed = 0
        self.sums = {"dH": torch.zeros_like(self.accepted),
                     "exp_minus_dH": torch.zeros_like(self.accepted)}  # fmt: skip
        self.diverged = Divergences(C, x.device)

    def divergence(self) -> tuple[int, int, float] | None:
        """(first divergent trajectory, chain, fraction) of a chain whose trajectories mostly
        diverged, or None (:meth:`Divergences.stuck`)."""
        return None if self.diverged is None else self.diverged.stuck()

    def step(self, x: Tensor) -> Tensor:
        """One trajectory of every chain: the new x (C, *site_shape)."""
        streams, C = self.streams, x.shape[0]
        with torch.no_grad():
            p = streams.normal(x.shape, x.dtype) * self.mass**0.5
            H0 = self.system.hamiltonian(x, p)
            dt: float | Tensor = self.step_size
            if self.jitter > 0:
                u = streams.uniform((C,), x.dtype)
                dt = _bcast(self.step_size * (1 + self.jitter * (2 * u - 1)), x)
            xn, pn = x, p
            for _ in range(self.n_leapfrog):
                xn, pn = self.integrate(self.system, xn, pn, dt)
            dH = self.system.hamiltonian(xn, pn) - H0
            finite = torch.isfinite(dH)
            self.diverged.record(finite)
            dH = torch.where(finite, dH, torch.full_like(dH, float("inf")))
            u = streams.uniform((C,), x.dtype)
            acc = torch.log(u) < -dH  # min(1, exp(-dH)) with the exact H
            if self.track:
                self.accepted += acc.to(x.dtype)
                self.proposed += 1
                # <exp(-dH)> = 1 is an exactness check of the integrator (Creutz).
                self.sums["exp_minus_dH"] += torch.exp(-dH.clamp_min(-50))
                self.sums["dH"] += dH.clamp_max(1e6)
            return torch.where(_bcast(acc, x), xn, x)

    def acceptance(self) -> Tensor:
        """Accepted fraction per chain (C,)."""
        return self.accepted / max(self.proposed, 1)

    def info(self, chains: slice = slice(None)) -> dict[str, float]:
        """<dH> and <exp(-dH)> over the tracked trajectories of ``chains``."""
        n = max(self.proposed, 1)
        return {f"mean_{k}": float(v[chains].mean()) / n for k, v in self.sums.items()}

    def tensors(self) -> dict[str, Tensor]:
        out = {"accepted": self.accepted, "proposed": torch.tensor(self.proposed, device="cpu")}
        out.update({f"sums/{k}": v for k, v in self.sums.items()})
        return out

    def restore(self, x: Tensor, t: dict[str, Tensor]) -> None:
        """Continue from :meth:`tensors` of chains now at x."""
        self.start(x)
        self.accepted.copy_(t["accepted"].to(x.device))
        self.proposed = int(t["proposed"])
        for k, v in self.sums.items():
            v.copy_(t[f"sums/{k}"].to(x.device))


class LangevinKernel:
    """One overdamped Langevin step per :meth:`step`, x' = x - h grad S(x) + sqrt(2h) xi (ULA),
    or MALA when ``metropolis``: accept with min(1, pi(x') q(x|x') / (pi(x) q(x'|x))), where
    q(y|x) ∝ exp(-|y - x + h grad S(x)|^2 / 4h). Counters as :class:`HMCKernel`'s."""

    def __init__(self, action: Action, grad_action: Action, streams: RandomStreams,
                 step_size: float, metropolis: bool = False):  # fmt: skip
        self.action, self.grad_action, self.streams = action, grad_action, streams
        self.h, self.metropolis = step_size, metropolis
        self.track = True
        self.accepted: Tensor | None = None
        self.proposed = 0
        self.S: Tensor | None = None
        self.g: Tensor | None = None
        self.diverged: Divergences | None = None

    def start(self, x: Tensor) -> None:
        """Counters for the chains of x, and S, grad S at x (the state a step continues)."""
        self.accepted = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        self.proposed = 0
        self.diverged = Divergences(x.shape[0], x.device)
        with torch.no_grad():
            self.S = self.action(x) if self.metropolis else None
            self.g = self.grad_action(x)

    def step(self, x: Tensor) -> Tensor:
        h, C, streams = self.h, x.shape[0], self.streams
        with torch.no_grad():
            g, S = self.g, self.S
            xi = streams.normal(x.shape, x.dtype)
            xn = x - h * g + (2 * h) ** 0.5 * xi
            gn = self.grad_action(xn)
            if self.metropolis:
                Sn = self.action(xn)
                fwd = _sum_sites((xn - x + h * g) ** 2) / (4 * h)  # -log q(xn | x)
                bwd = _sum_sites((x - xn + h * gn) ** 2) / (4 * h)  # -log q(x | xn)
                log_a = -(Sn - S) - bwd + fwd
                finite = torch.isfinite(log_a)
                self.diverged.record(finite)
                log_a = torch.where(finite, log_a, torch.full_like(log_a, -1e30))
                u = streams.uniform((C,), x.dtype)
                acc = torch.log(u) < log_a
                m = _bcast(acc, x)
                x, self.g, self.S = torch.where(m, xn, x), torch.where(m, gn, g), torch.where(acc, Sn, S)  # fmt: skip
            else:
                acc = torch.ones(C, dtype=torch.bool, device=x.device)
                x, self.g = xn, gn
            if self.track:
                self.accepted += acc.to(x.dtype)
                self.proposed += 1
            return x

    def divergence(self) -> tuple[int, int, float] | None:
        """(first step, chain, fraction) of a chain whose MALA proposals mostly had a
        non-finite acceptance ratio (ULA accepts every step: its non-finite fields show in the
        action), or None."""
        return None if self.diverged is None else self.diverged.stuck()

    def acceptance(self) -> Tensor:
        return self.accepted / max(self.proposed, 1)

    def info(self, chains: slice = slice(None)) -> dict[str, float]:
        return {}

    def tensors(self) -> dict[str, Tensor]:
        return {"accepted": self.accepted, "proposed": torch.tensor(self.proposed, device="cpu")}

    def restore(self, x: Tensor, t: dict[str, Tensor]) -> None:
        """Continue at x: S and grad S recomputed (the same numbers as before the save)."""
        self.start(x)
        self.accepted.copy_(t["accepted"].to(x.device))
        self.proposed = int(t["proposed"])


Kernel = HMCKernel | LangevinKernel


def _drive(kernel: Kernel, x0: Tensor, n_samples: int, burn_in: int, thin: int,
           measure: Measure | None) -> SamplerResult:  # fmt: skip
    """``burn_in`` untracked updates, then ``n_samples * thin``, recording every thin-th."""
    x = x0.clone()
    kernel.start(x)
    samples: list[Tensor] = []
    obs: dict[str, list[Tensor]] = {}
    kernel.track = False
    for _ in range(burn_in):
        x = kernel.step(x)
    kernel.track = True
    with torch.no_grad():
        for _ in range(n_samples):
            for _ in range(thin):
                x = kernel.step(x)
            _record(x, measure, samples, obs)
    return _finish(samples, obs, kernel.accepted, kernel.proposed, x, kernel.info())


def hmc(
    action: Action,
    grad_action: Action,
    x0: Tensor,
    streams: RandomStreams,
    n_samples: int,
    step_size: float,
    n_leapfrog: int,
    burn_in: int = 0,
    thin: int = 1,
    mass: float = 1.0,
    jitter: float = 0.0,
    integrator: Literal["leapfrog", "yoshida4"] = "leapfrog",
    measure: Measure | None = None,
) -> SamplerResult:
    """Hybrid/Hamiltonian Monte Carlo (:class:`HMCKernel`), batched over chains x0:
    (C, *site_shape). Records every ``thin``-th trajectory after ``burn_in`` trajectories:
    T = n_samples."""
    kernel = HMCKernel(action, grad_action, streams, step_size, n_leapfrog, mass, jitter,
                       integrator)  # fmt: skip
    return _drive(kernel, x0, n_samples, burn_in, thin, measure)


def langevin(
    action: Action,
    grad_action: Action,
    x0: Tensor,
    streams: RandomStreams,
    n_samples: int,
    step_size: float,
    burn_in: int = 0,
    thin: int = 1,
    metropolis: bool = False,
    measure: Measure | None = None,
) -> SamplerResult:
    """Overdamped Langevin (ULA) or MALA (:class:`LangevinKernel`), batched over chains x0."""
    kernel = LangevinKernel(action, grad_action, streams, step_size, metropolis)
    return _drive(kernel, x0, n_samples, burn_in, thin, measure)


# --------------------------------------------------------------------------------------------
# Reference lattice actions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phi4Action:
    """Lattice phi^4 in the hopping parametrisation, on a periodic hypercubic lattice:

        S = sum_x [ -2 kappa sum_mu phi_x phi_{x+mu} + phi_x^2 + lam (phi_x^2 - 1)^2 ].

    Fields have shape (C, L_1, ..., L_d).
    """

    kappa: float
    lam: float

    def __call__(self, phi: Tensor) -> Tensor:
        dims = range(1, phi.dim())
        hop = sum(phi * torch.roll(phi, -1, d) for d in dims)
        local = phi * phi + self.lam * (phi * phi - 1) ** 2
        return _sum_sites(-2 * self.kappa * hop + local)

    def grad(self, phi: Tensor) -> Tensor:
        dims = range(1, phi.dim())
        nb = sum(torch.roll(phi, -1, d) + torch.roll(phi, 1, d) for d in dims)
        return -2 * self.kappa * nb + 2 * phi + 4 * self.lam * phi * (phi * phi - 1)


@dataclass(frozen=True)
class XYAction:
    """XY model with angles theta (C, L_1, ..., L_d): S = -beta sum_{x, mu} cos(t_x - t_{x+mu})."""

    beta: float

    def __call__(self, theta: Tensor) -> Tensor:
        dims = range(1, theta.dim())
        return -self.beta * _sum_sites(sum(torch.cos(theta - torch.roll(theta, -1, d))
                                           for d in dims))  # fmt: skip

    def grad(self, theta: Tensor) -> Tensor:
        dims = range(1, theta.dim())
        return self.beta * sum(
            torch.sin(theta - torch.roll(theta, -1, d)) + torch.sin(theta - torch.roll(theta, 1, d))
            for d in dims
        )

    def laplacian(self, theta: Tensor) -> Tensor:
        """sum_x d^2 S / d theta_x^2 -> (C,) (for the identity <lap S> = <|grad S|^2>)."""
        dims = range(1, theta.dim())
        return self.beta * _sum_sites(sum(
            torch.cos(theta - torch.roll(theta, -1, d)) + torch.cos(theta - torch.roll(theta, 1, d))
            for d in dims
        ))  # fmt: skip


# --------------------------------------------------------------------------------------------
# Configured samplers (the implementations of the catalogue's field-sampler entries)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampler:
    """A configured sampler: ``kernel(action, grad_action, streams)`` makes its update (one
    step per call, resumable), ``run(action, grad_action, x0, streams, measure=None)``
    samples ``sweeps // thin`` recorded states after ``burn_in`` updates."""

    name: str
    options: BaseModel
    exact: bool
    kernel: Callable[[Action, Action, RandomStreams], Kernel]

    def run(self, action: Action, grad_action: Action, x0: Tensor, streams: RandomStreams,
            measure: Measure | None = None) -> SamplerResult:  # fmt: skip
        o = self.options
        if x0.shape[0] != o.chains:
            raise ValueError(f"x0 has {x0.shape[0]} chains, options say {o.chains}")
        return _drive(self.kernel(action, grad_action, streams), x0, recorded(o), o.burn_in,
                      o.thin, measure)  # fmt: skip


def initial_fields(shape: tuple[int, ...], domain: str, streams: RandomStreams,
                   start: str = "random") -> Tensor:  # fmt: skip
    """Starting fields of shape (chains, *site_shape), float64 on the streams' device:
    ``random`` uniform angles in [-pi, pi) (``angle`` domain) or standard normal real fields;
    ``ordered`` theta = 0 or phi = 1 (no random numbers drawn)."""
    if start == "ordered":
        fill = 0.0 if domain == "angle" else 1.0
        return torch.full(shape, fill, dtype=torch.float64, device=streams.device)
    if domain == "angle":
        return (2 * streams.uniform(shape, torch.float64) - 1) * math.pi
    return streams.normal(shape, torch.float64)


def recorded(o: BaseModel) -> int:
    """States recorded per chain: every thin-th of the ``sweeps`` measured updates."""
    return max(1, o.sweeps // o.thin)


def _hmc_factory(o: HMCOptions) -> Sampler:
    def kernel(a: Action, g: Action, streams: RandomStreams) -> HMCKernel:
        return HMCKernel(a, g, streams, o.step_size, o.n_steps, o.mass, o.jitter, o.integrator)

    return Sampler("hmc", o, True, kernel)


def _langevin_factory(metropolis: bool) -> Callable[[LangevinOptions], Sampler]:
    def factory(o: LangevinOptions) -> Sampler:
        def kernel(a: Action, g: Action, streams: RandomStreams) -> LangevinKernel:
            return LangevinKernel(a, g, streams, o.step_size, metropolis)

        return Sampler("mala" if metropolis else "ula", o, metropolis, kernel)

    return factory


# factories (validated options -> Sampler), bound to the catalogue's entries by ``bind``;
# module-level so that each entry (and the alias langevin of ula) is bound to one object
ULA = _langevin_factory(False)
MALA = _langevin_factory(True)


def bind(catalogue: Catalogue) -> None:
    """Attach the samplers of continuous fields to their catalogue entries."""
    samplers = catalogue.samplers
    samplers.bind("hmc", _hmc_factory, family="field")
    samplers.bind("ula", ULA, family="field")
    samplers.bind("langevin", ULA, family="field")
    samplers.bind("mala", MALA, family="field")


def make_sampler(name: str, **options: object) -> Sampler:
    """Look up ``name`` among the catalogue's field samplers and validate its options
    (pydantic errors; an old option name is renamed with a P403 warning)."""
    entry = CATALOGUE.samplers.get(name, "field")
    if entry is None:
        known = sorted(CATALOGUE.samplers.names("field"))
        raise KeyError(f"unknown sampler '{name}'; known: {', '.join(known)}")
    for old, new in getattr(entry.schema, "renamed", {}).items():
        if old in options and new not in options:
            options[new] = options.pop(old)
            warn(Diagnostic("P403", f"option '{old}' of sampler {name} is now called '{new}'",
                            None, f"write {new} = ..."))  # fmt: skip
    return CATALOGUE.samplers.implementation(name, "field")(entry.schema(**options))


__all__ = [
    "HMCKernel", "Kernel", "LangevinKernel", "Phi4Action", "Sampler", "SamplerResult", "XYAction",
    "autograd_grad", "bind", "hmc", "initial_fields", "langevin", "make_sampler", "recorded",
]  # fmt: skip
