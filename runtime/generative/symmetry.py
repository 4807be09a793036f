"""Symmetrisation of a normalised sampler under a global involution of the configurations.

An autoregressive order breaks the Z2 symmetry of a spin model: q(s) and q(flip s) are not tied,
and a network trained at low temperature may put its weight on one of the two ordered states
only (mode collapse). With a bijection ``flip`` (here an involution, e.g. k -> q-1-k on every
site),

    q_sym(s) = (q(s) + q(flip s)) / 2

is again normalised, symmetric exactly, and sampled by drawing s ~ q and flipping it with
probability 1/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["FlipSymmetrised", "value_flip"]

_LOG2 = math.log(2.0)


def value_flip(q: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The global value reversal k -> q-1-k of (B, N) int64 indices (s -> -s for +-1 spins)."""
    return lambda s: (q - 1) - s


class FlipSymmetrised(torch.nn.Module):
    """q_sym(s) = (q(s) + q(flip s)) / 2 for a global flip of the values (k -> q-1-k for a
    two-valued spin domain): restores the spin-flip symmetry the autoregressive order breaks.

    ``base`` has ``log_prob`` ((B, N) int64 -> (B,)) and ``sample`` ((B, N) uniforms -> (B, N)
    int64); ``flip`` maps (B, N) int64 indices to their images and must be an involution."""

    def __init__(self, base: torch.nn.Module,
                 flip: Callable[[torch.Tensor], torch.Tensor]) -> None:  # fmt: skip
        super().__init__()
        self.base = base
        self.flip = flip

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B,) log q_sym(s) = logaddexp(log q(s), log q(flip s)) - log 2."""
        # two calls of equal batch shape rather than one on cat(s, flip s): a row's rounding in
        # a matrix product may depend on its position in the batch, and this way log q(s) of
        # row i is computed at row i in both log_prob(s) and log_prob(flip s); with logaddexp
        # symmetric in its arguments, log_prob(s) == log_prob(flip s) holds bitwise
        a = self.base.log_prob(s)
        b = self.base.log_prob(self.flip(s))
        return torch.logaddexp(a, b) - _LOG2

    @torch.no_grad()
    def sample(self, u: torch.Tensor, u_flip: torch.Tensor) -> torch.Tensor:
        """u (B, N) uniforms for ``base.sample``, u_flip (B,) uniforms: the base sample, flipped
        where u_flip < 0.5 -> (B, N) int64."""
        s = self.base.sample(u)
        flipped = u_flip.to(s.device).reshape(-1, 1) < 0.5
        return torch.where(flipped, self.flip(s), s)
