"""MADE: a masked autoencoder (Germain et al., ICML 2015) as an exactly normalised autoregressive
distribution of N discrete sites with q values each,

    q(s) = prod_{i=0}^{N-1} q(s_i | s_0 .. s_{i-1}),    q(. | s_<i) = softmax(logits_i(s_<i)).

Encoding: for q = 2 the value index k in {0, 1} enters as the spin 2k - 1 = +-1 (one input per
site); for q > 2 as a one-hot vector (q inputs per site). Degrees: the inputs of site i have
degree i + 1; hidden unit k has degree 1 + (k mod (N - 1)), assigned cyclically so that the masks
(and hence results) do not depend on a random draw; a hidden unit of degree m sees the sites
0 .. m-1. The logits of site i (degree i + 1) see only hidden units of degree <= i, i.e. the sites
0 .. i-1; site 0 has no connections and its logits are a learned bias.

Architecture: ``depth`` masked hidden layers of width ``hidden`` with tanh; the first maps the
input, each further one adds a residual h <- h + tanh(W h + b) (same width and degrees, so the
residual keeps the autoregressive property and eases training of deeper networks). depth = 0
connects the inputs to the logits directly (an autoregressive logistic model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .autoregressive import draw_site, log_prob_of

__all__ = ["MADE", "MaskedLinear", "hidden_degrees"]


def hidden_degrees(n_sites: int, width: int) -> torch.Tensor:
    """Degrees (width,) int64 of a hidden layer: 1, 2, .., N-1, 1, 2, .. (all 1 when N = 1)."""
    return torch.arange(width, dtype=torch.int64, device="cpu") % max(n_sites - 1, 1) + 1


class MaskedLinear(torch.nn.Module):
    """y = x (W * mask)^T + b with a fixed 0/1 mask (out, in); the masked weights are exactly zero
    in the product, so an output never depends on a masked input, not even through rounding."""

    def __init__(self, mask: torch.Tensor, *, dtype: torch.dtype, device: torch.device | str,
                 generator: torch.Generator | None) -> None:  # fmt: skip
        super().__init__()
        n_out, n_in = mask.shape
        mask = mask.to(torch.float64)
        # uniform +-1/sqrt(fan-in) with the fan-in counted through the mask, so that rows with
        # few connections (the first sites) start with the same scale as the others
        fan_in = mask.sum(1, keepdim=True).clamp(min=1.0)
        bound = 1.0 / fan_in.sqrt()
        w = (2.0 * torch.rand(n_out, n_in, dtype=torch.float64, generator=generator,
                               device="cpu") - 1.0) * bound
        b = (2.0 * torch.rand(n_out, dtype=torch.float64, generator=generator, device="cpu") - 1.0) * bound[:, 0]
        self.weight = torch.nn.Parameter((w * mask).to(dtype=dtype, device=device))
        self.bias = torch.nn.Parameter(b.to(dtype=dtype, device=device))
        self.register_buffer("mask", mask.to(dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(torch.nn.Module):
    """Masked autoencoder (Germain et al. 2015) over N sites, each with q values: an exactly
    normalised autoregressive q(s) = prod_i q(s_i | s_<i) in the site order 0..N-1.

    Configurations are (B, N) int64 value indices 0..q-1. Weights are drawn on the CPU from
    ``generator`` (construction is deterministic given its state) and then moved to ``device``.
    """

    def __init__(self, n_sites: int, q: int = 2, hidden: int = 64, depth: int = 2, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if n_sites < 1 or q < 2 or depth < 0 or (depth > 0 and hidden < 1):
            raise ValueError(f"MADE needs n_sites >= 1, q >= 2, depth >= 0 and hidden >= 1 "
                             f"(got n_sites={n_sites}, q={q}, hidden={hidden}, depth={depth})")  # fmt: skip
        self.n_sites, self.q, self.hidden, self.depth = n_sites, q, hidden, depth
        self.dtype = dtype
        per_site = 1 if q == 2 else q
        sites = torch.arange(n_sites, dtype=torch.int64, device="cpu")  # masks: built on the host
        in_deg = (sites + 1).repeat_interleave(per_site)
        out_deg = (sites + 1).repeat_interleave(q)
        kw = {"dtype": dtype, "device": device, "generator": generator}
        layers: list[MaskedLinear] = []
        prev = in_deg
        for _ in range(depth):
            deg = hidden_degrees(n_sites, hidden)
            layers.append(MaskedLinear(deg[:, None] >= prev[None, :], **kw))
            prev = deg
        self.hidden_layers = torch.nn.ModuleList(layers)
        # strict inequality at the output: logits of site i (degree i+1) see degrees <= i only
        self.output = MaskedLinear(out_deg[:, None] > prev[None, :], **kw)

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def _encode(self, s: torch.Tensor) -> torch.Tensor:
        s = s.to(device=self.device, dtype=torch.int64)
        if self.q == 2:
            return (2 * s - 1).to(self.dtype)
        return F.one_hot(s, self.q).reshape(s.shape[0], -1).to(self.dtype)

    def conditional_logits(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B, N, q) logits; those of site i depend only on s[:, :i]."""
        h = self._encode(s)
        for k, layer in enumerate(self.hidden_layers):
            h = torch.tanh(layer(h)) if k == 0 else h + torch.tanh(layer(h))
        return self.output(h).reshape(s.shape[0], self.n_sites, self.q)

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B,) exact log q(s) in the module's dtype."""
        return log_prob_of(self.conditional_logits(s), s)

    @torch.no_grad()
    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Exact ancestral sampling: u (B, N) uniforms in [0, 1) -> s (B, N) int64. Site i takes
        the smallest k with u[:, i] < CDF_i(k), CDF_i the cumulative softmax of the logits of site
        i given the sites already drawn; N forward passes, batched over B."""
        if u.dim() != 2 or u.shape[1] != self.n_sites:
            raise ValueError(f"u must be (B, {self.n_sites}), got {tuple(u.shape)}")
        # the inverse CDF in float64 whatever the module dtype, so that a float64 u is not rounded
        u = u.to(device=self.device, dtype=torch.float64)
        s = torch.zeros(u.shape, dtype=torch.int64, device=self.device)
        for i in range(self.n_sites):
            s[:, i] = draw_site(self.conditional_logits(s)[:, i], u[:, i])
        return s

    def extra_repr(self) -> str:
        return f"n_sites={self.n_sites}, q={self.q}, hidden={self.hidden}, depth={self.depth}"
