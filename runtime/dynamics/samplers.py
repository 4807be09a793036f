"""Gradient-based samplers of continuous fields: HMC, overdamped Langevin (ULA), MALA.

Target density pi(x) ∝ exp(-S(x)) for a field x of shape (C, *site_shape) (C independent chains;
a vector of n components, or a lattice field). The caller gives the action ``S(x) -> (C,)`` and
its gradient ``grad_S(x) -> (C, *site_shape)`` -- derived symbolically by the compiler or by
autograd (:func:`autograd_grad`).

- ``hmc``: momenta p ~ N(0, m), ``n_leapfrog`` steps of the same leapfrog/Yoshida integrator used
  for dynamics on H(x, p) = S(x) + |p|^2 / 2m, Metropolis accept with the exact H. Exact (the
  integrator is volume preserving and reversible).
- ``ula``: x' = x - h grad S + sqrt(2h) xi. Biased at O(h) (no accept step).
- ``mala``: the ULA proposal with a Metropolis-Hastings correction. Exact.

Reference actions: :class:`Phi4Action` (lattice phi^4) and :class:`XYAction` (XY model, angles).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import HMCOptions, LangevinOptions

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


def hmc(
    action: Action,
    grad_action: Action,
    x0: Tensor,
    generator: torch.Generator,
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
    """Hybrid/Hamiltonian Monte Carlo, batched over chains x0: (C, *site_shape).

    ``jitter`` draws each chain's step size uniformly in step_size * [1 - j, 1 + j] per
    trajectory (avoids resonances with the trajectory length). Records every ``thin``-th
    trajectory after ``burn_in`` trajectories: T = n_samples.
    """
    step = {"leapfrog": leapfrog_step, "yoshida4": yoshida4_step}[integrator]
    system = HamiltonianSystem(
        lambda x, p: action(x) + _sum_sites(p * p) / (2 * mass),
        lambda x, p: grad_action(x),
        lambda x, p: p / mass,
        True,
        "hmc",
    )
    x = x0.clone()
    C = x.shape[0]
    accepted = torch.zeros(C, dtype=x.dtype, device=x.device)
    samples: list[Tensor] = []
    obs: dict[str, list[Tensor]] = {}
    total = burn_in + n_samples * thin
    dH_sum = torch.zeros((), dtype=x.dtype, device=x.device)
    exp_mdH = torch.zeros((), dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for it in range(total):
            p = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            p = p * mass**0.5
            H0 = system.hamiltonian(x, p)
            dt: float | Tensor = step_size
            if jitter > 0:
                u = torch.rand(C, generator=generator, dtype=x.dtype, device=x.device)
                dt = _bcast(step_size * (1 + jitter * (2 * u - 1)), x)
            xn, pn = x, p
            for _ in range(n_leapfrog):
                xn, pn = step(system, xn, pn, dt)
            H1 = system.hamiltonian(xn, pn)
            dH = H1 - H0
            dH = torch.where(torch.isfinite(dH), dH, torch.full_like(dH, float("inf")))
            u = torch.rand(C, generator=generator, dtype=x.dtype, device=x.device)
            acc = torch.log(u) < -dH  # min(1, exp(-dH)) with the exact H
            x = torch.where(_bcast(acc, x), xn, x)
            if it >= burn_in:
                accepted += acc.to(x.dtype)
                # <exp(-dH)> = 1 is an exactness check of the integrator (Creutz).
                exp_mdH += torch.exp(-dH.clamp_min(-50)).mean()
                dH_sum += dH.clamp_max(1e6).mean()
                if (it - burn_in) % thin == thin - 1:
                    _record(x, measure, samples, obs)
    n = max(total - burn_in, 1)
    info = {"mean_dH": float(dH_sum) / n, "mean_exp_minus_dH": float(exp_mdH) / n}
    return _finish(samples, obs, accepted, total - burn_in, x, info)


def langevin(
    action: Action,
    grad_action: Action,
    x0: Tensor,
    generator: torch.Generator,
    n_samples: int,
    step_size: float,
    burn_in: int = 0,
    thin: int = 1,
    metropolis: bool = False,
    measure: Measure | None = None,
) -> SamplerResult:
    """Overdamped Langevin x' = x - h grad S(x) + sqrt(2h) xi (ULA), or MALA when
    ``metropolis``: accept with min(1, pi(x') q(x|x') / (pi(x) q(x'|x))), where
    q(y|x) ∝ exp(-|y - x + h grad S(x)|^2 / 4h)."""
    h = step_size
    x = x0.clone()
    C = x.shape[0]
    accepted = torch.zeros(C, dtype=x.dtype, device=x.device)
    samples: list[Tensor] = []
    obs: dict[str, list[Tensor]] = {}
    total = burn_in + n_samples * thin
    with torch.no_grad():
        S, g = (action(x), grad_action(x)) if metropolis else (None, grad_action(x))
        for it in range(total):
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            xn = x - h * g + (2 * h) ** 0.5 * xi
            gn = grad_action(xn)
            if metropolis:
                Sn = action(xn)
                fwd = _sum_sites((xn - x + h * g) ** 2) / (4 * h)  # -log q(xn | x)
                bwd = _sum_sites((x - xn + h * gn) ** 2) / (4 * h)  # -log q(x | xn)
                log_a = -(Sn - S) - bwd + fwd
                log_a = torch.where(torch.isfinite(log_a), log_a, torch.full_like(log_a, -1e30))
                u = torch.rand(C, generator=generator, dtype=x.dtype, device=x.device)
                acc = torch.log(u) < log_a
                m = _bcast(acc, x)
                x, g, S = torch.where(m, xn, x), torch.where(m, gn, g), torch.where(acc, Sn, S)
            else:
                acc = torch.ones(C, dtype=torch.bool, device=x.device)
                x, g = xn, gn
            if it >= burn_in:
                accepted += acc.to(x.dtype)
                if (it - burn_in) % thin == thin - 1:
                    _record(x, measure, samples, obs)
    return _finish(samples, obs, accepted, total - burn_in, x, {})


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
    """A configured sampler: ``run(action, grad_action, x0, generator, measure=None)``."""

    name: str
    options: BaseModel
    exact: bool
    _run: Callable[..., SamplerResult]

    def run(self, action: Action, grad_action: Action, x0: Tensor, generator: torch.Generator,
            measure: Measure | None = None) -> SamplerResult:  # fmt: skip
        if x0.shape[0] != self.options.chains:
            raise ValueError(f"x0 has {x0.shape[0]} chains, options say {self.options.chains}")
        return self._run(action, grad_action, x0, generator, measure)


def _hmc_factory(o: HMCOptions) -> Sampler:
    def run(a: Action, g: Action, x0: Tensor, gen: torch.Generator, m: Measure | None):
        return hmc(a, g, x0, gen, o.samples, o.step_size, o.n_leapfrog, o.burn_in, o.thin,
                   o.mass, o.jitter, o.integrator, m)  # fmt: skip

    return Sampler("hmc", o, True, run)


def _langevin_factory(metropolis: bool) -> Callable[[LangevinOptions], Sampler]:
    def factory(o: LangevinOptions) -> Sampler:
        def run(a: Action, g: Action, x0: Tensor, gen: torch.Generator, m: Measure | None):
            return langevin(a, g, x0, gen, o.samples, o.step_size, o.burn_in, o.thin,
                            metropolis, m)  # fmt: skip

        return Sampler("mala" if metropolis else "ula", o, metropolis, run)

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
    (pydantic errors)."""
    entry = CATALOGUE.samplers.get(name, "field")
    if entry is None:
        known = sorted(CATALOGUE.samplers.names("field"))
        raise KeyError(f"unknown sampler '{name}'; known: {', '.join(known)}")
    return CATALOGUE.samplers.implementation(name, "field")(entry.schema(**options))


__all__ = [
    "Phi4Action", "Sampler", "SamplerResult", "XYAction", "autograd_grad", "bind", "hmc",
    "langevin", "make_sampler",
]  # fmt: skip
