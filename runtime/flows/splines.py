"""Monotone rational-quadratic splines with linear tails (Durkan, Bekasov, Murray, Papamakarios,
"Neural Spline Flows", NeurIPS 2019), elementwise and batched.

On [-bound, bound] the map is a monotone piecewise rational-quadratic function through K + 1
knots; outside it is the identity (derivative 1 at both ends, so the map is C^1). The
parameters of each element are unnormalised: widths (..., K) and heights (..., K) go through a
softmax (each bin at least ``min_bin`` of the interval), the K - 1 interior derivatives through
softplus (at least ``min_derivative``). Both directions are closed form (the inverse solves a
quadratic); each returns log |dy/dx| (forward) or log |dx/dy| (inverse) per element.

:func:`reflect` gives the parameters of the reflected spline x -> -g(-x) (bins and derivatives
in reverse order): a coupling layer that uses (p(x) + reflect(p(-x))) / 2 is odd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3

__all__ = ["rq_spline", "reflect", "spline_parameter_count"]


def spline_parameter_count(bins: int) -> int:
    """Unnormalised parameters per element: K widths, K heights, K - 1 interior derivatives."""
    return 3 * bins - 1


def reflect(widths: Tensor, heights: Tensor, derivatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Parameters of x -> -g(-x) for the spline g of (widths, heights, derivatives)."""
    return widths.flip(-1), heights.flip(-1), derivatives.flip(-1)


def _knots(unnormalised: Tensor, bound: float, min_bin: float) -> tuple[Tensor, Tensor]:
    """Knot positions (..., K + 1) from -bound to bound and bin sizes (..., K)."""
    k = unnormalised.shape[-1]
    frac = min_bin + (1 - min_bin * k) * torch.softmax(unnormalised, dim=-1)
    cum = F.pad(torch.cumsum(frac, dim=-1), (1, 0))
    cum = 2 * bound * cum - bound
    cum = torch.cat([torch.full_like(cum[..., :1], -bound), cum[..., 1:-1],
                     torch.full_like(cum[..., :1], bound)], dim=-1)  # fmt: skip
    return cum, cum[..., 1:] - cum[..., :-1]


def rq_spline(x: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float,
              inverse: bool = False, min_bin: float = MIN_BIN,
              min_derivative: float = MIN_DERIVATIVE) -> tuple[Tensor, Tensor]:  # fmt: skip
    """y = g(x) (or x = g^-1(y) with ``inverse``) and log |d out / d in|, both shaped like x.

    x: (...); widths, heights: (..., K); derivatives: (..., K - 1), unnormalised."""
    if widths.shape[-1] != heights.shape[-1] or derivatives.shape[-1] != widths.shape[-1] - 1:
        raise ValueError("rq_spline: widths and heights (..., K), derivatives (..., K - 1)")
    xk, wk = _knots(widths, bound, min_bin)
    yk, hk = _knots(heights, bound, min_bin)
    one = torch.ones_like(derivatives[..., :1])
    d = torch.cat([one, min_derivative + F.softplus(derivatives) * (1 - min_derivative)
                   / F.softplus(torch.zeros((), dtype=x.dtype, device=x.device)), one], dim=-1)  # fmt: skip
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)  # the unused branch stays finite (no nan gradients)
    knots = yk if inverse else xk
    idx = torch.searchsorted(knots[..., 1:-1].contiguous(), xc[..., None].contiguous())
    xs, ws = xk.gather(-1, idx)[..., 0], wk.gather(-1, idx)[..., 0]
    ys, hs = yk.gather(-1, idx)[..., 0], hk.gather(-1, idx)[..., 0]
    d0, d1 = d.gather(-1, idx)[..., 0], d.gather(-1, idx + 1)[..., 0]
    delta = hs / ws
    if inverse:
        dy = xc - ys
        a = hs * (delta - d0) + dy * (d1 + d0 - 2 * delta)
        b = hs * d0 - dy * (d1 + d0 - 2 * delta)
        c = -delta * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        theta = (2 * c) / (-b - torch.sqrt(disc))
        out = theta * ws + xs
    else:
        theta = (xc - xs) / ws
    t1 = theta * (1 - theta)
    den = delta + (d1 + d0 - 2 * delta) * t1
    if not inverse:
        out = ys + hs * (delta * theta * theta + d0 * t1) / den
    dnum = delta * delta * (d1 * theta * theta + 2 * delta * t1 + d0 * (1 - theta) ** 2)
    logdet = torch.log(dnum) - 2 * torch.log(den)
    if inverse:
        logdet = -logdet
    return torch.where(inside, out, x), torch.where(inside, logdet, torch.zeros_like(logdet))
