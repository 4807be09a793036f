"""The periodic 3 x 3 Ising model at beta = 0.44, exactly: every configuration enumerated (the
reference of the autoregressive-network tests)."""

from __future__ import annotations

import itertools

import torch

F64 = torch.float64
L, N_ISING, BETA = 3, 9, 0.44


def all_configs(n: int, q: int) -> torch.Tensor:
    """All q^n configurations (q^n, n) int64, lexicographic (site 0 most significant)."""
    return torch.tensor(list(itertools.product(range(q), repeat=n)), dtype=torch.int64,
                        device="cpu")  # fmt: skip


def config_index(s: torch.Tensor, q: int) -> torch.Tensor:
    """Row of s in all_configs(n, q)."""
    powers = q ** torch.arange(s.shape[1] - 1, -1, -1, dtype=torch.int64, device="cpu")
    return (s * powers).sum(1)


def ising_energy(s: torch.Tensor) -> torch.Tensor:
    """E = -sum_<ij> s_i s_j on the periodic L x L square lattice (J = 1), (B, L*L) -> (B,)."""
    x = (2 * s - 1).to(F64).reshape(-1, L, L)
    return -(x * torch.roll(x, 1, 1) + x * torch.roll(x, 1, 2)).sum((1, 2))


class Exact:
    """Exact 3x3 Ising quantities at BETA by enumeration of the 512 states."""

    s = all_configs(N_ISING, 2)
    e = ising_energy(s)
    log_z = float(torch.logsumexp(-BETA * e, 0))
    log_p = -BETA * e - log_z
    f = -log_z / (BETA * N_ISING)  # per site
    mean_e = float((log_p.exp() * e).sum())
