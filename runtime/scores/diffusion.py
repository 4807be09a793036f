"""Denoising score matching, flow matching and their samplers, batched over samples.

Fields x: (B, *lattice.shape); noise levels sigma and times t: (B,). Random numbers come from
:class:`~physml_lang.runtime.random.RandomStreams` (sample on the leading axis).

Training
- :func:`dsm_loss`: denoising score matching (Vincent 2011) over the noise levels: sigma
  log-uniform in [sigma_min, sigma_max] (the continuum of the geometric ladder), x = x0 +
  sigma eps, weight lambda(sigma) = sigma^2, so sigma^2 |s(x, sigma) + eps / sigma|^2 =
  |eps_theta(x, sigma) - eps|^2, averaged over sites and samples.
- :func:`fm_loss`: conditional flow matching (Lipman et al. 2023) with straight paths
  x_t = (1 - t) x0 + t x1, x0 ~ N(0, 1), x1 data, t ~ U(0, 1): |v(x_t, t) - (x1 - x0)|^2.

Sampling (uncorrected: no density)
- :func:`annealed_langevin` (Song & Ermon 2019): at each level sigma_i of the geometric ladder,
  ``sweeps`` steps x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) z, alpha_i = step sigma_i^2.
- :func:`reverse_sde`: the reverse-time VE SDE (Song et al. 2021) by Euler-Maruyama on a
  geometric grid sigma_0 = sigma_max > ... > sigma_K = sigma_min: x <- x + (sigma_k^2 -
  sigma_{k+1}^2) s(x, sigma_k) + sqrt(sigma_k^2 - sigma_{k+1}^2) z, then the denoising step
  x <- x + sigma_min^2 s(x, sigma_min) (Tweedie).

Sampling with a density (for Metropolis correction)
- :func:`ode_sample`: the probability-flow ODE of the VE SDE, dx/d(log sigma) = sigma eps(x,
  sigma), from z ~ N(0, sigma_max^2 + sd^2) at sigma_max to sigma_min; or the flow-matching ODE
  dx/dt = v(x, t) from z ~ N(0, 1) at t = 0 to t = 1. Both by ``steps`` fixed steps of RK4.
  log q(x) = log p0(z) - sum_k log |det dPhi_k / dx| where Phi_k is the k-th RK4 step as a map
  of the field and its Jacobian (N x N, N sites) is computed in full by reverse-mode autodiff
  (N copies of each sample, one backward pass: :func:`jacobian_rows`) and its log-determinant
  by LU (float64). This is EXACT for the discrete map actually used, to the rounding of the
  network's arithmetic (float32 by default, float64 on request), given the steps are
  invertible (checked through the sign of every determinant): q is the density of the samples
  returned, however coarse the steps, so an independence-Metropolis chain with it is exact.
  It is not the continuous-time likelihood of the ODE; :func:`ode_trace_logdet` gives that
  one's RK4-integrated divergence (exact traces), which converges to the same number as the
  steps grow (tests/scores/test_scores_core.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..random import RandomStreams
from .nets import ScoreNet, VelocityNet

Tensor = torch.Tensor
Drift = Callable[[Tensor, Tensor], Tensor]  # f(x (B, *shape), c (B,)) -> (B, *shape)
JACOBIAN_BYTES = 1 << 27  # activations of one chunk of Jacobians: about 128 MiB


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int, *,
                     dtype: torch.dtype = torch.float64, device=None) -> Tensor:  # fmt: skip
    """(levels,) descending geometric ladder sigma_max ... sigma_min."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), levels,
                                    dtype=dtype, device=device))  # fmt: skip


def _sites(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def _b(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


# ---------------------------------------------------------------- training losses


def dsm_loss(net: ScoreNet, x0: Tensor, sigma_max: float, sigma_min: float,
             streams: RandomStreams) -> Tensor:  # fmt: skip
    """sigma^2-weighted denoising score matching of a batch of data x0 (B, *shape), per site."""
    B = x0.shape[0]
    u = streams.uniform((B,), torch.float64).to(x0.dtype)
    sigma = torch.exp(math.log(sigma_max) + u * (math.log(sigma_min) - math.log(sigma_max)))
    eps = streams.normal(x0.shape, torch.float64).to(x0.dtype)
    x = x0 + _b(sigma, x0) * eps
    return ((net(x, sigma) - eps) ** 2).mean()


def fm_loss(net: VelocityNet, x1: Tensor, streams: RandomStreams) -> Tensor:
    """Conditional flow matching of a batch of data x1 (B, *shape), straight paths, per site."""
    B = x1.shape[0]
    t = streams.uniform((B,), torch.float64).to(x1.dtype)
    x0 = streams.normal(x1.shape, torch.float64).to(x1.dtype)
    xt = _b(1 - t, x1) * x0 + _b(t, x1) * x1
    return ((net(xt, t) - (x1 - x0)) ** 2).mean()


# ---------------------------------------------------------------- uncorrected samplers


@torch.no_grad()
def annealed_langevin(net: ScoreNet, sigmas: Tensor, sweeps: int, step: float,
                      x: Tensor, streams: RandomStreams) -> Tensor:  # fmt: skip
    """Annealed Langevin dynamics from x (B, *shape) (drawn N(0, sigma_max^2) by the caller)
    down the ladder ``sigmas`` (descending), ``sweeps`` steps per level."""
    B = x.shape[0]
    for sigma in sigmas.tolist():
        alpha = step * sigma * sigma
        s = torch.full((B,), sigma, dtype=x.dtype, device=x.device)
        for _ in range(sweeps):
            z = streams.normal(x.shape, torch.float64).to(x.dtype)
            x = x + 0.5 * alpha * net.score(x, s) + math.sqrt(alpha) * z
    return x


@torch.no_grad()
def reverse_sde(net: ScoreNet, sigmas: Tensor, x: Tensor, streams: RandomStreams) -> Tensor:
    """Euler-Maruyama of the reverse VE SDE along ``sigmas`` (descending), from x drawn
    N(0, sigma_0^2), then the Tweedie denoising step at the last level."""
    B = x.shape[0]
    sig = sigmas.tolist()
    for a, b in zip(sig[:-1], sig[1:]):
        d2 = a * a - b * b
        s = torch.full((B,), a, dtype=x.dtype, device=x.device)
        z = streams.normal(x.shape, torch.float64).to(x.dtype)
        x = x + d2 * net.score(x, s) + math.sqrt(d2) * z
    last = torch.full((B,), sig[-1], dtype=x.dtype, device=x.device)
    return x + sig[-1] ** 2 * net.score(x, last)


# ---------------------------------------------------------------- ODEs with exact densities


@dataclass(frozen=True)
class ODE:
    """dx/dc = f(x, c) from c0 to c1 in ``steps`` RK4 steps; the prior at c0 is
    N(0, prior_std^2) per site, or, given ``prior_var`` (*shape), the translation-invariant
    Gaussian with variance prior_var[k] in Fourier mode k (orthonormal DFT)."""

    drift: Drift
    c0: float
    c1: float
    steps: int
    prior_std: float
    prior_var: Tensor | None = None

    def prior(self, w: Tensor) -> Tensor:
        """Prior draws (B, *shape) from white noise w ~ N(0, 1) (B, *shape)."""
        if self.prior_var is None:
            return self.prior_std * w
        dims = tuple(range(1, w.dim()))
        amp = self.prior_var.sqrt().to(w.dtype)
        return torch.fft.ifftn(torch.fft.fftn(w, dim=dims, norm="ortho") * amp, dim=dims,
                               norm="ortho").real  # fmt: skip

    def log_prior(self, z: Tensor) -> Tensor:
        """log p0(z) (B,) in float64 of prior draws z (B, *shape)."""
        n = int(math.prod(z.shape[1:]))
        if self.prior_var is None:  # in z's dtype, then float64
            return ((-0.5 * (_sites(z) / self.prior_std) ** 2).sum(-1)
                    - n * (math.log(self.prior_std) + 0.5 * math.log(2 * math.pi))).double()
        z = z.double()
        dims = tuple(range(1, z.dim()))
        var = self.prior_var.double()
        zk = torch.fft.fftn(z, dim=dims, norm="ortho").abs() ** 2
        return -0.5 * _sites(zk / var).sum(-1) - 0.5 * float(torch.log(2 * math.pi * var).sum())

    @property
    def h(self) -> float:
        return (self.c1 - self.c0) / self.steps

    def times(self) -> list[float]:
        return [self.c0 + k * self.h for k in range(self.steps)]


def probability_flow(net: ScoreNet, sigma_max: float, sigma_min: float, steps: int,
                     spectral: bool = False) -> ODE:  # fmt: skip
    """The probability-flow ODE of the VE SDE in c = log sigma: dx/dc = sigma eps(x, sigma). The
    prior at sigma_max is N(0, sigma_max^2 + sd^2), the Gaussian of the data's second moment
    sd^2 smeared by the noise (the exact p_sigma_max of Gaussian data); ``spectral``: mode by
    mode N(0, sigma_max^2 + P(k)) with the data's power spectrum (the exact p_sigma_max of the
    Gaussian field with the data's two-point function: a broken phase's large zero mode)."""

    def drift(x: Tensor, c: Tensor) -> Tensor:
        sigma = torch.exp(c)
        return _b(sigma, x) * net(x, sigma)

    prior = math.sqrt(sigma_max**2 + float(net.sd) ** 2)
    var = sigma_max**2 + net.power.double() if spectral else None
    return ODE(drift, math.log(sigma_max), math.log(sigma_min), steps, prior, var)


def flow_matching_ode(net: VelocityNet, steps: int) -> ODE:
    """The flow-matching ODE dx/dt = v(x, t), t from 0 (N(0, 1)) to 1."""
    return ODE(net, 0.0, 1.0, steps, 1.0)


def rk4_step(f: Drift, x: Tensor, c: float, h: float) -> Tensor:
    """One classical Runge-Kutta step of dx/dc = f(x, c) from c to c + h (x (B, *shape))."""
    B = x.shape[0]

    def at(v: float) -> Tensor:
        return torch.full((B,), v, dtype=x.dtype, device=x.device)

    k1 = f(x, at(c))
    k2 = f(x + 0.5 * h * k1, at(c + 0.5 * h))
    k3 = f(x + 0.5 * h * k2, at(c + 0.5 * h))
    k4 = f(x + h * k3, at(c + h))
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


def jacobian_rows(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Full Jacobians d fn(x)_i / d x_j of a map acting sample by sample, (B, *shape) ->
    (B, *shape): (B, N, N). One forward and one backward pass over N copies of each sample,
    copy i back-propagating the unit cotangent e_i (reverse mode, row i of the Jacobian)."""
    B, n = x.shape[0], int(math.prod(x.shape[1:]))
    with torch.enable_grad():
        y = x.detach().repeat_interleave(n, 0).requires_grad_(True)  # (B n, *shape)
        out = fn(y).reshape(B, n, n)
        picked = out.diagonal(dim1=-2, dim2=-1).sum()
        (g,) = torch.autograd.grad(picked, y)
    return g.reshape(B, n, n)


def step_jacobians(f: Drift, x: Tensor, c: float, h: float) -> Tensor:
    """The full Jacobians dPhi/dx of one RK4 step at each sample: (B, N, N), N sites."""
    return jacobian_rows(lambda y: rk4_step(f, y, c, h), x)


def _chunk(x: Tensor, width: int) -> int:
    """Samples per chunk of Jacobians: N cotangents of every activation kept in memory."""
    n = int(math.prod(x.shape[1:]))
    per = n * n * max(width, 1) * 8 * 8
    return max(1, min(x.shape[0], JACOBIAN_BYTES // per))


class NonInvertible(Exception):
    """A step of the discrete ODE map had a non-positive Jacobian determinant."""


def ode_sample(ode: ODE, z: Tensor, width: int = 32) -> tuple[Tensor, Tensor]:
    """Integrate from the prior sample z (B, *shape) (distributed as ``ode.prior``): the
    samples x (B, *shape) and log q(x) (B,) of the discrete RK4 map, exactly (module doc)."""
    log_p0 = ode.log_prior(z)
    xs, logdets = [], []
    chunk = _chunk(z, width)
    for first in range(0, z.shape[0], chunk):
        x = z[first: first + chunk].detach()
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for c in ode.times():
            with torch.no_grad():
                J = step_jacobians(ode.drift, x, c, ode.h)
                sign, logabs = torch.linalg.slogdet(J.double())
                if bool((sign <= 0).any()):
                    raise NonInvertible(f"a step at c = {c:.4g} is not invertible")
                total += logabs
                x = rk4_step(ode.drift, x, c, ode.h)
        xs.append(x)
        logdets.append(total)
    x, logdet = torch.cat(xs), torch.cat(logdets)
    return x, log_p0.double() - logdet


def ode_trace_logdet(ode: ODE, z: Tensor) -> tuple[Tensor, Tensor]:
    """The continuous-time log-determinant: d(log det)/dc = tr df/dx integrated along the
    trajectory with RK4 on the augmented state (x, l), traces exact (full Jacobians of f).
    Returns x(c1) and integral of tr df/dx (B,)."""
    n = int(math.prod(z.shape[1:]))

    def tr(x: Tensor, c: Tensor) -> Tensor:
        cc = c.repeat_interleave(n, 0)
        J = jacobian_rows(lambda y: ode.drift(y, cc), x)
        return J.diagonal(dim1=-2, dim2=-1).sum(-1)

    def aug(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        return ode.drift(x, c), tr(x, c)

    x = z.detach()
    total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    B, h = z.shape[0], ode.h
    with torch.no_grad():
        for c in ode.times():
            at = [torch.full((B,), v, dtype=z.dtype, device=z.device)
                  for v in (c, c + 0.5 * h, c + h)]  # fmt: skip
            k1, l1 = aug(x, at[0])
            k2, l2 = aug(x + 0.5 * h * k1, at[1])
            k3, l3 = aug(x + 0.5 * h * k2, at[1])
            k4, l4 = aug(x + h * k3, at[2])
            x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
            total = total + (h / 6) * (l1 + 2 * l2 + 2 * l3 + l4)
    return x, total


__all__ = ["ODE", "NonInvertible", "annealed_langevin", "dsm_loss", "flow_matching_ode",
           "fm_loss", "geometric_sigmas", "ode_sample", "ode_trace_logdet", "probability_flow",
           "reverse_sde", "rk4_step", "step_jacobians"]
