"""What every autoregressive network shares: log q(s) from its conditional logits, and the
inverse-CDF draw of one site given the sites before it."""

from __future__ import annotations

import torch


def log_prob_of(logits: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """log q(s) = sum_i log softmax(logits_i)[s_i]: logits (B, N, q), s (B, N) int64 -> (B,)."""
    logp = torch.log_softmax(logits, dim=-1)
    idx = s.to(device=logits.device, dtype=torch.int64).unsqueeze(-1)
    return logp.gather(-1, idx).squeeze(-1).sum(-1)


def draw_site(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The smallest k with u < CDF(k), CDF the cumulative softmax of ``logits`` (B, q), in float64
    whatever their dtype; u (B,) float64 -> (B,) int64. The last CDF value (1 up to rounding) is
    left out, so u near 1 picks the last value."""
    cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(-1)
    return (cdf[:, :-1] <= u[:, None]).sum(-1)


__all__ = ["draw_site", "log_prob_of"]
