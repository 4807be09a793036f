"""Unbiased estimates on top of any normalised sampler q of a Boltzmann distribution
p(s) = exp(-beta E(s)) / Z, from M independent samples s_i ~ q with energies E_i and log q_i.

- F_q = <E + log q / beta>_q: the variational upper bound F + KL(q || p) / beta;
- neural importance sampling (NIS): with w = exp(-beta E - log q), Z = <w>_q, so
  F_NIS = -log(mean w) / beta is consistent (its bias, from the log, is O(1/M)); the error is the
  delta-method one, stderr(w) / mean(w) / beta;
- self-normalised reweighting of observables, <O>_p = sum w O / sum w;
- neural MCMC: an independence-Metropolis chain over the samples as proposals, exact in the
  limit of a long chain (Nicoli et al., PRE 101, 023304 (2020)).

All per-site quantities are divided by N. Weights are handled as logs and shifted by their
maximum before exponentiation, so that neither overflows at any beta or N.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

try:  # pragma: no cover - exercised by the environment, not by a test switch
    if os.environ.get("PHYSML_NO_NUMBA"):
        raise ImportError("disabled by PHYSML_NO_NUMBA")
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["ImportanceEstimate", "NMCMCResult", "importance_estimate", "nmcmc", "nmcmc_chains",
           "reweighted_mean"]  # fmt: skip

NUMBA = njit is not None


@dataclass
class ImportanceEstimate:
    """Free energies per site from M samples of q, and the quality of q as a proposal."""

    free_energy_q: float  # F_q per site (variational bound)
    free_energy_q_err: float  # its standard error
    free_energy_nis: float  # F_NIS per site = -log(mean_i w_i) / (beta N), w = exp(-beta E) / q
    free_energy_nis_err: float  # delta method: stderr(w) / mean(w) / (beta N)
    ess_per_sample: float  # (sum w)^2 / sum w^2 / M
    var_log_w: float  # sample variance of log w (0 for q = p)
    samples: int


def _stderr(x: torch.Tensor) -> float:
    """Standard error of the mean of x (M,): sample std (ddof 1) / sqrt(M); nan for M < 2."""
    m = x.numel()
    return float(x.std(correction=1)) / math.sqrt(m) if m > 1 else float("nan")


def importance_estimate(energies: torch.Tensor, log_q: torch.Tensor, beta: float,
                        n_sites: int) -> ImportanceEstimate:  # fmt: skip
    """F_q and F_NIS per site from energies (M,) and log q (M,) of M independent samples of q
    (computed in float64)."""
    e = energies.reshape(-1).to(torch.float64)
    lq = log_q.reshape(-1).to(e.device, torch.float64)
    if e.numel() != lq.numel() or e.numel() == 0:
        raise ValueError(f"energies and log_q must be (M,) with M >= 1, got {e.numel()} and "
                         f"{lq.numel()}")  # fmt: skip
    m = e.numel()
    f = e + lq / beta
    log_w = -beta * e - lq
    shift = log_w.max()
    w = torch.exp(log_w - shift)  # in (0, 1], the largest exactly 1
    mean_w = w.mean()
    f_nis = -(float(torch.log(mean_w)) + float(shift)) / (beta * n_sites)
    f_nis_err = _stderr(w) / float(mean_w) / (beta * n_sites)
    ess = float(w.sum() ** 2 / (w * w).sum()) / m
    var_log_w = float(log_w.var(correction=1)) if m > 1 else 0.0
    return ImportanceEstimate(free_energy_q=float(f.mean()) / n_sites,
                              free_energy_q_err=_stderr(f) / n_sites,
                              free_energy_nis=f_nis, free_energy_nis_err=f_nis_err,
                              ess_per_sample=ess, var_log_w=var_log_w, samples=m)  # fmt: skip


def reweighted_mean(values: torch.Tensor, log_w: torch.Tensor) -> tuple[float, float]:
    """Self-normalised importance-sampling mean sum w O / sum w of an observable O (M,) under
    log weights (M,), and its delta-method standard error,

        var = M / (M - 1) * sum w_i^2 (O_i - mean)^2 / (sum w)^2."""
    x = values.reshape(-1).to(torch.float64)
    lw = log_w.reshape(-1).to(x.device, torch.float64)
    if x.numel() != lw.numel() or x.numel() == 0:
        raise ValueError(f"values and log_w must be (M,) with M >= 1, got {x.numel()} and "
                         f"{lw.numel()}")  # fmt: skip
    m = x.numel()
    w = torch.exp(lw - lw.max())
    wn = w / w.sum()
    mean = (wn * x).sum()
    if m < 2:
        return float(mean), float("nan")
    var = (wn * wn * (x - mean) ** 2).sum() * m / (m - 1)
    return float(mean), float(var.sqrt())


@dataclass
class NMCMCResult:
    """An independence-Metropolis chain over M proposals."""

    acceptance: float  # accepted / (M - 1): the first proposal is the start, not a move
    chain: torch.Tensor  # (M,) int64: the index of the proposal the chain is at after proposal i


def _chain_python(log_w: np.ndarray, u: np.ndarray, chain: np.ndarray) -> int:
    cur_lw, cur, accepted = log_w[0], 0, 0
    chain[0] = 0
    for i in range(1, log_w.shape[0]):
        d = log_w[i] - cur_lw
        # d >= 0 accepts without exp (ratio >= 1 > u); a nan d (two zero weights) rejects
        if d >= 0.0 or u[i] < math.exp(d):
            cur_lw, cur, accepted = log_w[i], i, accepted + 1
        chain[i] = cur
    return accepted


_chain = njit(cache=True, nogil=True)(_chain_python) if NUMBA else _chain_python


def nmcmc(log_w: torch.Tensor, u: torch.Tensor) -> NMCMCResult:
    """Independence Metropolis with the network as proposal: proposals i = 0..M-1 in order (the
    first is accepted), accept proposal i with probability min(1, w_i / w_current) using uniforms
    u (M,) (u[0] unused). log_w (M,) = -beta E - log q of independent samples of q.

    The chain is sequential (each step depends on the current state) and no prefix-scan form is
    exact, so it runs as one compiled loop (numba; a Python loop without it). The returned chain
    lies on log_w's device."""
    lw = np.ascontiguousarray(log_w.detach().reshape(-1).to("cpu", torch.float64).numpy())
    uu = np.ascontiguousarray(u.detach().reshape(-1).to("cpu", torch.float64).numpy())
    m = lw.shape[0]
    if m == 0 or uu.shape[0] != m:
        raise ValueError(f"log_w and u must be (M,) with M >= 1, got {m} and {uu.shape[0]}")
    chain = np.empty(m, dtype=np.int64)
    accepted = _chain(lw, uu, chain)
    acceptance = accepted / (m - 1) if m > 1 else 1.0
    return NMCMCResult(acceptance=float(acceptance),
                       chain=torch.from_numpy(chain).to(log_w.device))  # fmt: skip


def _chains_python(log_w: np.ndarray, u: np.ndarray, at: np.ndarray) -> int:
    steps, chains = log_w.shape
    accepted = 0
    for c in range(chains):
        cur_lw, cur = log_w[0, c], 0
        at[0, c] = 0
        for t in range(1, steps):
            d = log_w[t, c] - cur_lw
            if d >= 0.0 or u[t, c] < math.exp(d):
                cur_lw, cur, accepted = log_w[t, c], t, accepted + 1
            at[t, c] = cur
    return accepted


_chains = njit(cache=True, nogil=True)(_chains_python) if NUMBA else None


def nmcmc_chains(log_w: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, float]:
    """C independent independence-Metropolis chains: chain c proposes the fresh samples
    (t, c), t = 0..T-1, in order (the first is its start), accepting with probability
    min(1, w_proposed / w_current). log_w (T, C), u (T, C) uniforms (row 0 unused) ->
    (at (T, C) int64 on log_w's device: the step t' whose proposal chain c holds after step t;
    the acceptance over the C (T - 1) moves). Compiled (numba); without numba, one vectorised
    step over the chains at a time."""
    lw = np.ascontiguousarray(log_w.detach().to("cpu", torch.float64).numpy())
    uu = np.ascontiguousarray(u.detach().to("cpu", torch.float64).numpy())
    if lw.ndim != 2 or lw.shape != uu.shape or lw.shape[0] < 1:
        raise ValueError(f"log_w and u must be (T, C) alike, got {lw.shape} and {uu.shape}")
    steps, chains = lw.shape
    at = np.empty((steps, chains), dtype=np.int64)
    if _chains is not None:
        accepted = _chains(lw, uu, at)
    else:  # pragma: no cover - without numba
        cur_lw, cur, accepted = lw[0].copy(), np.zeros(chains, dtype=np.int64), 0
        at[0] = 0
        for t in range(1, steps):
            with np.errstate(over="ignore", invalid="ignore"):
                d = lw[t] - cur_lw
                ok = (d >= 0.0) | (uu[t] < np.exp(np.minimum(d, 0.0)))
            cur_lw = np.where(ok, lw[t], cur_lw)
            cur = np.where(ok, t, cur)
            accepted += int(ok.sum())
            at[t] = cur
    moves = chains * (steps - 1)
    return torch.from_numpy(at).to(log_w.device), (accepted / moves if moves else 1.0)
