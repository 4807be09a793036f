"""A recurrent autoregressive network (GRU) over the unit cells of a lattice: an exactly
normalised distribution of N = C * b discrete sites (C cells of b sites each, q values a site),

    q(s) = prod_{c=0}^{C-1} prod_{a=0}^{b-1} q(s_{c,a} | s_{<c}, s_{c,<a}),

with the cells in their flat (row-major) order and the sites of a cell in their basis order.
The GRU reads the previous cell (its b sites encoded: +-1 for q = 2, one-hot for q > 2; zeros
before the first cell) and carries everything before it in its hidden state h_c; the logits of
site a of cell c are

    logits_{c,a} = W_a h_c + sum_{a' < a} U_{a,a'} x_{c,a'} + c_a,

a strictly lower block-triangular (masked) read of the cell's own earlier sites, so that the
sites inside a cell are drawn one after the other from exact conditionals. ``cells = false``
treats every site as a cell of one (b = 1, C = N): one recurrent step per site.

log q(s) of a batch is one teacher-forced pass of the GRU over the shifted sequence of cells
(no sampling code); exact sampling is C recurrent steps of b draws each, batched over samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .autoregressive import draw_site, log_prob_of

__all__ = ["RecurrentAR"]


class RecurrentAR(torch.nn.Module):
    """GRU over C cells of b sites, q values a site: exact log q and exact ancestral samples.

    Configurations are (B, N) int64 value indices 0..q-1, N = C * b, site (c, a) at flat index
    c * b + a (the lattice's order: cells row-major, the basis last). Parameters are drawn on
    the CPU from ``generator`` (construction is deterministic given its state)."""

    def __init__(self, n_cells: int, basis: int = 1, q: int = 2, hidden: int = 32,
                 layers: int = 1, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if n_cells < 1 or basis < 1 or q < 2 or hidden < 1 or layers < 1:
            raise ValueError(f"RecurrentAR needs n_cells, basis, hidden, layers >= 1 and q >= 2 "
                             f"(got {n_cells}, {basis}, {hidden}, {layers}, q={q})")  # fmt: skip
        self.n_cells, self.basis, self.q = n_cells, basis, q
        self.hidden, self.layers, self.dtype = hidden, layers, dtype
        self.n_sites = n_cells * basis
        self.per_site = 1 if q == 2 else q
        n_in = basis * self.per_site
        self.gru = torch.nn.GRU(n_in, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, basis * q)
        self.within = torch.nn.Linear(n_in, basis * q, bias=False)
        # within[a * q + k, a' * per_site + j] may be nonzero only for a' < a
        out_site = torch.arange(basis, device="cpu").repeat_interleave(q)
        in_site = torch.arange(basis, device="cpu").repeat_interleave(self.per_site)
        mask = (in_site[None, :] < out_site[:, None]).to(torch.float64)
        with torch.no_grad():  # U(-1/sqrt(fan-in), 1/sqrt(fan-in)) from the generator
            for name, p in self.named_parameters():
                fan_in = hidden if name.startswith(("gru", "head")) else max(n_in, 1)
                bound = 1.0 / math.sqrt(fan_in)
                w = (2.0 * torch.rand(p.shape, dtype=torch.float64, generator=generator,
                                      device="cpu") - 1.0) * bound  # fmt: skip
                p.copy_(w * mask if name == "within.weight" else w)
        self.to(dtype=dtype, device=device)
        self.register_buffer("mask", mask.to(dtype=dtype, device=device))

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _encode(self, s: torch.Tensor) -> torch.Tensor:
        """(B, C, b) int64 -> (B, C, b * per_site) inputs (+-1, or one-hot for q > 2)."""
        if self.q == 2:
            return (2 * s - 1).to(self.dtype)
        return F.one_hot(s, self.q).reshape(*s.shape[:2], -1).to(self.dtype)

    def _cell_logits(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """h (..., H), x (..., b * per_site) the cell's own inputs -> (..., b * q) logits; the
        logits of site a read only the sites a' < a of x."""
        return self.head(h) + F.linear(x, self.within.weight * self.mask)

    def conditional_logits(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B, N, q) logits, those of site (c, a) a function of the sites
        before it only: one teacher-forced pass of the GRU over the cells."""
        s = s.to(device=self.device, dtype=torch.int64)
        B = s.shape[0]
        x = self._encode(s.reshape(B, self.n_cells, self.basis))  # (B, C, b * ps)
        shifted = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        h, _ = self.gru(shifted)  # (B, C, H): h_c has read the cells 0 .. c-1
        return self._cell_logits(h, x).reshape(B, self.n_sites, self.q)

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B,) exact log q(s) in the module's dtype."""
        return log_prob_of(self.conditional_logits(s), s)

    @torch.no_grad()
    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Exact ancestral sampling: u (B, N) uniforms in [0, 1) -> s (B, N) int64; site (c, a)
        takes the smallest k with u < CDF(k) of its conditional (inverse CDF in float64). C GRU
        steps of b draws each, batched over B."""
        if u.dim() != 2 or u.shape[1] != self.n_sites:
            raise ValueError(f"u must be (B, {self.n_sites}), got {tuple(u.shape)}")
        u = u.to(device=self.device, dtype=torch.float64)
        B, b, q, ps = u.shape[0], self.basis, self.q, self.per_site
        s = torch.zeros(B, self.n_cells, b, dtype=torch.int64, device=self.device)
        x_prev = torch.zeros(B, 1, b * ps, dtype=self.dtype, device=self.device)
        state = None
        for c in range(self.n_cells):
            h, state = self.gru(x_prev, state)  # (B, 1, H)
            x = torch.zeros(B, b * ps, dtype=self.dtype, device=self.device)
            for a in range(b):
                logits = self._cell_logits(h[:, 0], x)[:, a * q:(a + 1) * q]
                k = draw_site(logits, u[:, c * b + a])
                s[:, c, a] = k
                x[:, a * ps:(a + 1) * ps] = (2 * k[:, None] - 1).to(self.dtype) if q == 2 \
                    else F.one_hot(k, q).to(self.dtype)  # fmt: skip
            x_prev = x[:, None]
        return s.reshape(B, self.n_sites)

    def extra_repr(self) -> str:
        return (f"n_cells={self.n_cells}, basis={self.basis}, q={self.q}, hidden={self.hidden}, "
                f"layers={self.layers}")
