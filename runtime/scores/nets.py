"""Translation-equivariant networks of continuous lattice fields, conditioned on a noise level.

:class:`PeriodicCNN` is the backbone: convolutions with circular padding over a periodic chain
(1D) or square lattice (2D), so a translated field gives the translated output exactly; each
layer adds a bias computed from features of the conditioning scalar c (log sigma for a score
model, t for flow matching). Fields x have shape (B, *lattice.shape); outputs the same shape.

- :class:`ScoreNet`: an epsilon-predictor eps(x, sigma) ~ E[eps | x = x0 + sigma eps], whose
  score is s(x, sigma) = -eps / sigma. Preconditioned: eps = L_sigma x + c_out F(c_in x), with
  the linear skip L_sigma = sigma (P(k) + sigma^2)^-1 mode by mode (P(k): the data's power
  spectrum; sd^2 for every k with an isotropic skip), c_in = 1 / sqrt(sigma^2 + sd^2),
  c_out = sd sigma c_in^2. The last layer of F is zero at initialisation: the net starts as the
  exact eps of the Gaussian field with the data's two-point function.
- :class:`VelocityNet`: v(x, t) of flow matching along x_t = (1 - t) x0 + t x1, x0 ~ N(0, 1):
  v = A_t x + F(c_in x, t), A_t = (t P - (1 - t)) / ((1 - t)^2 + t^2 P) mode by mode,
  c_in = ((1 - t)^2 + t^2 sd^2)^(-1/2): again exact for that Gaussian at initialisation.

``odd = True`` (learners ``respecting spin_flip``) makes F odd, F(-x) = -F(x), by
antisymmetrisation, so the score, velocity and every sampler built on them respect phi -> -phi.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import nn

Tensor = torch.Tensor
FEATURES = 4  # Fourier frequencies of the conditioning scalar


class PeriodicCNN(nn.Module):
    """F(x, c): ``depth`` circular convolutions of ``width`` channels and SiLU, then one to a
    single channel (zero at initialisation). x (B, *shape) with len(shape) in (1, 2), c (B,)."""

    def __init__(self, dim: int, width: int, depth: int, kernel: int, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if dim not in (1, 2):
            raise ValueError("PeriodicCNN takes 1D or 2D lattices")
        self.dim, self.kernel = dim, kernel
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        chans = [1] + [width] * depth
        self.convs = nn.ModuleList(conv(a, b, kernel, dtype=dtype)
                                   for a, b in zip(chans[:-1], chans[1:]))  # fmt: skip
        n_feat = 1 + 2 * FEATURES
        self.embed = nn.ModuleList(nn.Linear(n_feat, width, dtype=dtype) for _ in range(depth))
        self.out = conv(width, 1, kernel, dtype=dtype)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() > 1:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64)
                            .to(dtype) * math.sqrt(2.0 / fan_in))  # fmt: skip
                else:
                    p.zero_()
            self.out.weight.zero_()
            self.out.bias.zero_()
        self.register_buffer("freqs", math.pi * torch.arange(1, FEATURES + 1, dtype=dtype))
        self.to(device)

    def _pad(self, h: Tensor) -> Tensor:
        p = self.kernel // 2
        return Fn.pad(h, (p, p) * self.dim, mode="circular")

    def features(self, c: Tensor) -> Tensor:
        """(B,) -> (B, 1 + 2 FEATURES): c, sin(k pi c), cos(k pi c)."""
        a = c[:, None] * self.freqs
        return torch.cat([c[:, None], torch.sin(a), torch.cos(a)], -1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        feat = self.features(c)
        h = x.unsqueeze(1)
        tail = (1,) * self.dim
        for conv, emb in zip(self.convs, self.embed):
            h = Fn.silu(conv(self._pad(h)) + emb(feat).reshape(*feat.shape[:1], -1, *tail))
        return self.out(self._pad(h)).squeeze(1)


class _Conditioned(nn.Module):
    """Shared parts: the backbone, the data's scale sd and power spectrum P(k) (buffers), oddness.

    ``power`` (*shape): P(k) = <|sum_x e^{-ikx} x_x|^2> / V of the data; given, the linear skip
    acts mode by mode (exact for any Gaussian translation-invariant field, e.g. the free
    field); None: isotropic, P(k) = sd^2 for every k."""

    def __init__(self, dim: int, width: int, depth: int, kernel: int, sd: float, odd: bool,
                 power: Tensor | None = None, **kw) -> None:  # fmt: skip
        super().__init__()
        self.F = PeriodicCNN(dim, width, depth, kernel, **kw)
        dtype, device = kw.get("dtype", torch.float64), kw.get("device", "cpu")
        self.register_buffer("sd", torch.tensor(float(sd), dtype=dtype, device=device))
        self.dim, self.odd, self.spectral = dim, odd, power is not None
        if power is not None:
            self.register_buffer("power", power.to(dtype=dtype, device=device))

    def residual(self, x: Tensor, c: Tensor) -> Tensor:
        if self.odd:
            both = self.F(torch.cat([x, -x]), torch.cat([c, c]))
            return 0.5 * (both[: x.shape[0]] - both[x.shape[0]:])
        return self.F(x, c)

    def linear(self, x: Tensor, gain) -> Tensor:
        """The mode-by-mode linear map x -> F^-1 [g(P(k)) F x] (``gain``: P (B or 1, *shape)
        -> g); with an isotropic skip, g(sd^2) x."""
        dims = tuple(range(-self.dim, 0))
        if not self.spectral:
            return gain(self.sd**2) * x
        g = gain(self.power.unsqueeze(0))
        return torch.fft.ifftn(torch.fft.fftn(x, dim=dims) * g, dim=dims).real


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


class ScoreNet(_Conditioned):
    """eps(x, sigma): the noise a denoiser removes; score s = -eps / sigma. x (B, *shape),
    sigma (B,) -> (B, *shape)."""

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sd2 = self.sd**2
        c_in = torch.rsqrt(sigma**2 + sd2)
        s = _bcast(sigma, x)
        skip = self.linear(x, lambda P: s / (P + s * s))
        c_out = _bcast(self.sd * sigma * c_in**2, x)
        return skip + c_out * self.residual(_bcast(c_in, x) * x, torch.log(sigma))

    def score(self, x: Tensor, sigma: Tensor) -> Tensor:
        """grad log p_sigma(x) = -eps / sigma."""
        return -self(x, sigma) / _bcast(sigma, x)


class VelocityNet(_Conditioned):
    """v(x, t) of the straight-path flow from N(0, 1) (t = 0) to the data (t = 1). x (B, *shape),
    t (B,) -> (B, *shape)."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        sd2 = self.sd**2
        var = (1 - t) ** 2 + t**2 * sd2
        tt = _bcast(t, x)
        skip = self.linear(x, lambda P: (tt * P - (1 - tt)) / ((1 - tt) ** 2 + tt * tt * P))
        return skip + self.residual(_bcast(torch.rsqrt(var), x) * x, 2 * t - 1)


def power_spectrum(x: Tensor) -> Tensor:
    """P(k) = <|sum_x e^{-ikx} phi_x|^2> / V of fields x (n, *shape): (*shape)."""
    dims = tuple(range(1, x.dim()))
    V = int(math.prod(x.shape[1:]))
    return (torch.fft.fftn(x, dim=dims).abs() ** 2).mean(0) / V


__all__ = ["PeriodicCNN", "ScoreNet", "VelocityNet", "power_spectrum"]
