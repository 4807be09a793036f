"""Gauge-equivariant normalising flow of 2D U(1) link angles (Kanwar et al., PRL 125, 121601
(2020)), with circular rational-quadratic splines (Durkan et al. 2019; Rezende et al. 2020) as
the invertible maps of plaquette angles.

Links theta (B, L0, L1, 2): theta[b, x, mu] is the angle of U_mu(x) = exp(i theta). Plaquettes
P(x) = theta_0(x) + theta_1(x + e0) - theta_0(x + e1) - theta_1(x), (B, L0, L1).

A coupling layer (direction mu, offset s, nu = 1 - mu) updates the mu-links of one stripe:

- active plaquettes: x_nu = s (mod 4). Each contains exactly one updated link with sign +1:
  U_0(x) for mu = 0, U_1(x + e0) for mu = 1;
- passive plaquettes: the other plaquette of each updated link (x_nu = s - 1 for mu = 0,
  s + 1 for mu = 1): they change, and are not read;
- frozen plaquettes: the remaining two residues mod 4: they are unchanged by the layer and
  condition it through a circular CNN of (cos P, sin P).

The active plaquette goes through a circular spline h (bins, knot derivatives and a rotation
from the CNN): P -> P' = h(P), and the updated link by theta += P' - P. The conditioning does
not depend on the updated links, each updated link enters one active plaquette with unit
coefficient, so the Jacobian is triangular and log |det| = sum_active log h'(P): exact.

Symmetries, exactly: the layer adds to each link a function of plaquettes only, so with a gauge
transformation theta_mu(x) -> theta_mu(x) + a(x) - a(x + e_mu) (plaquettes invariant),
f(Omega theta) = Omega f(theta) (mod 2 pi), and the density q(theta) is gauge invariant. The
masks have period 4 across each direction and the CNN is circular: f commutes with the
translations by multiples of 4 in both directions (all the masks' common period). Both extents
must be multiples of 4.

The prior is the Haar measure (uniform angles); densities are relative to the Haar measure
normalised to 1 per link, so log q(theta) = -log |det df/dz| and <exp(-S) / q>_q = Z with the
normalisation of runtime/gauge/exact.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
TWO_PI = 2 * math.pi
MIN_BIN = 1e-3  # smallest bin width and height (fraction of 2 pi)
MIN_DERIVATIVE = 1e-3  # smallest knot derivative
_SOFTPLUS_ONE = math.log(math.e - 1)  # softplus(raw + this) = 1 at raw = 0: identity at init
PERIOD = 4  # the masks' period across each direction


def plaquettes(theta: Tensor) -> Tensor:
    """P(x) = theta_0(x) + theta_1(x + e0) - theta_0(x + e1) - theta_1(x): (B, L0, L1), unwrapped."""
    t0, t1 = theta[..., 0], theta[..., 1]
    return t0 + t1.roll(-1, 1) - t0.roll(-1, 2) - t1


# ---------------------------------------------------------------- circular splines


def circular_spline(x: Tensor, params: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """A monotone circular rational-quadratic spline of [0, 2 pi) onto itself, then a rotation.

    x (N,) angles in [0, 2 pi); params (N, 3K + 1): K bin widths, K bin heights, K knot
    derivatives (the derivative at 2 pi equals the one at 0: smooth on the circle) and a
    rotation. Returns (y in [0, 2 pi), log dy/dx at the point) for the forward map, and (x,
    log dx/dy) for ``inverse`` (x then is y)."""
    K = (params.shape[-1] - 1) // 3
    w = MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(params[..., :K], -1)
    h = MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(params[..., K:2 * K], -1)
    d = MIN_DERIVATIVE + F.softplus(params[..., 2 * K:3 * K] + _SOFTPLUS_ONE)
    d = torch.cat([d, d[..., :1]], -1)  # (N, K + 1)
    rotation = params[..., 3 * K]
    zero = torch.zeros_like(w[..., :1])
    xk = TWO_PI * torch.cat([zero, w.cumsum(-1)], -1)
    yk = TWO_PI * torch.cat([zero, h.cumsum(-1)], -1)
    xk[..., -1], yk[..., -1] = TWO_PI, TWO_PI
    w, h = xk[..., 1:] - xk[..., :-1], yk[..., 1:] - yk[..., :-1]
    if inverse:
        x = torch.remainder(x - rotation, TWO_PI)
    knots = yk if inverse else xk
    k = torch.searchsorted(knots[..., 1:-1].contiguous(), x[..., None].contiguous())
    k = k.clamp(0, K - 1)

    def at(t: Tensor) -> Tensor:
        return t.gather(-1, k)[..., 0]

    x0, y0, wk, hk, d0, d1 = at(xk), at(yk), at(w), at(h), at(d), at(d[..., 1:])
    s = hk / wk
    if inverse:
        dy = x - y0
        a = hk * (s - d0) + dy * (d1 + d0 - 2 * s)
        b = hk * d0 - dy * (d1 + d0 - 2 * s)
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        xi = (2 * c / (-b - disc.sqrt())).clamp(0, 1)
    else:
        xi = ((x - x0) / wk).clamp(0, 1)
    om = xi * (1 - xi)
    denom = s + (d1 + d0 - 2 * s) * om
    log_grad = (2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * om + d0 * (1 - xi) ** 2)
                - 2 * torch.log(denom))  # fmt: skip
    if inverse:
        return x0 + xi * wk, -log_grad
    y = y0 + hk * (s * xi * xi + d0 * om) / denom
    return torch.remainder(y + rotation, TWO_PI), log_grad


# ---------------------------------------------------------------- coupling layers


def stripe_masks(shape: tuple[int, int], mu: int, offset: int, device=None
                 ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(active, frozen) plaquette masks (L0, L1) bool of a layer updating mu-links at
    ``offset``: active x_nu = offset (mod 4), frozen the two residues that are neither active
    nor passive (passive: offset - 1 for mu = 0, offset + 1 for mu = 1)."""
    nu = 1 - mu
    coord = torch.arange(shape[nu], device=device) % PERIOD
    passive = (offset + (-1 if mu == 0 else 1)) % PERIOD
    line_active = coord == offset % PERIOD
    line_frozen = ~line_active & (coord != passive)
    expand = (lambda m: m[None, :].expand(shape)) if nu == 1 else (lambda m: m[:, None].expand(shape))
    return expand(line_active).contiguous(), expand(line_frozen).contiguous()


class Conditioner(nn.Module):
    """Frozen plaquettes (B, 2, L0, L1) (cos, sin; zero elsewhere) -> spline parameters of the
    active plaquettes (B, n_active, 3K + 1): ``depth`` circular convolutions (kernel x kernel,
    ``width`` channels, leaky ReLU), then a linear head read at the active sites only. The head
    starts at zero: the layer starts as the identity."""

    def __init__(self, width: int, depth: int, kernel: int, bins: int, dtype: torch.dtype,
                 device, generator: torch.Generator) -> None:  # fmt: skip
        super().__init__()
        sizes = [2] + [width] * depth
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel, padding=kernel // 2, padding_mode="circular", dtype=dtype,
                      device=device) for a, b in zip(sizes[:-1], sizes[1:]))  # fmt: skip
        self.head = nn.Linear(sizes[-1], 3 * bins + 1, dtype=dtype, device=device)
        with torch.no_grad():
            for conv in self.convs:
                bound = 1 / math.sqrt(conv.in_channels * kernel * kernel)
                for p in (conv.weight, conv.bias):
                    r = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                    p.copy_(((2 * r - 1) * bound).to(p))
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, x: Tensor, active: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x))
        return self.head(x.permute(0, 2, 3, 1)[:, active])


class PlaquetteCoupling(nn.Module):
    """One gauge-equivariant coupling layer (see the module docstring)."""

    def __init__(self, shape: tuple[int, int], mu: int, offset: int, width: int, depth: int,
                 kernel: int, bins: int, dtype: torch.dtype, device,
                 generator: torch.Generator) -> None:  # fmt: skip
        super().__init__()
        self.mu = mu
        active, frozen = stripe_masks(shape, mu, offset, device)
        self.register_buffer("active", active, persistent=False)
        self.register_buffer("frozen", frozen.to(dtype), persistent=False)
        self.net = Conditioner(width, depth, kernel, bins, dtype, device, generator)

    def _params(self, P: Tensor) -> Tensor:
        """Spline parameters of the active plaquettes (B, n_active, 3K + 1) from the frozen."""
        fz = self.frozen
        feats = torch.stack([torch.cos(P) * fz, torch.sin(P) * fz], 1)
        return self.net(feats, self.active)

    def _update(self, theta: Tensor, P: Tensor, P_new: Tensor) -> Tensor:
        """theta with its updated links moved by the change P_new - P of their active plaquette
        (P, P_new (B, n_active))."""
        delta = torch.zeros_like(theta[..., 0])
        delta[:, self.active] = P_new - P
        if self.mu == 1:  # the +1 link of P(x) is U_1(x + e0)
            delta = delta.roll(1, 1)
        step = torch.stack([delta, torch.zeros_like(delta)] if self.mu == 0
                           else [torch.zeros_like(delta), delta], -1)  # fmt: skip
        return torch.remainder(theta + step, TWO_PI)

    def forward(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """theta (B, L0, L1, 2) -> (theta', log |det dtheta'/dtheta| (B,))."""
        P = plaquettes(theta)
        params = self._params(P)
        x = torch.remainder(P[:, self.active], TWO_PI)
        y, log_grad = circular_spline(x, params)
        return self._update(theta, x, y), log_grad.sum(-1)

    def inverse(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """theta' -> (theta, log |det dtheta/dtheta'| (B,)); the frozen plaquettes are unchanged
        by the layer, so the conditioning is read off theta'."""
        P = plaquettes(theta)
        params = self._params(P)
        y = torch.remainder(P[:, self.active], TWO_PI)
        x, log_grad = circular_spline(y, params, inverse=True)
        return self._update(theta, y, x), log_grad.sum(-1)


class GaugeFlow(nn.Module):
    """The flow: ``layers`` coupling layers cycling through (mu, offset) = (0, 0), (1, 0),
    (0, 1), (1, 1), ..., (1, 3), from uniform (Haar) link angles z (B, L0, L1, 2) in [0, 2 pi).
    Densities are relative to the normalised Haar measure."""

    def __init__(self, shape: tuple[int, int], layers: int, width: int, depth: int, kernel: int,
                 bins: int, dtype: torch.dtype = torch.float64, device=None,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if any(L % PERIOD for L in shape):
            raise ValueError(f"the masks need lattice extents divisible by {PERIOD}, got {shape}")
        generator = generator or torch.Generator().manual_seed(0)
        self.shape, self.dtype = tuple(shape), dtype
        self.layers = nn.ModuleList(
            PlaquetteCoupling(self.shape, i % 2, (i // 2) % PERIOD, width, depth, kernel, bins,
                              dtype, device, generator) for i in range(layers))  # fmt: skip

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, L0, L1, 2) -> (theta, log |det dtheta/dz| (B,))."""
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """theta -> (z, log |det dz/dtheta| (B,))."""
        logdet = torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
        for layer in reversed(self.layers):
            theta, ld = layer.inverse(theta)
            logdet = logdet + ld
        return theta, logdet

    def sample(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Uniforms u (B, L0, L1, 2) in [0, 1) -> (theta, log q(theta) (B,))."""
        theta, logdet = self(TWO_PI * u.to(self.dtype))
        return theta, -logdet

    def log_prob(self, theta: Tensor) -> Tensor:
        """log q(theta) (B,) relative to the normalised Haar measure."""
        return self.inverse(torch.remainder(theta.to(self.dtype), TWO_PI))[1]


__all__ = ["GaugeFlow", "PlaquetteCoupling", "circular_spline", "plaquettes", "stripe_masks"]
