"""Checkerboard coupling flows of a real lattice field phi (C, *lattice) with periodic CNN
conditioners (Albergo, Kanwar, Shanahan, PRD 100, 034515 (2019)).

phi = f(z), z ~ N(0, 1) on every site. Layer l updates the sites of checkerboard parity l mod 2
(parity = sum of the site's coordinates mod 2) given the others (frozen):

- affine: phi_a' = phi_a exp(s) + t, s = bound tanh(s_raw / bound) (|s| <= bound);
- spline: phi_a' = g(phi_a), g a monotone rational-quadratic spline on [-bound, bound] with
  linear (identity) tails (``splines.py``);

(s_raw, t) or the spline parameters come from a CNN of the frozen sites, circularly padded. A
circular convolution commutes with every translation, the checkerboard with the translations
by a = (a_1, .., a_d) with sum a_i even, so the flow commutes with those (periodic lattice with
even extents). ``odd = True`` (respecting spin_flip) makes every layer odd, f(-z) = -f(z), with
an even log-det: the conditioner is evaluated at the frozen sites x and at -x, and s is its
even part, t its odd part; the spline parameters are (p(x) + reflect(p(-x))) / 2, for which
g_{-x}(-y) = -g_x(y) (``splines.reflect``). Then q(-phi) = q(phi).

log q(phi) = log N(z) - sum_layers log |det d phi'/d phi| is exact (the Jacobian of a coupling
layer is triangular); both directions are closed form (``forward`` z -> phi for sampling and
reverse KL, ``inverse`` phi -> z for the forward-KL warm start).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .splines import reflect, rq_spline, spline_parameter_count

Tensor = torch.Tensor
LOG_2PI = math.log(2 * math.pi)

__all__ = ["CouplingFlow", "checkerboard"]


def checkerboard(shape: tuple[int, ...], parity: int, dtype: torch.dtype,
                 device: torch.device | str | None = None) -> Tensor:  # fmt: skip
    """1 on the sites with (sum of coordinates) % 2 == parity, else 0: (*shape)."""
    grids = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    return ((sum(grids) % 2) == parity).to(dtype)


class Conditioner(nn.Module):
    """A periodic CNN (1 -> width -> ... -> out channels), tanh activations."""

    def __init__(self, dim: int, out: int, width: int, depth: int, kernel: int,
                 dtype: torch.dtype, device, generator: torch.Generator | None) -> None:  # fmt: skip
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
        sizes = [1] + [width] * depth + [out]
        self.convs = nn.ModuleList(
            conv(a, b, kernel, padding=kernel // 2, padding_mode="circular", dtype=dtype,
                 device=device) for a, b in zip(sizes[:-1], sizes[1:]))  # fmt: skip
        with torch.no_grad():
            for c in self.convs:  # Kaiming-uniform-like, from the point's own generator
                bound = 1 / math.sqrt(c.weight[0].numel())
                c.weight.copy_((torch.rand(c.weight.shape, generator=generator, dtype=dtype)
                                * 2 - 1) * bound)  # fmt: skip
                c.bias.copy_((torch.rand(c.bias.shape, generator=generator, dtype=dtype) * 2 - 1)
                             * bound)  # fmt: skip
            last = self.convs[-1]  # start near the identity map
            last.weight.mul_(0.01)
            last.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """(C, *lattice) -> (C, out, *lattice)."""
        h = x.unsqueeze(1)
        for c in self.convs[:-1]:
            h = torch.tanh(c(h))
        return self.convs[-1](h)


class CouplingLayer(nn.Module):
    """One checkerboard coupling layer (see the module docstring)."""

    def __init__(self, shape: tuple[int, ...], parity: int, kind: str, width: int, depth: int,
                 kernel: int, bins: int, bound: float, odd: bool, dtype: torch.dtype, device,
                 generator: torch.Generator | None) -> None:  # fmt: skip
        super().__init__()
        self.kind, self.bins, self.odd = kind, bins, odd
        self.bound = bound or (1.0 if kind == "affine" else 5.0)
        out = 2 if kind == "affine" else spline_parameter_count(bins)
        self.net = Conditioner(len(shape), out, width, depth, kernel, dtype, device, generator)
        self.register_buffer("active", checkerboard(shape, parity, dtype, device))
        self.register_buffer("frozen", 1 - checkerboard(shape, parity, dtype, device))

    def conditioned(self, x: Tensor) -> Tensor:
        """Conditioner output (C, out, *lattice) of the frozen sites of x, symmetrised when odd."""
        xf = x * self.frozen
        if not self.odd:
            return self.net(xf)
        h = self.net(torch.cat([xf, -xf]))
        hp, hm = h[: x.shape[0]], h[x.shape[0]:]
        if self.kind == "affine":  # s even, t odd
            return torch.stack([(hp[:, 0] + hm[:, 0]) / 2, (hp[:, 1] - hm[:, 1]) / 2], dim=1)
        k = self.bins
        w, hh, d = reflect(hm[:, :k].movedim(1, -1), hm[:, k:2 * k].movedim(1, -1),
                           hm[:, 2 * k:].movedim(1, -1))  # fmt: skip
        return (hp + torch.cat([w, hh, d], dim=-1).movedim(-1, 1)) / 2

    def transform(self, x: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """x -> (x', log |det dx'/dx|) per configuration (C,)."""
        p = self.conditioned(x)
        a = self.active
        dims = tuple(range(1, x.dim()))
        if self.kind == "affine":
            s = self.bound * torch.tanh(p[:, 0] / self.bound) * a
            t = p[:, 1] * a
            y = (x - t) * torch.exp(-s) if inverse else x * torch.exp(s) + t
            logdet = s.sum(dims)
            return y, -logdet if inverse else logdet
        k = self.bins
        q = p.movedim(1, -1)
        y, ld = rq_spline(x, q[..., :k], q[..., k:2 * k], q[..., 2 * k:], self.bound, inverse)
        y = a * y + (1 - a) * x
        return y, (ld * a).sum(dims)


class CouplingFlow(nn.Module):
    """phi = f(z) on a periodic lattice of ``shape`` (even extents): ``layers`` checkerboard
    coupling layers of alternating parity; prior N(0, 1) per site."""

    def __init__(self, shape: tuple[int, ...], layers: int = 8, kind: str = "affine",
                 width: int = 16, depth: int = 2, kernel: int = 3, bins: int = 8,
                 bound: float = 0.0, odd: bool = False, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if any(n % 2 for n in shape):
            raise ValueError(f"a checkerboard flow needs even lattice extents, got {shape}")
        self.shape, self.dtype, self.odd = tuple(shape), dtype, odd
        self.layers = nn.ModuleList(
            CouplingLayer(self.shape, i % 2, kind, width, depth, kernel, bins, bound, odd,
                          dtype, device, generator) for i in range(layers))  # fmt: skip

    @property
    def n_sites(self) -> int:
        return math.prod(self.shape)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, 1) summed over sites: (C, *lattice) -> (C,)."""
        return -0.5 * (z * z).reshape(z.shape[0], -1).sum(-1) - 0.5 * LOG_2PI * self.n_sites

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (C, *lattice) -> phi = f(z) and log q(phi) (C,)."""
        logq = self.prior_log_prob(z)
        x = z
        for layer in self.layers:
            x, ld = layer.transform(x)
            logq = logq - ld
        return x, logq

    def inverse(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """phi (C, *lattice) -> z = f^-1(phi) and log q(phi) (C,)."""
        x, logdet = phi, torch.zeros(phi.shape[0], dtype=phi.dtype, device=phi.device)
        for layer in reversed(self.layers):
            x, ld = layer.transform(x, inverse=True)
            logdet = logdet + ld
        return x, self.prior_log_prob(x) + logdet

    def log_prob(self, phi: Tensor) -> Tensor:
        """Exact log q(phi) (C,) by the inverse map."""
        return self.inverse(phi)[1]
