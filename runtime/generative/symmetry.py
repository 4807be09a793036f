"""Symmetrisation of a normalised sampler under a global involution of the configurations, and
under a finite group of site permutations (translations, point group; with the flip).

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

__all__ = ["FlipSymmetrised", "GroupSymmetrised", "value_flip"]

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


class GroupSymmetrised(torch.nn.Module):
    """q_G(s) = (1/|G|) sum_{g in G} q(g s) for a finite group G of site permutations (lattice
    translations, point-group operations), optionally composed with the global value flip:
    exactly normalised (each g is a bijection of the configurations) and exactly invariant
    (G s = G h s for every h in G), sampled exactly by s ~ q and then a uniformly drawn g.

    ``perms`` (G, N) int64 lists the group's site permutations (row 0 the identity), acting as
    (g s)_x = s[perms[g, x]]; with ``flip`` the group is G x {1, flip}, 2|G| elements, element
    j being perms[j mod |G|], flipped for j >= |G|. ``base`` as for :class:`FlipSymmetrised`.

    ``log_prob`` averages over every element (|G| base evaluations a configuration, batched);
    ``log_prob_draws`` over k elements drawn per configuration: a cheaper, biased (Jensen: below
    log q_G on average) surrogate meant for the training gradient only."""

    def __init__(self, base: torch.nn.Module, perms: torch.Tensor,
                 flip: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.base = base
        self.flip = flip
        perms = torch.as_tensor(perms, dtype=torch.int64)
        if flip is not None:
            perms = torch.cat([perms, perms])
        flips = torch.zeros(perms.shape[0], dtype=torch.bool)
        if flip is not None:
            flips[perms.shape[0] // 2:] = True
        device = next(base.parameters()).device
        self.register_buffer("perms", perms.to(device), persistent=False)
        self.register_buffer("flips", flips.to(device), persistent=False)

    @property
    def order(self) -> int:
        """|G| (times 2 with the flip)."""
        return int(self.perms.shape[0])

    def act(self, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The images g s: s (B, N) int64, g (B, k) element indices -> (B, k, N)."""
        B, N = s.shape
        idx = self.perms[g]  # (B, k, N)
        out = torch.gather(s[:, None, :].expand(B, g.shape[1], N), 2, idx)
        if self.flip is not None:
            out = torch.where(self.flips[g][..., None], self.flip(out), out)
        return out

    def _average(self, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        B, k = g.shape
        images = self.act(s, g).reshape(B * k, -1)
        logq = self.base.log_prob(images).reshape(B, k)
        return torch.logsumexp(logq, dim=1) - math.log(k)

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B,) log q_G(s) = logsumexp_g log q(g s) - log |G|."""
        s = s.to(device=self.perms.device, dtype=torch.int64)
        g = torch.arange(self.order, device=s.device).expand(s.shape[0], -1)
        return self._average(s, g)

    def log_prob_draws(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(B, N) int64, u (B, k) uniforms -> (B,) log of the mean of q(g_j s) over k elements
        g_j = floor(u_j |G|) (stochastic symmetrisation, for training gradients)."""
        s = s.to(device=self.perms.device, dtype=torch.int64)
        g = (u.to(s.device, torch.float64) * self.order).long().clamp_(0, self.order - 1)
        return self._average(s, g)

    @torch.no_grad()
    def sample(self, u: torch.Tensor, u_group: torch.Tensor) -> torch.Tensor:
        """u (B, N) uniforms for ``base.sample``, u_group (B,) uniforms: the base sample moved by
        the element floor(u_group |G|) -> (B, N) int64 (exact samples of q_G)."""
        s = self.base.sample(u)
        g = (u_group.to(s.device, torch.float64) * self.order).long().clamp_(0, self.order - 1)
        return self.act(s, g[:, None])[:, 0]
