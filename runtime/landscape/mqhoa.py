"""The multi-scale quantum harmonic oscillator algorithm (MQHOA; P. Wang et al. 2013, 2018).

The objective f is the potential of a Schrodinger equation; at diffusion constant D the ground
state of a harmonic approximation is a Gaussian of width sigma ~ sqrt(D). The algorithm anneals
D through scales sigma_s and, at each scale, evolves towards the ground state with k Gaussian
samplers (wave packets) centred at x_1..x_k. Three nested loops (the published variant):

1. energy-level stabilisation: every centre draws ``samples_per_centre`` points from
   N(x_i, sigma_s^2 I) (reflected into the box) and moves to the best of them if it lowers f;
   the level is stable when the spread of the centres changed by less than sigma_s in that
   round: |sigma_k(t) - sigma_k(t-1)| < sigma_s, with sigma_k the largest per-coordinate
   standard deviation of the k centres;
2. energy-level descent (on a stable level): the worst centre is replaced by the mean of the
   centres, which pulls the population into the current well (the mean is evaluated every
   round, stable or not: one evaluation, counted, so a round costs k m + 1);
3. scale reduction: when sigma_k < sigma_s (the population fits in one ground state of width
   sigma_s), sigma_s <- sigma_s / 2; the run ends when sigma_s < sigma_min.

The seed text (Acta Phys. Sin. 74, 060701) describes the two outer loops (annealing D, evolution
at fixed D) and the Gaussian population sampling; the stability test and the mean replacement
are the choices of the MQHOA papers as we read them. sigma_s starts at the largest box width.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..random import RandomStreams
from .errors import LandscapeError
from .grid import reflect_into_box
from .optimisers import (
    Objective,
    OptimiseResult,
    Runs,
    check_box,
    check_positive,
    evaluate,
    uniform_in_box,
)


def mqhoa(f: Objective, lower: torch.Tensor, upper: torch.Tensor, streams: RandomStreams, *,
          max_evaluations: int, k: int = 20, sigma_min: float = 1e-6,
          f_target: float | None = None, tol: float = 1e-4, samples_per_centre: int = 1,
          sigma_initial: float | None = None, restart: bool = True) -> OptimiseResult:  # fmt: skip
    """Minimise f over the box [lower, upper] (n,) with MQHOA; see the module docstring. The
    trace has a row at each scale reduction (scale = the new sigma_s) and at improvements."""
    return mqhoa_runs(f, lower, upper, streams, runs=1, max_evaluations=max_evaluations, k=k,
                      sigma_min=sigma_min, f_target=f_target, tol=tol,
                      samples_per_centre=samples_per_centre, sigma_initial=sigma_initial,
                      restart=restart)[0]  # fmt: skip


def mqhoa_runs(f: Objective, lower: torch.Tensor, upper: torch.Tensor, streams: RandomStreams,
               *, runs: int, max_evaluations: int, k: int = 20, sigma_min: float = 1e-6,
               f_target: float | None = None, tol: float = 1e-4, samples_per_centre: int = 1,
               sigma_initial: float | None = None, restart: bool = True
               ) -> list[OptimiseResult]:  # fmt: skip
    """``runs`` independent MQHOA runs batched as (R, k, n); run r draws from streams r k ..
    (r + 1) k - 1 of ``streams``, so its result does not depend on R. Each run has its own
    budget, target and scale; returns one result per run."""
    lower, upper = check_box(lower, upper)
    device, dtype, n = lower.device, lower.dtype, lower.numel()
    if not (isinstance(k, int) and k >= 2):
        raise LandscapeError(f"MQHOA needs k >= 2 samplers, got k = {k!r}",
                             "use k = 20 (the papers' default)")  # fmt: skip
    if not (isinstance(samples_per_centre, int) and samples_per_centre >= 1):
        raise LandscapeError(f"samples_per_centre must be an integer >= 1, got "
                             f"{samples_per_centre!r}", "use samples_per_centre = 1")  # fmt: skip
    if not (isinstance(runs, int) and runs >= 1):
        raise LandscapeError(f"runs must be an integer >= 1, got {runs!r}", "use runs = 1")
    check_positive("sigma_min", sigma_min, "give the final scale, e.g. sigma_min = 1e-6")
    width = float((upper - lower).max())
    sigma0 = width if sigma_initial is None else sigma_initial
    check_positive("sigma_initial", sigma0, "leave sigma_initial unset: the box width")
    m = samples_per_centre
    book = Runs(runs, n, max_evaluations, f_target, tol, device, dtype)
    if k > max_evaluations:
        raise LandscapeError(
            f"the budget of {max_evaluations} evaluations does not pay for the k = {k} initial "
            "centres", f"give max_evaluations >> k, e.g. {1000 * k}")  # fmt: skip

    restarted = np.zeros(runs, dtype=np.int64)
    x = uniform_in_box(streams, (runs, k), lower, upper)  # (R, k, n)
    rows = book.active()
    fx = evaluate(f, x)
    sigma = torch.full((runs,), sigma0, device=device, dtype=dtype)
    book.record(rows, fx, x, scale=sigma)
    spread_prev = x.std(1, unbiased=False).amax(-1)
    cost = k * m + 1  # per iteration: k m samples and the mean of a stable level
    while True:
        book.can_afford(cost)
        rows = book.active()
        if rows.size == 0:
            break
        z = streams.normal((runs * k, m * n), dtype).reshape(runs, k, m, n)
        idx = torch.as_tensor(rows, device=device)
        xa, fa, sa = x[idx], fx[idx], sigma[idx]  # (A, k, n), (A, k), (A,)
        samples = reflect_into_box(xa[:, :, None] + sa[:, None, None, None] * z[idx],
                                   lower, upper)  # fmt: skip
        fs = evaluate(f, samples)  # (A, k, m)
        # energy-level stabilisation: each centre moves to its best sample if that is lower
        fbest, jbest = fs.min(-1)
        better = fbest < fa
        moved = samples.gather(2, jbest[:, :, None, None].expand(-1, -1, 1, n)).squeeze(2)
        xa = torch.where(better[..., None], moved, xa)
        fa = torch.where(better, fbest, fa)
        spread = xa.std(1, unbiased=False).amax(-1)  # sigma_k (A,)
        stable = (spread - spread_prev[idx]).abs() < sa
        # energy-level descent on a stable level: the worst centre goes to the mean
        mean = xa.mean(1, keepdim=True)  # (A, 1, n)
        fmean = evaluate(f, mean)  # (A, 1)
        fworst, worst = fa.max(1)
        fmin, jmin = fa.min(1)
        ar = torch.arange(len(rows), device=device)
        # a mean above the worst would stall the descent (a multimodal well): take the best
        use_mean = fmean[:, 0] < fworst
        target = torch.where(use_mean[:, None], mean[:, 0], xa[ar, jmin])  # (A, n)
        ftarget = torch.where(use_mean, fmean[:, 0], fmin)
        replace = torch.zeros_like(fa, dtype=torch.bool)
        replace[ar, worst] = stable
        xa = torch.where(replace[..., None], target[:, None], xa)
        fa = torch.where(replace, ftarget[:, None], fa)
        spread_new = xa.std(1, unbiased=False).amax(-1)
        # scale reduction: the population fits in one ground state of width sigma_s
        ground = spread_new < sa
        sa = torch.where(ground, sa / 2, sa)
        x[idx], fx[idx], sigma[idx], spread_prev[idx] = xa, fa, sa, spread_new
        evaluated = torch.cat([samples.reshape(len(rows), k * m, n), mean], 1)
        fevaluated = torch.cat([fs.reshape(len(rows), k * m), fmean], 1)
        flags = book.record(rows, fevaluated, evaluated, scale=sa,
                            extra=torch.stack([ground.to(dtype), (sa < sigma_min).to(dtype), sa],
                                              1))  # fmt: skip
        for a in np.nonzero(flags[:, 0] > 0)[0]:
            book.trace_row(int(rows[a]), float(flags[a, 2]), force=True)
        converged = rows[flags[:, 1] > 0]  # sigma_s < sigma_min
        if converged.size and restart:
            # a fresh population at the first scale, drawn from a family named by (run,
            # restart) so that no run's numbers depend on the others; f unknown (+inf): the
            # first samples are accepted
            for r in converged.tolist():
                fresh = uniform_in_box(streams.fork(1, r, int(restarted[r])), (1, k), lower,
                                       upper)[0]  # fmt: skip
                restarted[r] += 1
                x[r], fx[r], sigma[r] = fresh, math.inf, sigma0
                spread_prev[r] = fresh.std(0, unbiased=False).amax()
                book.trace_row(r, sigma0, force=True)
        elif converged.size:
            book.running[converged] = False
    return book.results([{"final_sigma": float(s), "restarts": int(c)}
                         for s, c in zip(sigma.tolist(), restarted)])  # fmt: skip


__all__ = ["mqhoa", "mqhoa_runs"]
