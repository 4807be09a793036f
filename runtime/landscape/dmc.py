"""Diffusion Monte Carlo: the ground state of H = -D laplacian + V(x), x in R^n, by a population
of walkers propagated in imaginary time (Anderson 1975; Reynolds, Ceperley, Alder & Lester 1982;
Umrigar, Nightingale & Runge 1993). For electrons in atomic units D = 1/2 and n = 3 * electrons;
fixed nuclei are part of V.

Walkers sample f(x, tau) = psi_T(x) psi(x, tau), which tends to psi_T psi_0 as tau -> infinity.
Each step of length dtau:

- without a trial function (psi_T = 1): diffuse x' = x + sqrt(2 D dtau) xi, and branch with
  w = exp(-dtau ((V(x) + V(x')) / 2 - E_ref));
- with a trial function (importance sampling): drift-diffuse
  x' = x + 2 D dtau grad log psi_T(x) + sqrt(2 D dtau) xi, accept x' with the Metropolis
  probability min(1, psi_T(x')^2 G(x <- x') / (psi_T(x)^2 G(x' <- x))) (G the drift-diffusion
  Gaussian; this removes the time-step error of the drift in the VMC limit), and branch on the
  local energy E_L = -D (lap log psi_T + |grad log psi_T|^2) + V with
  w = exp(-dtau_eff ((E_L(x) + E_L(x_new)) / 2 - E_ref)), where dtau_eff = dtau * (accepted
  mean square displacement / proposed one), accumulated over the steps before this one.

Branching: walker i becomes floor(w_i + u_i) copies (u uniform). With a trial function the
current and the proposed walkers share one buffer, so accept/reject and branching are a single
gather of rows (kept or accepted) per walker quantity.
Population control: E_ref = E_est - feedback * ln(N / N_target), E_est the mean mixed energy of
the last half of the steps so far. ln(N / N_target) then relaxes at the rate ``feedback`` per
unit imaginary time (the C / (g dtau) of Umrigar et al. with g dtau = 1 / feedback); the bias
this feedback causes is ~ 1 / N_target (dmc_analysis.extrapolate_population removes it).
``feedback = 0`` is Anderson's original scheme: E_ref stays at its initial value.

Estimators: the mixed energy of each step sum_i w_i E_L(x_i) / sum_i w_i (psi_T = 1: the mean
potential, also an unbiased mixed estimator since H 1 = V), and the growth energy
E_ref - ln(sum_i w_i / N) / dtau_eff; both averaged after burn-in, errors by binning.
``energy_cutoff`` clips the energies in the weights (singular potentials, large dtau).

Cost: one host synchronisation per step (the new population, which sizes the copies, with the
step's energy sums; NaN and -inf energies are detected in the same transfer), so E_ref, E_est
and dtau_eff are host floats; no loop over walkers. On the CPU the normals come from the
compiled draws of RandomStreams (runtime/random_kernels.py).

Only NODELESS ground states are exact here: bosons, one electron, or two electrons in a singlet
(psi_0 > 0 everywhere); the walker density is a probability, so psi_T must be positive. For
fermions with nodes this would be the fixed-node approximation, without the node handling
(the drift is not limited near nodes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from physml_lang.runtime.landscape.errors import LandscapeError
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import Estimate, binning_analysis

INIT_STEPS = 200  # Metropolis sweeps of |psi_T|^2 that place the walkers when x0 is not given
INIT_STEP_SIZE = 0.4  # Gaussian proposal width of those sweeps (bohr)


class Trial(Protocol):
    """A positive trial function psi_T on R^n; every method maps x (W, n) to the value at
    each walker. A trial may also define ``derivatives(x) -> (log_psi (W,), grad (W, n),
    laplacian (W,))``, which the engine then calls instead of the three methods (one pass that
    shares the distances and orbitals they all need)."""

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        """log psi_T(x): (W,)."""
        ...

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        """grad log psi_T(x): (W, n)."""
        ...

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        """laplacian of log psi_T(x): (W,)."""
        ...


class AutogradTrial:
    """A Trial from log psi_T alone: gradient and laplacian by torch.autograd (the laplacian
    costs n backward passes, one per coordinate; hand-written derivatives are much faster)."""

    def __init__(self, log_psi_fn: Callable[[torch.Tensor], torch.Tensor]):
        self.log_psi_fn = log_psi_fn

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_psi_fn(x)

    def _grad(self, x: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.log_psi_fn(xg).sum(), xg, create_graph=create_graph)
        return xg, grad

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return self._grad(x, False)[1].detach()

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        xg, grad = self._grad(x, True)
        lap = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        with torch.enable_grad():
            for i in range(x.shape[1]):  # coordinates, not walkers
                (second,) = torch.autograd.grad(grad[:, i].sum(), xg, retain_graph=True)
                lap = lap + second[:, i]
        return lap.detach()


def autograd_trial(log_psi_fn: Callable[[torch.Tensor], torch.Tensor]) -> AutogradTrial:
    """A Trial whose gradient and laplacian come from torch.autograd of ``log_psi_fn``
    ((W, n) -> (W,), differentiable in x)."""
    return AutogradTrial(log_psi_fn)


@dataclass
class DMCResult:
    """The outcome of a run. ``energy``: mixed estimator after burn-in (binning error);
    ``growth_energy``: growth estimator after burn-in; traces have one entry per step (T,):
    ``population`` (walkers after branching), ``e_ref`` (used in that step's weights),
    ``energy`` and ``growth`` (per-step estimators); ``acceptance``: accepted fraction of the
    drift-diffusion moves (1 without a trial); ``effective_dtau``: dtau_eff at the end;
    ``walker_steps``: sum of the populations propagated; ``walltime``: seconds of propagation;
    ``positions``: the final walkers (N, n) on the run's device; ``snapshots``: positions every
    ``record_every`` steps (CPU)."""

    energy: Estimate
    growth_energy: Estimate
    population: np.ndarray
    e_ref: np.ndarray
    energy_trace: np.ndarray
    growth_trace: np.ndarray
    acceptance: float
    effective_dtau: float
    walker_steps: int
    walltime: float
    positions: torch.Tensor
    snapshots: list[torch.Tensor] = field(default_factory=list)


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_i a[w, i] b[w, i]: (W, n), (W, n) -> (W,). A matrix-vector product with ones, which
    torch runs ~6x faster on the CPU than ``(a * b).sum(dim=1)`` (a reduction over a short
    inner axis)."""
    return (a * b) @ torch.ones(a.shape[1], device=a.device, dtype=a.dtype)


def _check_settings(n: int, walkers: int, dtau: float, steps: int, burn_in: int, D: float,
                    feedback: float, max_factor: float) -> None:  # fmt: skip
    problems = []
    if n < 1:
        problems.append(f"dimension n = {n} must be >= 1")
    if walkers < 1:
        problems.append(f"walkers = {walkers} must be >= 1")
    if not dtau > 0:
        problems.append(f"dtau = {dtau} must be positive")
    if not 0 <= burn_in < steps:
        problems.append(f"burn_in = {burn_in} must be in [0, steps = {steps})")
    if not D > 0:
        problems.append(f"D = {D} must be positive")
    if not feedback >= 0:
        problems.append(f"feedback = {feedback} must be >= 0")
    if not max_factor > 1:
        problems.append(f"max_factor = {max_factor} must exceed 1")
    if problems:
        raise LandscapeError("diffusion Monte Carlo: " + "; ".join(problems),
                             "e.g. walkers = 2000, dtau = 0.01, steps = 5000, burn_in = 1000")  # fmt: skip


def _fmt(x: torch.Tensor) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in x.detach().cpu().tolist()) + ")"


def _local_energy(potential: Callable[[torch.Tensor], torch.Tensor], trial: Trial | None,
                  x: torch.Tensor, D: float
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:  # fmt: skip
    """(E_L (W,), log psi_T (W,), grad log psi_T (W, n)) at x; psi_T = 1 without a trial."""
    v = potential(x)
    if trial is None:
        return v, None, None
    combined = getattr(trial, "derivatives", None)
    if combined is not None:
        log_psi, grad, lap = combined(x)
    else:
        log_psi, grad, lap = trial.log_psi(x), trial.grad_log_psi(x), trial.laplacian_log_psi(x)
    return -D * (lap + _row_dot(grad, grad)) + v, log_psi, grad


def _sample_trial(trial: Trial, x: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
    """INIT_STEPS random-walk Metropolis sweeps of |psi_T|^2 from x (W, n)."""
    log_p = 2 * trial.log_psi(x)
    for _ in range(INIT_STEPS):
        xp = x + INIT_STEP_SIZE * streams.normal(x.shape, x.dtype)
        log_pp = 2 * trial.log_psi(xp)
        accept = torch.log(streams.uniform((x.shape[0],), x.dtype)) < log_pp - log_p
        x = torch.where(accept[:, None], xp, x)
        log_p = torch.where(accept, log_pp, log_p)
    return x


def diffusion_monte_carlo(potential: Callable[[torch.Tensor], torch.Tensor], n: int,
                          walkers: int, dtau: float, steps: int, burn_in: int,
                          streams: RandomStreams, trial: Trial | None = None,
                          x0: torch.Tensor | None = None, D: float = 0.5, feedback: float = 1.0,
                          max_factor: float = 10.0, e_ref: float | None = None,
                          energy_cutoff: float | None = 2.0,
                          dtype: torch.dtype = torch.float64, record_every: int = 0
                          ) -> DMCResult:  # fmt: skip
    """Propagate ``walkers`` (the target population) for ``steps`` steps of ``dtau``; estimate
    the ground-state energy from the steps after ``burn_in``.

    ``potential``: V, (W, n) -> (W,). ``trial``: psi_T for importance sampling (None: plain
    diffusion). ``x0``: initial walkers (W, n); default N(0, 1) per coordinate, then, with a
    trial, INIT_STEPS Metropolis sweeps of |psi_T|^2. ``e_ref``: the initial reference energy
    (default the mean local energy of the initial walkers). ``energy_cutoff`` c: clip the local
    energies that enter the branching weights to E_est +- c / sqrt(dtau) (default c = 2; None:
    no clipping, the exact-in-principle algorithm). Needed for a singular attractive V without a
    trial function (plain diffusion on -1/r: a walker landing at r << dtau gets weight
    exp(dtau / r), unbounded); the bias it
    causes vanishes as dtau -> 0 and is removed by the time-step extrapolation. A trial
    without the nuclear cusp (E_L ~ -c/r at a nucleus) needs it too at large dtau: walkers
    that land near the nucleus multiply faster than the drift moves them out. The mixed
    estimator itself is never clipped. The device is ``streams.device``.
    Raises LandscapeError when the population explodes past ``max_factor * walkers`` or dies
    out, or a local energy is NaN or -inf.
    """
    _check_settings(n, walkers, dtau, steps, burn_in, D, feedback, max_factor)
    if energy_cutoff is not None and not energy_cutoff > 0:
        raise LandscapeError(f"diffusion Monte Carlo: energy_cutoff = {energy_cutoff} must be "
                             "positive", "e.g. energy_cutoff = 2 (clips at E +- 2 / sqrt(dtau))")  # fmt: skip
    device = streams.device
    init, moves = streams.fork(0), streams.fork(1)
    if x0 is None:
        x = init.normal((walkers, n), dtype)
        if trial is not None:
            x = _sample_trial(trial, x, init)
    else:
        x = x0.to(device=device, dtype=dtype).reshape(-1, n)
    eloc, log_psi, grad = _local_energy(potential, trial, x, D)
    _check_shapes(x, eloc, log_psi, grad)
    if not bool(torch.isfinite(eloc).all()):
        bad = int((~torch.isfinite(eloc)).nonzero()[0, 0])
        raise LandscapeError(f"diffusion Monte Carlo: the initial local energy is "
                             f"{float(eloc[bad]):g} at walker {bad}, x = {_fmt(x[bad])}",
                             "start the walkers where V (and psi_T) are finite, or check the "
                             "potential for a singularity there")  # fmt: skip
    initial = x.shape[0]
    # the bookkeeping scalars (E_ref, E_est, dtau_eff, the traces) live on the host: the one
    # sync per step brings them over anyway, and a 0-d tensor op costs a dispatch each
    e_ref_f = float(eloc.mean()) if e_ref is None else float(e_ref)
    e_est = e_ref_f
    cap = int(max_factor * walkers)
    window = None if energy_cutoff is None else energy_cutoff / math.sqrt(dtau)
    sigma = math.sqrt(2 * D * dtau)
    c = 2 * D * dtau  # drift coefficient: x' = x + c grad log psi_T + sigma xi
    log_cap = math.log(cap + 1)

    energy: list[float] = []
    growth: list[float] = []
    e_refs: list[float] = []
    prefix = [0.0]  # cumulative energy sums
    moved_sq = proposed_sq = 0.0  # sums of accepted and proposed |dx|^2
    accepted = 0
    population: list[int] = []
    snapshots: list[torch.Tensor] = []
    dtau_eff = dtau
    rows = torch.arange(2 * walkers, device=device)  # gather indices (sliced; grown if needed)
    if trial is not None:  # current walkers in rows [0, W) of a pair buffer, proposals after them
        x_pair, grad_pair = _PairBuffer(x), _PairBuffer(grad)
        x, grad = x_pair.current, grad_pair.current

    start = time.perf_counter()
    for k in range(steps):
        size = x.shape[0]
        xi = moves.normal((size, n), dtype)
        # one draw per walker for the Metropolis test and one for branching, as a single call
        u = moves.uniform((size, 2), dtype)
        if trial is None:
            xp = torch.add(x, xi, alpha=sigma)
            e_new, _, _ = _local_energy(potential, None, xp, D)
            proposal_e = e_new
            sums = [e_new.sum()]
        else:
            step = torch.add(xi, grad, alpha=c / sigma).mul_(sigma)  # c grad + sigma xi
            xp = x_pair.propose_sum(x, step)
            ep, lp, gp = _local_energy(potential, trial, xp, D)
            proposal_e = ep
            # log G(x <- x') - log G(x' <- x) for the drift-diffusion Gaussian, as a difference
            # of squares: -(sigma / 2) g . (2 xi + (c / sigma) g), g = grad + grad' (c = sigma^2)
            g = grad + gp
            green = _row_dot(g, torch.add(xi, g, alpha=c / (2 * sigma)))
            log_ratio = torch.add(lp - log_psi, green, alpha=-sigma / 2).mul_(2)
            # (ep < inf: a NaN or infinite proposal energy is rejected; NaN and -inf then stop
            # the run below)
            acc = (torch.log(u[:, 0]) < log_ratio) & (ep < math.inf)
            accf = acc.to(dtype)
            sq = _row_dot(step, step)
            sums = [ep.sum(), sq.sum(), sq @ accf, accf.sum()]
            e_new = torch.where(acc, ep, eloc)

        if window is None:
            mean_e = eloc + e_new
        else:
            lo, hi = e_est - window, e_est + window
            mean_e = torch.clamp(eloc, lo, hi).add_(torch.clamp(e_new, lo, hi))
        exponent = mean_e.sub_(2 * e_ref_f).mul_(-0.5 * dtau_eff)
        weight = torch.nan_to_num_(exponent, nan=-math.inf).clamp_(max=log_cap).exp_()
        copies = torch.add(weight, u[:, 1]).floor_().to(torch.int64)
        # the one host sync of a step: the new population, the weighted energy sums, and the
        # sum of the proposals' energies, NaN or -inf exactly when one of them is (an unbounded
        # V, a bad psi_T; +inf alone is a hard wall, where walkers die)
        scalars = torch.stack([copies.sum().to(dtype), weight.sum(),
                               weight @ torch.nan_to_num(e_new), *sums])  # fmt: skip
        total, weight_sum, weighted_e, energy_sum, *moves_sums = scalars.tolist()
        if trial is not None:
            proposed_sq += moves_sums[0]
            moved_sq += moves_sums[1]
            accepted += int(moves_sums[2])
        size_new = int(total)
        population.append(size_new)
        energy.append(weighted_e / weight_sum)
        growth.append(e_ref_f - math.log(weight_sum / size) / dtau_eff)
        e_refs.append(e_ref_f)
        prefix.append(prefix[-1] + energy[-1])
        if math.isnan(energy_sum) or energy_sum == -math.inf:
            _raise_non_finite(k, xp, proposal_e)
        if size_new > cap or size_new == 0:  # before copying: it may not fit in memory
            _check_population(k, size_new, walkers, cap, xp if trial is None else
                              torch.where(acc[:, None], xp, x), e_new, e_ref_f)  # fmt: skip
        if trial is None:
            x = torch.repeat_interleave(xp, copies, dim=0, output_size=size_new)
            eloc = torch.repeat_interleave(e_new, copies, output_size=size_new)
        else:
            # accept/reject and branching as one gather from (current, proposed) pairs: row i
            # of the current walkers or row size + i of the proposals, copies[i] times
            if rows.numel() < size:
                rows = torch.arange(2 * size, device=device)
            pick = torch.repeat_interleave(torch.add(rows[:size], acc, alpha=size), copies,
                                           output_size=size_new)  # fmt: skip
            grad_pair.propose(gp)
            x, grad = x_pair.gather(pick), grad_pair.gather(pick)
            eloc = torch.cat([eloc, ep]).index_select(0, pick)
            log_psi = torch.cat([log_psi, lp]).index_select(0, pick)
            dtau_eff = dtau * moved_sq / proposed_sq
        if record_every and (k + 1) % record_every == 0:
            snapshots.append(x.detach().to("cpu", copy=True))  # x may be a buffer's view

        half = (k + 1) // 2
        e_est = (prefix[k + 1] - prefix[half]) / (k + 1 - half)
        if feedback > 0:
            e_ref_f = e_est - feedback * math.log(size_new / walkers)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    walltime = time.perf_counter() - start

    energy_np = np.asarray(energy, dtype=np.float64)
    growth_np = np.asarray(growth, dtype=np.float64)
    walker_steps = initial + sum(population[:-1])
    acceptance = 1.0 if trial is None else accepted / walker_steps
    return DMCResult(
        energy=binning_analysis(energy_np[burn_in:]),
        growth_energy=binning_analysis(growth_np[burn_in:]),
        population=np.asarray(population, dtype=np.int64),
        e_ref=np.asarray(e_refs, dtype=np.float64),
        energy_trace=energy_np,
        growth_trace=growth_np,
        acceptance=acceptance,
        effective_dtau=dtau_eff,
        walker_steps=walker_steps,
        walltime=walltime,
        positions=x.clone(),
        snapshots=snapshots,
    )


class _PairBuffer:
    """The current rows of a per-walker quantity (W, m) followed by the proposed ones, in one
    buffer of 2 W rows (two, alternating): accept/reject plus branching is then one
    ``index_select`` of rows < W (kept) or >= W (accepted), with no concatenation. ``current``
    is the view of the current rows."""

    def __init__(self, start: torch.Tensor):
        self._buffers = [self._new(start, 2 * start.shape[0]), None]
        self.size = start.shape[0]
        self._buffers[0][: self.size] = start
        self.current = self._buffers[0][: self.size]

    @staticmethod
    def _new(like: torch.Tensor, rows: int) -> torch.Tensor:
        return torch.empty((max(rows, 2), *like.shape[1:]), device=like.device, dtype=like.dtype)

    def _proposed(self) -> torch.Tensor:
        return self._buffers[0][self.size : 2 * self.size]

    def propose(self, proposal: torch.Tensor) -> torch.Tensor:
        """Copy the proposed rows (W, m) after the current ones; returns their view."""
        return self._proposed().copy_(proposal)

    def propose_sum(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Write x + step (W, m) as the proposed rows, without a temporary; returns them."""
        return torch.add(x, step, out=self._proposed())

    def gather(self, pick: torch.Tensor) -> torch.Tensor:
        """Rows ``pick`` (W',) of (current, proposed) become the current rows."""
        size = pick.shape[0]
        spare = self._buffers[1]
        if spare is None or spare.shape[0] < 2 * size:
            spare = self._new(self.current, 2 * size + size // 4)  # room to grow a little
        torch.index_select(self._buffers[0][: 2 * self.size], 0, pick, out=spare[:size])
        self._buffers = [spare, self._buffers[0]]
        self.size = size
        self.current = spare[:size]
        return self.current


def _check_shapes(x: torch.Tensor, eloc: torch.Tensor, log_psi: torch.Tensor | None,
                  grad: torch.Tensor | None) -> None:  # fmt: skip
    """The potential and the trial must give one value (one gradient) per walker."""
    w, n = x.shape
    found = {"V / E_L": (tuple(eloc.shape), (w,))}
    if log_psi is not None and grad is not None:
        found |= {"log psi_T": (tuple(log_psi.shape), (w,)),
                  "grad log psi_T": (tuple(grad.shape), (w, n))}  # fmt: skip
    wrong = [f"{name} has shape {got}, expected {want}" for name, (got, want) in found.items()
             if got != want]  # fmt: skip
    if wrong:
        raise LandscapeError("diffusion Monte Carlo: " + "; ".join(wrong) + f" for {w} walkers "
                             f"in {n} dimensions", "the potential and the trial map x (W, n) to "
                             "(W,) values (and (W, n) gradients), one per walker")  # fmt: skip


def _raise_non_finite(k: int, x: torch.Tensor, e: torch.Tensor) -> None:
    """Raise LandscapeError naming the step and the first walker whose energy is NaN or -inf."""
    i = int((torch.isnan(e) | (e == -math.inf)).to(torch.int8).argmax())
    raise LandscapeError(f"diffusion Monte Carlo: local energy {float(e[i]):g} at step {k}, "
                         f"walker position x = {_fmt(x[i])}",
                         "the potential is unbounded below (or singular) there, or the trial "
                         "function's derivatives are not finite; soften the singularity or check "
                         "psi_T")  # fmt: skip


def _check_population(k: int, size: int, target: int, cap: int, x: torch.Tensor,
                      e: torch.Tensor, e_ref: float) -> None:  # fmt: skip
    """Raise LandscapeError for an exploded or extinct population."""
    if size > cap:
        low = int(torch.nan_to_num(e, nan=math.inf).argmin())
        raise LandscapeError(f"diffusion Monte Carlo: population grew to {size} at step {k} "
                             f"(target {target}, limit {cap}); lowest local energy "
                             f"{float(e[low]):.6g} at x = {_fmt(x[low])}, "
                             f"E_ref = {float(e_ref):.6g}",
                             "E_ref feedback too weak (raise feedback) or dtau too large, or the "
                             "potential is unbounded below; a singular attractive potential "
                             "without a trial function (or with one that lacks its cusp) needs "
                             "energy_cutoff (e.g. 2) or a smaller dtau")  # fmt: skip
    if size == 0:
        raise LandscapeError(f"diffusion Monte Carlo: the population died out at step {k} "
                             f"(target {target}), E_ref = {float(e_ref):.6g}",
                             "E_ref below the ground-state energy with feedback too weak (raise "
                             "feedback, or set e_ref nearer the energy), or dtau too large, or the "
                             "potential is unbounded below (walkers at very negative energies "
                             "drag E_ref down)")  # fmt: skip


__all__ = ["AutogradTrial", "DMCResult", "Trial", "autograd_trial", "diffusion_monte_carlo"]
