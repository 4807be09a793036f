"""Sequential Metropolis sweeps of Hopfield networks, batched over chains (replicas, temperatures
and disorder samples), with the energy change computed from the pattern overlaps.

With Hebb couplings W_ij = (1/N) sum_mu xi_i^mu xi_j^mu (W_ii = 0) and E = -sum_{i<j} W_ij s_i s_j,

    m_mu = (1/N) sum_i xi_i^mu s_i,     E = -(N/2) sum_mu m_mu^2 + P/2,
    h_i  = sum_{j != i} W_ij s_j = sum_mu xi_i^mu m_mu - (P/N) s_i,     dE(flip i) = 2 s_i h_i,

so a single-spin update costs O(P) and the overlaps are updated in O(P) after each flip. A
complete graph has no two independent sites, so sites are visited in order (one sweep: i = 0 ..
N - 1) and every chain advances in parallel. Acceptance: Metropolis, min(1, exp(-beta dE)); at
T = 0 (beta = inf) only flips that lower the energy (dE < 0: a fixed point of zero-temperature
dynamics is reached).

Two implementations draw the same numbers and give the same chains:
- ``sweeps_numba``: one compiled loop (chains outer, sweeps and sites inner), numba;
- ``sweeps_torch``: a loop over sites, each iteration one batched tensor op over all chains
  (used without numba, or with PHYSML_NO_NUMBA=1).

Shapes: s (B, N) float64 in {-1, +1}; m (B, P); xi (D, N, P) (site-major: one site's pattern
components are contiguous); disorder (B,) int64 (the disorder sample of each chain); beta (B,);
u (S, B, N) uniforms for S sweeps.
"""

from __future__ import annotations

import math
import os

import torch

try:  # pragma: no cover - exercised by the environment, not by a test switch
    if os.environ.get("PHYSML_NO_NUMBA"):
        raise ImportError("disabled by PHYSML_NO_NUMBA")
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

AVAILABLE = njit is not None


def overlaps(s: torch.Tensor, xi: torch.Tensor, disorder: torch.Tensor) -> torch.Tensor:
    """m_mu = (1/N) sum_i xi_i^mu s_i of every chain: s (B, N), xi (D, N, P) -> (B, P)."""
    return torch.einsum("bn,bnp->bp", s, xi[disorder]) / s.shape[1]


def hebb_energy(m: torch.Tensor, N: int) -> torch.Tensor:
    """E = -(N/2) sum_mu m_mu^2 + P/2 (W_ii = 0), from the overlaps m (..., P)."""
    return -0.5 * N * (m * m).sum(-1) + 0.5 * m.shape[-1]


def _kernel(s, m, xi, disorder, beta, u):  # pragma: no cover - compiled by numba
    S, B, N = u.shape
    P = m.shape[1]
    a = P / N
    two_n = 2.0 / N
    for b in range(B):
        d = disorder[b]
        bt = beta[b]
        zero_t = math.isinf(bt)
        for t in range(S):
            for i in range(N):
                si = s[b, i]
                h = 0.0
                for mu in range(P):
                    h += xi[d, i, mu] * m[b, mu]
                dE = 2.0 * si * (h - a * si)
                if zero_t:
                    accept = dE < 0.0
                else:
                    accept = dE <= 0.0 or u[t, b, i] < math.exp(-bt * dE)
                if accept:
                    s[b, i] = -si
                    c = -two_n * si
                    for mu in range(P):
                        m[b, mu] += c * xi[d, i, mu]


_compiled = njit(cache=True, nogil=True)(_kernel) if AVAILABLE else None


def sweeps_numba(s: torch.Tensor, m: torch.Tensor, xi: torch.Tensor, disorder: torch.Tensor,
                 beta: torch.Tensor, u: torch.Tensor) -> None:  # fmt: skip
    """S sequential sweeps of every chain, in place (CPU tensors, float64)."""
    _compiled(s.numpy(), m.numpy(), xi.numpy(), disorder.numpy(), beta.numpy(), u.numpy())


def sweeps_torch(s: torch.Tensor, m: torch.Tensor, xi: torch.Tensor, disorder: torch.Tensor,
                 beta: torch.Tensor, u: torch.Tensor) -> None:  # fmt: skip
    """The same sweeps as batched tensor ops: a loop over sites, each step over all chains."""
    S, B, N = u.shape
    a = m.shape[1] / N
    zero_t = torch.isinf(beta)
    bt = torch.where(zero_t, torch.zeros_like(beta), beta)
    xs = xi[disorder]  # (B, N, P)
    for t in range(S):
        for i in range(N):
            si = s[:, i]
            x = xs[:, i, :]
            dE = 2.0 * si * ((x * m).sum(-1) - a * si)
            metropolis = (dE <= 0) | (u[t, :, i] < torch.exp(-bt * dE))
            accept = torch.where(zero_t, dE < 0, metropolis)
            flip = torch.where(accept, -2.0 * si, torch.zeros_like(si))
            s[:, i] = si + flip
            m.add_(x * (flip / N)[:, None])


def sweeps(s: torch.Tensor, m: torch.Tensor, xi: torch.Tensor, disorder: torch.Tensor,
           beta: torch.Tensor, u: torch.Tensor, backend: str = "auto") -> str:  # fmt: skip
    """Run ``u.shape[0]`` sweeps in place; returns the backend used (numba on the CPU where
    available, else batched torch ops)."""
    use_numba = backend == "numba" or (backend == "auto" and AVAILABLE and s.device.type == "cpu")
    if use_numba:
        sweeps_numba(s, m, xi, disorder, beta, u)
        return "numba"
    sweeps_torch(s, m, xi, disorder, beta, u)
    return "torch"


def exchange(beta_slot: torch.Tensor, energy: torch.Tensor, u: torch.Tensor,
             parity: int) -> torch.Tensor:  # fmt: skip
    """Parallel-tempering exchanges between neighbouring temperatures, batched over groups.

    ``beta_slot`` (G, K): the inverse temperature each of a group's K configurations runs at (a
    permutation of the ladder, sorted ladder ``beta_ladder = sort(beta_slot)``); ``energy``
    (G, K) the configurations' energies. Pairs (k, k+1) of the ladder with k = parity mod 2 are
    proposed; accepted with min(1, exp((beta_k - beta_k+1)(E_k - E_k+1))). Returns the new
    beta_slot. ``u`` (G, K // 2 + 1) uniforms."""
    G, K = beta_slot.shape
    order = torch.argsort(beta_slot, dim=1)  # ladder position -> slot
    b = torch.gather(beta_slot, 1, order)
    e = torch.gather(energy, 1, order)
    lo = torch.arange(parity % 2, K - 1, 2, device=beta_slot.device)
    if lo.numel() == 0:
        return beta_slot
    hi = lo + 1
    arg = (b[:, lo] - b[:, hi]) * (e[:, lo] - e[:, hi])
    accept = u[:, : lo.numel()] < torch.exp(torch.clamp(arg, max=0.0))
    new_order = order.clone()
    new_order[:, lo] = torch.where(accept, order[:, hi], order[:, lo])
    new_order[:, hi] = torch.where(accept, order[:, lo], order[:, hi])
    out = torch.empty_like(beta_slot)
    out.scatter_(1, new_order, b)
    return out


__all__ = ["AVAILABLE", "exchange", "hebb_energy", "overlaps", "sweeps", "sweeps_numba",
           "sweeps_torch"]
