"""A box in d dimensions: its walls (mirror reflection) and its cell-centred grid,
x_j = lower + (j + 1/2) h per axis, so that a point singularity at a box-symmetric position (the
-1/r of hydrogen at the origin) never falls on a grid point."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def reflect_into_box(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Fold points back into [lower, upper] by mirror reflection at the walls (any overshoot:
    a triangle wave of period 2 L). Reflection keeps a symmetric proposal symmetric, so a
    Metropolis chain on the box stays exact. Shapes broadcast: x (..., n), bounds (n,)."""
    width = upper - lower
    t = torch.remainder(x - lower, 2 * width)
    return lower + torch.where(t > width, 2 * width - t, t)


@dataclass(frozen=True)
class GridSpec:
    """``lower``, ``upper``: the box per axis; ``points``: grid points per axis (d = len)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    points: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (len(self.lower) == len(self.upper) == len(self.points) >= 1):
            raise ValueError("GridSpec: lower, upper and points need one entry per axis")

    @property
    def dim(self) -> int:
        return len(self.points)

    @property
    def spacing(self) -> tuple[float, ...]:
        """h per axis."""
        return tuple((u - lo) / n for lo, u, n in zip(self.lower, self.upper, self.points,
                                                      strict=True))  # fmt: skip

    @property
    def cell_volume(self) -> float:
        """h_1 h_2 ... h_d: sum |psi|^2 * cell_volume is the norm."""
        return math.prod(self.spacing)

    def axes(self, device: torch.device | str, dtype: torch.dtype = torch.float64
             ) -> list[torch.Tensor]:  # fmt: skip
        """The cell centres of every axis: d tensors of shape (points[a],)."""
        return [lo + (torch.arange(n, device=device, dtype=dtype) + 0.5) * h
                for lo, n, h in zip(self.lower, self.points, self.spacing, strict=True)]  # fmt: skip

    def coordinates(self, device: torch.device | str, dtype: torch.dtype = torch.float64
                    ) -> torch.Tensor:  # fmt: skip
        """Every grid point's coordinates: shape (*points, d)."""
        return torch.stack(torch.meshgrid(*self.axes(device, dtype), indexing="ij"), dim=-1)

    def wavenumbers_squared(self, device: torch.device | str,
                            dtype: torch.dtype = torch.float64) -> torch.Tensor:  # fmt: skip
        """|k|^2 of the discrete Fourier modes of the periodic box: shape (*points)."""
        ks = [2 * math.pi * torch.fft.fftfreq(n, d=h, device=device, dtype=dtype)
              for n, h in zip(self.points, self.spacing, strict=True)]  # fmt: skip
        grids = torch.meshgrid(*ks, indexing="ij")
        return sum(k * k for k in grids)
