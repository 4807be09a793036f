"""The Monte Carlo of one (N, alpha) point of the Hopfield phase diagram, batched over disorder
samples, replicas and temperatures.

Chains of one point, for each of D disorder samples (pattern sets xi):

- **spin-glass chains**: two independent replicas a, b, each a parallel-tempering ladder of K
  temperatures started at random configurations: after each block of ``exchange_every`` sweeps,
  neighbouring temperatures of a ladder swap (alternating even and odd pairs). Measured after
  burn-in, every sweep block, at each temperature: the replica overlap q = (1/N) sum_i s^a_i s^b_i,
  accumulated as <q^2>, <q^4>, <|q|>, and the energy per spin;
- **retrieval chains**: one chain per retrieval temperature (T = 0 allowed: zero-temperature
  dynamics) started at pattern 1, without exchanges: m = max_mu |m_mu| (the retrieval overlap),
  averaged over the measured sweeps (at T = 0 its final value).

Chain layout (B = D (2K + Kr)): spin-glass chain (d, r, k) at index (d * 2 + r) * K + k, then
retrieval chain (d, j) at D * 2K + d * Kr + j. The per-disorder thermal averages are returned as
(D, K) and (D, Kr) arrays; disorder averages and errors are made by ``analysis``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..random import RandomStreams
from .kernels import exchange, hebb_energy, overlaps, sweeps


@dataclass
class Averages:
    """Per-disorder thermal averages of one point: (D, K) arrays over the tempering ladder,
    (D, Kr) over the retrieval temperatures."""

    q2: torch.Tensor
    q4: torch.Tensor
    q_abs: torch.Tensor
    energy: torch.Tensor  # energy per spin of the spin-glass chains
    m: torch.Tensor  # retrieval overlap max_mu |m_mu| from the pattern start
    measurements: int
    acceptance: torch.Tensor  # (K - 1,) exchange acceptance of each ladder pair


class PhaseChains:
    """The chains of one point; ``advance(n)`` runs n sweep blocks; ``averages()`` reads out.

    ``xi``: (D, P, N) patterns; ``T_glass``: the tempering ladder (K,), T > 0; ``T_retrieval``:
    (Kr,) temperatures of the retrieval chains (0 allowed)."""

    def __init__(self, xi: torch.Tensor, T_glass: list[float], T_retrieval: list[float],
                 burn_in: int, streams: RandomStreams, exchange_every: int = 1,
                 backend: str = "auto") -> None:  # fmt: skip
        dev = streams.device
        self.streams = streams
        D, P, N = xi.shape
        self.D, self.P, self.N = D, P, N
        self.K, self.Kr = len(T_glass), len(T_retrieval)
        self.xi = xi.to(torch.float64).transpose(1, 2).contiguous()  # (D, N, P)
        self.every, self.burn_in, self.backend = exchange_every, burn_in, backend
        K, Kr = self.K, self.Kr
        self.n_glass = D * 2 * K
        self.B = self.n_glass + D * Kr
        dis = torch.arange(D, device=dev)
        self.disorder = torch.cat([dis.repeat_interleave(2 * K), dis.repeat_interleave(Kr)])
        ladder = torch.tensor([1.0 / t for t in T_glass], dtype=torch.float64, device=dev)
        self.ladder = ladder
        # the inverse temperature of each spin-glass slot, (2D, K): a permutation of the ladder
        self.beta_slot = ladder.repeat(2 * D, 1)
        b_ret = torch.tensor([math_inf_or(t) for t in T_retrieval], dtype=torch.float64,
                             device=dev)  # fmt: skip
        self.beta_ret = b_ret.repeat(D)
        start = streams.fork(0).uniform((self.n_glass, N), torch.float64)
        s_glass = torch.where(start < 0.5, -1.0, 1.0).to(torch.float64)
        s_ret = xi[:, 0, :].to(torch.float64).repeat_interleave(Kr, 0)
        self.s = torch.cat([s_glass, s_ret]).contiguous()
        self.m = overlaps(self.s, self.xi, self.disorder).contiguous()
        self.moves = streams.fork(1)
        self.swaps = streams.fork(2)
        self.blocks = 0
        self.zero_sums()

    def zero_sums(self) -> None:
        D, K, Kr, dev = self.D, self.K, self.Kr, self.s.device
        z = {k: torch.zeros(D, K, dtype=torch.float64, device=dev)
             for k in ("q2", "q4", "q_abs", "energy")}  # fmt: skip
        z["m"] = torch.zeros(D, Kr, dtype=torch.float64, device=dev)
        self.sums, self.measured = z, 0
        self.tries = torch.zeros(max(self.K - 1, 1), dtype=torch.float64, device=dev)
        self.accepted = torch.zeros_like(self.tries)

    def beta(self) -> torch.Tensor:
        return torch.cat([self.beta_slot.reshape(-1), self.beta_ret])

    def advance(self, blocks: int = 1) -> None:
        """``blocks`` blocks of ``exchange_every`` sweeps, each followed by an exchange and,
        after burn-in, a measurement."""
        for _ in range(blocks):
            u = self.moves.uniform((self.B, self.every, self.N), torch.float64)
            u = u.transpose(0, 1).contiguous()
            self.backend_used = sweeps(self.s, self.m, self.xi, self.disorder, self.beta(), u,
                                       self.backend)  # fmt: skip
            self.blocks += 1
            self._exchange()
            if self.blocks * self.every > self.burn_in:
                self._measure()

    def _exchange(self) -> None:
        if self.K < 2:
            return
        G = 2 * self.D
        e = hebb_energy(self.m[: self.n_glass], self.N).reshape(G, self.K)
        u = self.swaps.uniform((G, self.K // 2 + 1), torch.float64)
        parity = self.blocks % 2
        before = self.beta_slot
        self.beta_slot = exchange(self.beta_slot, e, u, parity)
        # acceptance per ladder pair: a pair (k, k+1) swapped when its slots' betas changed
        order = torch.argsort(before, dim=1)
        changed = (torch.gather(self.beta_slot, 1, order) != torch.gather(before, 1, order))
        lo = torch.arange(parity, self.K - 1, 2, device=e.device)
        self.tries[lo] += G
        self.accepted[lo] += changed[:, lo].double().sum(0)

    def _by_temperature(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Spin-glass configurations sorted by temperature: (D, 2, K, N), and energies (D, 2, K)."""
        D, K, N = self.D, self.K, self.N
        order = torch.argsort(self.beta_slot, dim=1, descending=True)  # ladder order (T up)
        s = self.s[: self.n_glass].reshape(2 * D, K, N)
        s = torch.gather(s, 1, order[:, :, None].expand(-1, -1, N)).reshape(D, 2, K, N)
        e = hebb_energy(self.m[: self.n_glass], N).reshape(2 * D, K)
        e = torch.gather(e, 1, order).reshape(D, 2, K)
        return s, e

    def _measure(self) -> None:
        s, e = self._by_temperature()
        q = (s[:, 0] * s[:, 1]).mean(-1)  # (D, K)
        q2 = q * q
        self.sums["q2"] += q2
        self.sums["q4"] += q2 * q2
        self.sums["q_abs"] += q.abs()
        self.sums["energy"] += e.mean(1) / self.N
        m = self.m[self.n_glass:].abs().amax(-1).reshape(self.D, self.Kr)
        self.sums["m"] += m
        self.measured += 1

    def averages(self) -> Averages:
        n = max(self.measured, 1)
        a = {k: v / n for k, v in self.sums.items()}
        acc = self.accepted / self.tries.clamp(min=1)
        return Averages(a["q2"], a["q4"], a["q_abs"], a["energy"], a["m"], self.measured, acc)

    # ---------------------------------------------------------------- checkpoint
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"s": self.s, "m": self.m, "beta_slot": self.beta_slot, "tries": self.tries,
               "accepted": self.accepted,
               "counters": torch.tensor([self.blocks, self.measured, self.moves.draws,
                                         self.swaps.draws], dtype=torch.int64)}  # fmt: skip
        out.update({f"sum/{k}": v for k, v in self.sums.items()})
        return {k: v.detach().cpu().clone() for k, v in out.items()}

    def restore(self, t: dict[str, torch.Tensor]) -> None:
        dev = self.s.device
        self.s = t["s"].to(dev).contiguous()
        self.m = t["m"].to(dev).contiguous()
        self.beta_slot = t["beta_slot"].to(dev)
        self.tries, self.accepted = t["tries"].to(dev), t["accepted"].to(dev)
        self.sums = {k[4:]: v.to(dev) for k, v in t.items() if k.startswith("sum/")}
        c = [int(x) for x in t["counters"].tolist()]
        self.blocks, self.measured, self.moves.draws, self.swaps.draws = c


def math_inf_or(T: float) -> float:
    """1/T, infinite at T = 0."""
    return float("inf") if T == 0 else 1.0 / T


__all__ = ["Averages", "PhaseChains"]
