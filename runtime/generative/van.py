"""Variational free-energy training of a normalised autoregressive sampler (VAN; Wu, Wang, Zhang,
PRL 122, 080602 (2019)).

For a normalised q the variational free energy

    F_q = <E + log q / beta>_q = F + KL(q || p) / beta >= F,    p = exp(-beta E) / Z,

is minimised with the score-function (REINFORCE) gradient

    grad F_q = < (f - b) grad log q >_q,    f = E + log q / beta,

exact for any constant baseline b since <grad log q>_q = 0; the batch mean of f as b reduces the
variance. Samples are drawn without gradient: q's dependence on its parameters enters through
log q only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..distributed import SINGLE, World
from ..learners.parallel import reduce_gradients
from .symmetry import FlipSymmetrised, GroupSymmetrised

__all__ = ["VANStep", "anneal_beta", "van_step"]


@dataclass
class VANStep:
    """What one training step reports (per site, over the batch of B samples)."""

    beta: float  # the inverse temperature used at this step (annealed)
    free_energy: float  # F_q per site = mean(E + log q / beta) / N over the batch
    free_energy_err: float  # its standard error
    energy: float  # mean E / N
    entropy: float  # -mean(log q) / N
    loss: float


def anneal_beta(beta: float, anneal: float, step: int) -> float:
    """beta_t = beta * (1 - anneal ** (step + 1)) (anneal in [0, 1); 0: no annealing)."""
    if not 0.0 <= anneal < 1.0:
        raise ValueError(f"anneal must lie in [0, 1), got {anneal}")
    return beta * (1.0 - anneal ** (step + 1))


def van_step(model: torch.nn.Module, energy: Callable[[torch.Tensor], torch.Tensor], beta: float,
             u: torch.Tensor, optimizer: torch.optim.Optimizer, n_sites: int,
             clip: float | None = 1.0, u_flip: torch.Tensor | None = None,
             log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None,
             world: World = SINGLE, batch: int | None = None) -> VANStep:  # fmt: skip
    """One step of variational free-energy training: draw s ~ q with the uniforms u (B, N) (and
    u_flip (B,) for a FlipSymmetrised or GroupSymmetrised model), no grad through sampling;
    f = E(s) + log q(s) / beta (per sample, detached), log q from ``log_prob`` where given (a
    surrogate of the model's log q for the gradient: stochastic symmetrisation), else from
    ``model.log_prob``; the score-function (REINFORCE) gradient with the batch-mean baseline:
    loss = mean((f - mean f) * log q(s)); gradient norm clipped to ``clip`` (None: no clipping);
    one optimizer step. ``energy`` maps (B, N) int64 indices to (B,) energies (float64).

    The statistics (f, E, log q) are formed in float64 whatever the model's dtype.

    On several processes (``world``) u (and u_flip) are this rank's block of the ``batch``
    samples: f, E and log q are gathered in global order for the baseline and the statistics,
    this rank's share of the loss is sum((f - mean f) log q) / batch, and the gradients are
    summed over the ranks before the (identical) step of every rank."""
    if beta <= 0.0:
        raise ValueError(f"van_step needs beta > 0, got {beta}")
    if u_flip is None and isinstance(model, FlipSymmetrised | GroupSymmetrised):
        raise ValueError(f"a {type(model).__name__} model needs u_flip (B,) uniforms")
    with torch.no_grad():
        s = model.sample(u) if u_flip is None else model.sample(u, u_flip)
    log_q = (log_prob or model.log_prob)(s)
    e = energy(s).to(dtype=torch.float64, device=log_q.device).reshape(-1)
    lq = log_q.detach().to(torch.float64)
    f = e + lq / beta
    if world.size > 1:
        return _parallel_update(model, log_q, e, lq, f, beta, optimizer, n_sites, clip, world,
                                batch)  # fmt: skip
    b = f.shape[0]
    # loss in the model's dtype; its value is ~0 by construction, only its gradient matters
    loss = ((f - f.mean()).to(log_q.dtype) * log_q).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    f_err = float(f.std(correction=1)) / math.sqrt(b) if b > 1 else float("nan")
    return VANStep(beta=float(beta), free_energy=float(f.mean()) / n_sites,
                   free_energy_err=f_err / n_sites, energy=float(e.mean()) / n_sites,
                   entropy=-float(lq.mean()) / n_sites, loss=float(loss.detach()))  # fmt: skip


def _parallel_update(model: torch.nn.Module, log_q: torch.Tensor, e: torch.Tensor,
                     lq: torch.Tensor, f: torch.Tensor, beta: float,
                     optimizer: torch.optim.Optimizer, n_sites: int, clip: float | None,
                     world: World, batch: int) -> VANStep:  # fmt: skip
    """The data-parallel half of :func:`van_step`: the whole batch's baseline and statistics
    from the gathered per-sample values, the summed gradients, one step on every rank."""
    fg, eg, lqg = (world.all_gather(t, batch) for t in (f, e, lq))
    loss = ((f - fg.mean()).to(log_q.dtype) * log_q).sum() / batch
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    (total,) = reduce_gradients(model.parameters(), world, [float(loss.detach())])
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    f_err = float(fg.std(correction=1)) / math.sqrt(batch) if batch > 1 else float("nan")
    return VANStep(beta=float(beta), free_energy=float(fg.mean()) / n_sites,
                   free_energy_err=f_err / n_sites, energy=float(eg.mean()) / n_sites,
                   entropy=-float(lqg.mean()) / n_sites, loss=total)  # fmt: skip
