"""Gauge transformations and a numerical gauge-invariance check.

Omega: a site field of group elements (B, L..., *group_shape) in storage form.
- links:   U_mu(x) -> Omega_x U_mu(x) Omega_{x+mu}^dag
- matter:  phi_x -> Omega_x phi_x (fundamental; u1 charge 1, z2 sign)
- adjoint: W_x -> Omega_x W_x Omega_x^dag for (B, L..., C, N, N) matrix features (L-CNN)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .groups import GaugeGroup, get_group
from .links import lattice_dim, shift

Tensor = torch.Tensor


def random_gauge(group: str | GaugeGroup, site_shape: tuple[int, ...],
                 generator: torch.Generator, device=None, dtype=None) -> Tensor:
    """Haar-random Omega_x for site_shape = (B, L_1, ..., L_d)."""
    return get_group(group).random(tuple(site_shape), generator, device=device, dtype=dtype)


def gauge_transform(U: Tensor, omega: Tensor, group: str | GaugeGroup) -> Tensor:
    """U_mu(x) -> Omega_x U_mu(x) Omega_{x+mu}^dag for all mu (storage form in and out)."""
    group = get_group(group)
    d = lattice_dim(U, group)
    out = []
    for mu in range(d):
        u = U.select(1 + d, mu)
        out.append(group.multiply(group.multiply(omega, u), group.inverse(shift(omega, mu))))
    return torch.stack(out, dim=1 + d)


def gauge_transform_sites(phi: Tensor, omega: Tensor, group: str | GaugeGroup) -> Tensor:
    """Matter in the fundamental representation: phi_x -> Omega_x phi_x.

    z2: phi (B, L...) real or complex, times +-1. u1: phi (B, L...) complex, times exp(i w).
    su2: phi (B, L..., 2) complex (or (B, L..., 2, k) for k flavours), Omega_x @ phi_x.
    """
    group = get_group(group)
    if group.name == "su2":
        if phi.dim() == omega.dim() - 1:
            return (omega @ phi[..., None])[..., 0]
        return omega @ phi
    return group.to_lin(omega) * phi


def gauge_transform_adjoint(W: Tensor, omega: Tensor, group: str | GaugeGroup) -> Tensor:
    """W_x -> Omega_x W_x Omega_x^dag for matrix features W: (B, L..., C, N, N) complex."""
    group = get_group(group)
    om = group.as_matrix(omega).unsqueeze(-3)  # broadcast over channels
    return om @ W @ om.conj().transpose(-1, -2)


def translate(f: Tensor, offsets: tuple[int, ...]) -> Tensor:
    """Translate a site- or link-indexed field by a lattice vector: f(x + a) at x."""
    out = f
    for mu, k in enumerate(offsets):
        if k:
            out = shift(out, mu, k)
    return out


def gauge_violations(terms: Mapping[str, Callable[[Tensor], Tensor]], U: Tensor,
                     group: str | GaugeGroup, generator: torch.Generator,
                     n_transforms: int = 3) -> dict[str, float]:
    """Max |f(U) - f(gU)| over ``n_transforms`` random gauge transformations, per named term.

    Each term maps a link field (B, L..., d, *group_shape) to a tensor (e.g. (B,) actions). The
    compiler uses this to verify ``symmetry gauge`` and to name the term that breaks it.
    """
    group = get_group(group)
    d = lattice_dim(U, group)
    site_shape = tuple(U.shape[: 1 + d])
    base = {name: f(U) for name, f in terms.items()}
    worst = dict.fromkeys(terms, 0.0)
    for _ in range(n_transforms):
        omega = random_gauge(group, site_shape, generator, device=U.device, dtype=U.dtype)
        gU = gauge_transform(U, omega, group)
        for name, f in terms.items():
            diff = (f(gU) - base[name]).abs().max().item()
            worst[name] = max(worst[name], diff)
    return worst


def gauge_invariance_violation(action: Callable[[Tensor], Tensor], U: Tensor,
                               group: str | GaugeGroup, generator: torch.Generator,
                               n_transforms: int = 3) -> float:
    """Max |S(U) - S(gU)| over a few random gauge transformations (0 up to rounding if S is
    gauge invariant). Compare with a tolerance scaled by |S| and the dtype's epsilon."""
    return gauge_violations({"S": action}, U, group, generator, n_transforms)["S"]
