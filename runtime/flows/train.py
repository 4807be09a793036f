"""Training steps of a normalising flow q of a field distribution p(phi) = exp(-S(phi)) / Z.

- reverse KL: KL(q || p) = <log q + S>_q + log Z, so F_q = <log q + S>_q >= -log Z; with
  phi = f(z), z ~ N(0, 1), its gradient is the reparameterised one, grad <log q(f(z)) + S(f(z))>_z
  (no score-function term: the expectation is over the fixed prior);
- forward KL (warm start): KL(p || q) = -<log q>_p + const, on samples of p (here HMC chains of
  the model), through the inverse map phi -> z.

Per-site values are divided by the number of sites V. ``beta`` (annealing) multiplies the action.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..distributed import SINGLE, World
from ..learners.parallel import reduce_gradients
from .coupling import CouplingFlow

Tensor = torch.Tensor

__all__ = ["StepResult", "anneal_beta", "forward_kl_step", "reverse_kl_step"]


@dataclass
class StepResult:
    """One training step: the loss (per site) and the batch's F_q per site with its error."""

    loss: float
    free_energy_q: float  # <log q + S>_q / V over the batch (reverse KL), nan for forward KL
    free_energy_q_err: float
    ess_per_sample: float  # of the batch (reverse KL), nan for forward KL


def anneal_beta(anneal: float, step: int) -> float:
    """beta_t = 1 - anneal^(t+1) (1 when anneal = 0)."""
    return 1.0 - anneal ** (step + 1) if anneal > 0 else 1.0


def _clip_and_step(flow: CouplingFlow, optimizer: torch.optim.Optimizer, clip: float | None) -> None:
    if clip:
        torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    optimizer.step()


def reverse_kl_step(flow: CouplingFlow, action: Callable[[Tensor], Tensor], z: Tensor,
                    optimizer: torch.optim.Optimizer, clip: float | None = None,
                    beta: float = 1.0, world: World = SINGLE,
                    batch: int | None = None) -> StepResult:  # fmt: skip
    """One Adam step on <log q(f(z)) + beta S(f(z))> / V over the prior draws z (B, *lattice).
    On several processes (``world``) z is this rank's block of the ``batch`` draws: the
    gradients are summed over the ranks and the batch statistics formed from every block."""
    if world.size > 1:
        return _reverse_kl_parallel(flow, action, z, optimizer, clip, beta, world, batch)
    v = flow.n_sites
    phi, logq = flow(z)
    S = action(phi)
    f = logq + beta * S
    loss = f.mean() / v
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _clip_and_step(flow, optimizer, clip)
    with torch.no_grad():
        f1 = (logq + S).detach().double()
        log_w = -f1
        w = torch.exp(log_w - log_w.max())
        ess = float(w.sum() ** 2 / (w * w).sum()) / len(w)
    return StepResult(float(loss.detach()), float(f1.mean()) / v,
                      float(f1.std()) / math.sqrt(len(f1)) / v, ess)  # fmt: skip


def _reverse_kl_parallel(flow: CouplingFlow, action: Callable[[Tensor], Tensor], z: Tensor,
                         optimizer: torch.optim.Optimizer, clip: float | None, beta: float,
                         world: World, batch: int) -> StepResult:  # fmt: skip
    """The data-parallel reverse-KL step: this rank's share sum(f) / (B V) of the loss, the
    gradients all-reduced, the same step on every rank; statistics of the gathered batch."""
    v = flow.n_sites
    phi, logq = flow(z)
    S = action(phi)
    f = logq + beta * S
    loss = f.sum() / (batch * v)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    reduce_gradients(flow.parameters(), world)
    _clip_and_step(flow, optimizer, clip)
    with torch.no_grad():
        fb, f1 = (world.all_gather(t.detach().double(), batch) for t in (f, logq + S))
        log_w = -f1
        w = torch.exp(log_w - log_w.max())
        ess = float(w.sum() ** 2 / (w * w).sum()) / len(w)
    return StepResult(float(fb.mean()) / v, float(f1.mean()) / v,
                      float(f1.std()) / math.sqrt(len(f1)) / v, ess)  # fmt: skip


def forward_kl_step(flow: CouplingFlow, phi: Tensor, optimizer: torch.optim.Optimizer,
                    clip: float | None = None, world: World = SINGLE,
                    batch: int | None = None) -> StepResult:  # fmt: skip
    """One Adam step on -<log q(phi)> / V over samples phi (B, *lattice) of p (on several
    processes: this rank's block of ``batch`` samples, gradients summed over the ranks)."""
    if world.size > 1:
        _, logq = flow.inverse(phi)
        loss = -logq.sum() / (batch * flow.n_sites)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        (total,) = reduce_gradients(flow.parameters(), world, [float(loss.detach())])
        _clip_and_step(flow, optimizer, clip)
        return StepResult(total, math.nan, math.nan, math.nan)
    _, logq = flow.inverse(phi)
    loss = -logq.mean() / flow.n_sites
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _clip_and_step(flow, optimizer, clip)
    return StepResult(float(loss.detach()), math.nan, math.nan, math.nan)
