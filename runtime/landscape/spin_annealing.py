"""Annealing of Ising spin systems, E(s) = -1/2 s^T J s - h^T s with s_i = +-1, J symmetric with
a zero diagonal (for the SK model, E = -sum_{i<j} J_ij s_i s_j with J_ij ~ N(0, 1/N); the
ground-state energy per spin tends to e0 = -0.7633 (Parisi) as N -> infinity).

- :func:`anneal_spins`: simulated annealing, single-spin-flip Metropolis on R replicas at once.
  A sweep visits the N sites in sequence (or in one random order per sweep, shared by the
  replicas); the loop over sites is a Python loop with all replicas batched, the standard exact
  scheme for a dense J, where no colouring of the sites exists. The local fields
  h_loc = J s + h are kept and updated by one row of J per accepted flip:
  dE_i = 2 s_i h_loc_i. Caveat of the sequential order: a flip with dE = 0 is always accepted,
  so free domain walls (the 1D chain) are swept along deterministically in lockstep and never
  meet; use ``order="random"`` for models with zero-energy moves.
- :func:`population_anneal_spins`: population annealing (Hukushima & Iba; Machta) with the same
  sweeps and log Z(beta) = N log 2 + sum_t log mean exp(-(beta_{t+1} - beta_t) E).
- :func:`sk_instance`, :func:`exact_ground_state`, :func:`exact_log_z`: an SK instance and
  exhaustive enumeration (N <= 22; chunks of 2^16 states, each a bit table times J).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..random import RandomStreams
from .annealing import _systematic_resample
from .errors import LandscapeError

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
MAX_ENUMERATION = 22
_CHUNK = 1 << 16


@dataclass
class SpinResult:
    """``best_spins`` (N,) of +-1, ``best_energy``, ``best_energy_per_spin``; ``energies`` (R,)
    the replicas' final energies; ``trace``: rows (sweeps, best energy per spin, beta);
    ``extras``: population annealing's ``betas``, ``log_z``, ``families``,
    ``effective_population``."""

    best_spins: torch.Tensor
    best_energy: float
    best_energy_per_spin: float
    energies: torch.Tensor
    trace: list[tuple[int, float, float]]
    extras: dict = field(default_factory=dict)


def sk_instance(N: int, seed: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float64) -> torch.Tensor:  # fmt: skip
    """Sherrington-Kirkpatrick couplings (N, N): J_ij = J_ji ~ N(0, 1/N) for i < j, J_ii = 0."""
    if not (isinstance(N, int) and N >= 2):
        raise LandscapeError(f"an SK instance needs N >= 2 spins, got {N!r}", "use N >= 2")
    g = RandomStreams(seed, device).normal((N, N), dtype) / math.sqrt(N)
    upper = torch.triu(g, diagonal=1)
    return upper + upper.T


def energies(spins: torch.Tensor, J: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
    """E(s) for spins (..., N) of +-1 in J's dtype: -1/2 s J s - h s, shape (...)."""
    s = spins.to(J.dtype)
    e = -0.5 * ((s @ J) * s).sum(-1)
    return e if h is None else e - s @ h


def _check_couplings(J: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(J, torch.Tensor) or J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise LandscapeError(f"the couplings J must be a square matrix (N, N), got "
                             f"{tuple(J.shape) if isinstance(J, torch.Tensor) else type(J)}",
                             "give J as an N x N tensor")  # fmt: skip
    N = J.shape[0]
    if not torch.allclose(J, J.T) or bool(J.diagonal().abs().max() > 0):
        raise LandscapeError("the couplings J must be symmetric with a zero diagonal",
                             "use (J + J.T) / 2 with the diagonal set to 0")  # fmt: skip
    if h is None:
        h = torch.zeros(N, device=J.device, dtype=J.dtype)
    h = torch.as_tensor(h, device=J.device, dtype=J.dtype)
    if h.shape != (N,):
        raise LandscapeError(f"the fields h must have one entry per spin ({N}), got "
                             f"{tuple(h.shape)}", "give h as a vector of length N")  # fmt: skip
    return J, h


def _schedule(beta_initial: float, beta_final: float, sweeps: int, schedule: str) -> np.ndarray:
    if not (0 < beta_initial <= beta_final and math.isfinite(beta_final)):
        raise LandscapeError(f"need 0 < beta_initial <= beta_final, got {beta_initial!r} and "
                             f"{beta_final!r}", "e.g. beta_initial = 0.1, beta_final = 5")  # fmt: skip
    if schedule == "geometric":
        return np.geomspace(beta_initial, beta_final, sweeps)
    if schedule == "linear":
        return np.linspace(beta_initial, beta_final, sweeps)
    raise LandscapeError(f"unknown schedule {schedule!r}", "use geometric or linear")


def metropolis_sweep(s: torch.Tensor, h_loc: torch.Tensor, J: torch.Tensor, beta: torch.Tensor,
                     u: torch.Tensor, order: Sequence[int] | None = None) -> torch.Tensor:
    """One single-spin-flip Metropolis sweep in place: spins s (R, N) float +-1, local fields
    h_loc (R, N) = s J + h, beta (R,) or scalar, uniforms u (R, N) (one per visit). Visits the
    sites in ``order`` (default 0..N-1). Returns the energy change (R,)."""
    R, N = s.shape
    dE_total = torch.zeros(R, device=s.device, dtype=s.dtype)
    log_u = torch.log(u)
    for i in (range(N) if order is None else order):
        si = s[:, i]
        dE = 2.0 * si * h_loc[:, i]
        flip = log_u[:, i] < -beta * dE  # dE <= 0 always accepted (log u < 0)
        ds = torch.where(flip, -2.0 * si, 0.0)  # (R,)
        s[:, i] += ds
        h_loc.addr_(ds, J[i])  # h_loc_j += J_ji ds_i
        dE_total += torch.where(flip, dE, 0.0)
    return dE_total


def generic_sweep(s: torch.Tensor, e: torch.Tensor, energy_fn: EnergyFn, beta: torch.Tensor,
                  u: torch.Tensor, order: Sequence[int] | None = None) -> torch.Tensor:  # fmt: skip
    """A Metropolis sweep for any energy: flipping site i costs one batched call
    energy_fn(s') (R, N) -> (R,). Updates s (R, N) in place; returns the new energies (R,)."""
    for i in (range(s.shape[1]) if order is None else order):
        trial = s.clone()
        trial[:, i] = -trial[:, i]
        e_trial = energy_fn(trial).to(e.dtype)
        flip = torch.log(u[:, i]) < -beta * (e_trial - e)
        s[:, i] = torch.where(flip, trial[:, i], s[:, i])
        e = torch.where(flip, e_trial, e)
    return e


def anneal_spins(J: torch.Tensor | None = None, h: torch.Tensor | None = None, *,
                 streams: RandomStreams, energy_fn: EnergyFn | None = None,
                 spins: int | None = None, replicas: int = 16, sweeps: int = 1000,
                 beta_initial: float = 0.1, beta_final: float = 5.0,
                 schedule: str = "geometric", order: str = "sequential",
                 target_energy: float | None = None, tol: float = 1e-9,
                 check_every: int = 50, dtype: torch.dtype = torch.float64) -> SpinResult:  # fmt: skip
    """Simulated annealing of E(s) = -1/2 s J s - h s: ``replicas`` independent chains from
    random spins, one Metropolis sweep at each beta of the schedule (``sweeps`` betas from
    ``beta_initial`` to ``beta_final``). ``order``: ``sequential`` or ``random`` (a fresh random
    order of the sites each sweep). The best configuration over replicas and sweeps is kept
    (checked every sweep on the device; read on the host every ``check_every`` sweeps, which
    is also when a ``target_energy`` reached within ``tol`` stops the run).

    Instead of J, h: ``energy_fn`` (R, N) -> (R,) of +-1 spins (float, ``dtype``) and the
    number of ``spins`` N; each flip then costs one batched energy call (N calls a sweep)."""
    if energy_fn is None:
        J, h = _check_couplings(J, h)
        N, device, dtype = J.shape[0], J.device, J.dtype
        energy = lambda x: energies(x, J, h)  # noqa: E731
    else:
        if J is not None or not (isinstance(spins, int) and spins >= 1):
            raise LandscapeError("give either couplings J (and fields h) or an energy_fn with the "
                                 "number of spins", "e.g. anneal_spins(energy_fn=E, spins=64, "
                                 "streams=...)")  # fmt: skip
        N, device, energy = spins, streams.device, energy_fn
    if order not in ("sequential", "random"):
        raise LandscapeError(f"unknown sweep order {order!r}", "use sequential or random")
    if not (isinstance(replicas, int) and replicas >= 1 and isinstance(sweeps, int)
            and sweeps >= 1):  # fmt: skip
        raise LandscapeError(f"replicas and sweeps must be integers >= 1, got {replicas!r} and "
                             f"{sweeps!r}", "e.g. replicas = 16, sweeps = 1000")  # fmt: skip
    betas = _schedule(beta_initial, beta_final, sweeps, schedule)
    s = torch.where(streams.uniform((replicas, N), dtype) < 0.5, -1.0, 1.0).to(dtype)
    h_loc = s @ J + h if energy_fn is None else None
    e = energy(s)
    if e.shape != (replicas,):
        raise LandscapeError(f"the energy must map spins (R, N) = ({replicas}, {N}) to (R,), got "
                             f"{tuple(e.shape)}", "sum over the sites of each row")  # fmt: skip
    best_e, best_s = e.min(), s[e.argmin()].clone()
    trace: list[tuple[int, float, float]] = []
    moves = streams.fork(1)
    for t, beta in enumerate(betas):
        u = moves.uniform((replicas, N), dtype)
        perm = moves.permutation(N).tolist() if order == "random" else None
        b = torch.tensor(float(beta), device=device, dtype=dtype)
        if energy_fn is None:
            e = e + metropolis_sweep(s, h_loc, J, b, u, perm)
        else:
            e = generic_sweep(s, e, energy_fn, b, u, perm)
        emin, jmin = e.min(0)
        better = emin < best_e
        best_s = torch.where(better, s[jmin], best_s)
        best_e = torch.minimum(emin, best_e)
        if (t + 1) % check_every == 0 or t + 1 == sweeps:
            b = float(best_e)
            if not math.isfinite(b):
                raise LandscapeError(f"the energy became {b} at sweep {t + 1}",
                                     "check J and h for non-finite entries")  # fmt: skip
            trace.append((t + 1, b / N, float(beta)))
            if target_energy is not None and abs(b - target_energy) < tol:
                break
    best = float(energy(best_s[None])[0])  # recomputed: no drift of the incremental sums
    return SpinResult(best_s, best, best / N, energy(s), trace)


def population_anneal_spins(J: torch.Tensor, h: torch.Tensor | None = None, *,
                            streams: RandomStreams, population: int = 1000,
                            betas: Sequence[float] | torch.Tensor,
                            sweeps_per_beta: int = 5) -> SpinResult:  # fmt: skip
    """Population annealing: P replicas drawn uniformly (beta = 0), then for each beta of the
    increasing schedule: reweight by exp(-(beta - beta_prev) E), resample systematically,
    ``sweeps_per_beta`` sequential Metropolis sweeps. ``extras``: ``betas``, ``log_z`` (the
    estimate of log Z(beta) with Z(0) = 2^N), ``families`` (distinct beta = 0 ancestors),
    ``effective_population`` (1 / sum w^2 of the normalised weights)."""
    J, h = _check_couplings(J, h)
    schedule = [float(b) for b in torch.as_tensor(betas, device="cpu").reshape(-1).tolist()]
    if not schedule or schedule[0] < 0 or any(b1 <= b0 for b0, b1 in zip(schedule,
                                                                         schedule[1:])):  # fmt: skip
        raise LandscapeError("betas must be >= 0 and increasing",
                             "give e.g. linspace(0, 3, 61)")  # fmt: skip
    if not (isinstance(population, int) and population >= 2):
        raise LandscapeError(f"population must be an integer >= 2, got {population!r}",
                             "use a population of a few thousand")  # fmt: skip
    N, device, dtype, P = J.shape[0], J.device, J.dtype, population
    s = torch.where(streams.uniform((P, N), dtype) < 0.5, -1.0, 1.0).to(dtype)
    e = energies(s, J, h)
    ancestor = torch.arange(P, device=device)
    log_z = torch.tensor(N * math.log(2.0), device=device, dtype=dtype)
    best_e, best_s = e.min(), s[e.argmin()].clone()
    moves = streams.fork(1)
    rows: list[torch.Tensor] = []
    beta_prev = 0.0
    for beta in schedule:
        log_w = -(beta - beta_prev) * e
        log_z = log_z + torch.logsumexp(log_w, 0) - math.log(P)
        w = torch.softmax(log_w, 0)
        keep = _systematic_resample(log_w[None], moves.uniform((1,), dtype))[0]
        s, e, ancestor = s[keep], e[keep], ancestor[keep]
        h_loc = s @ J + h
        b = torch.tensor(beta, device=device, dtype=dtype)
        for _ in range(sweeps_per_beta):
            e = e + metropolis_sweep(s, h_loc, J, b, moves.uniform((P, N), dtype))
        emin, jmin = e.min(0)
        best_s = torch.where(emin < best_e, s[jmin], best_s)
        best_e = torch.minimum(emin, best_e)
        families = (torch.diff(ancestor.sort().values) != 0).sum() + 1
        rows.append(torch.stack([log_z, families.to(dtype), 1.0 / (w * w).sum(), best_e]))
        beta_prev = beta
    host = torch.stack(rows).cpu().numpy()
    best = float(energies(best_s, J, h))
    extras = {"betas": schedule, "log_z": host[:, 0].tolist(),
              "families": host[:, 1].astype(int).tolist(),
              "effective_population": host[:, 2].tolist()}  # fmt: skip
    trace = [((t + 1) * sweeps_per_beta, float(host[t, 3]) / N, b)
             for t, b in enumerate(schedule)]  # fmt: skip
    return SpinResult(best_s, best, best / N, energies(s, J, h), trace, extras)


def _states(start: int, count: int, N: int, device: torch.device, dtype: torch.dtype
            ) -> torch.Tensor:  # fmt: skip
    """Spins (count, N) of the states start .. start + count - 1: bit i of the index is s_i."""
    index = torch.arange(start, start + count, device=device, dtype=torch.int64)
    bits = torch.bitwise_right_shift(index[:, None], torch.arange(N, device=device)) & 1
    return (2 * bits - 1).to(dtype)


def _enumerate(J: torch.Tensor, h: torch.Tensor | None):
    J, hh = _check_couplings(J, h)
    N = J.shape[0]
    if N > MAX_ENUMERATION:
        raise LandscapeError(f"exhaustive enumeration of N = {N} spins needs 2^{N} states",
                             f"enumerate N <= {MAX_ENUMERATION} spins")  # fmt: skip
    total = 1 << N
    for start in range(0, total, _CHUNK):
        s = _states(start, min(_CHUNK, total - start), N, J.device, J.dtype)
        yield s, energies(s, J, hh)


def exact_ground_state(J: torch.Tensor, h: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, float]:  # fmt: skip
    """The ground state (N,) of +-1 and its energy, by enumerating all 2^N states (N <= 22) in
    chunks of 2^16 (at N = 22: 64 chunks, seconds on a CPU)."""
    best_e, best_s = math.inf, None
    for s, e in _enumerate(J, h):
        j = int(e.argmin())
        if float(e[j]) < best_e:
            best_e, best_s = float(e[j]), s[j].clone()
    return best_s, best_e


def exact_log_z(J: torch.Tensor, betas: Sequence[float] | torch.Tensor,
                h: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """log Z(beta) = log sum_s exp(-beta E(s)) for each beta (B,), by enumeration (N <= 22)."""
    b = torch.as_tensor(betas, dtype=J.dtype, device=J.device).reshape(-1)
    parts = [torch.logsumexp(-b[:, None] * e[None], 1) for _, e in _enumerate(J, h)]
    return torch.logsumexp(torch.stack(parts), 0)
