"""Simulated microscope images of atoms on a square lattice with one impurity.

Each site of a square lattice of spacing ``spacing`` pixels holds an atom imaged as a Gaussian
point-spread blob of width ``psf`` pixels and brightness 1 +- ``jitter``; one site is the
impurity (``missing``: no atom; ``bright``: twice as bright); Gaussian noise of standard
deviation ``noise`` is added to every pixel. The target is the impurity's pixel (its site's
centre, rounded), so a located impurity is a pixel index of the size x size image. The lattice
sits at offset ``offset`` pixels (the training images at a fixed offset; shifted images at
random offsets of the whole lattice, which also moves where impurities can be).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSpec:
    """How the images of one test condition are drawn."""

    size: int
    spacing: int
    psf: float
    noise: float
    jitter: float
    impurity: str  # "missing" | "bright"
    shift: bool = False  # random lattice offsets (0 .. spacing - 1 pixels on each axis)


def microscope_images(spec: ImageSpec, count: int, gen: torch.Generator, *, device
                      ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``count`` images [B, 1, S, S] (float32) and the impurity's flat pixel index [B]."""
    s, a, dev = spec.size, spec.spacing, device
    sites = s // a
    if spec.shift:  # the whole lattice moved by 0 .. a - 1 pixels on each axis
        origin = torch.randint(0, a, (count, 2), generator=gen, device=dev).to(torch.float32)
    else:  # sites centred in their a x a cells
        origin = torch.full((count, 2), float((a - 1) // 2), device=dev)
    grid = torch.arange(sites, device=dev, dtype=torch.float32) * a  # [n]
    cy = grid[None, :] + origin[:, :1]  # [B, n]
    cx = grid[None, :] + origin[:, 1:]
    bright = 1 + spec.jitter * (2 * torch.rand(count, sites, sites, generator=gen, device=dev) - 1)
    which = torch.randint(0, sites * sites, (count,), generator=gen, device=dev)
    flat = bright.reshape(count, -1)
    rows = torch.arange(count, device=dev)
    flat[rows, which] = 0.0 if spec.impurity == "missing" else 2.0 * flat[rows, which]
    bright = flat.reshape(count, sites, sites)
    pix = torch.arange(s, device=dev, dtype=torch.float32)
    # separable Gaussian blobs: image[y, x] = sum_ij g(y - cy_i) bright_ij g(x - cx_j)
    dy = _periodic(pix[None, None, :] - cy[:, :, None], s)  # [B, n, S]
    dx = _periodic(pix[None, None, :] - cx[:, :, None], s)
    gy = torch.exp(-dy**2 / (2 * spec.psf**2))
    gx = torch.exp(-dx**2 / (2 * spec.psf**2))
    img = torch.einsum("biy,bij,bjx->byx", gy, bright, gx)
    img = img + spec.noise * torch.randn(count, s, s, generator=gen, device=dev)
    iy, ix = which // sites, which % sites
    ty = (cy[rows, iy].round().long()) % s
    tx = (cx[rows, ix].round().long()) % s
    return img[:, None], ty * s + tx


def _periodic(delta: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel distances on a ring of ``size`` (a lattice that fills the image wraps around)."""
    return torch.remainder(delta + size / 2, size) - size / 2


def located(logits: torch.Tensor, target: torch.Tensor, size: int, spacing: int) -> torch.Tensor:
    """Whether each argmax pixel of logits [B, S*S] is nearer the impurity's pixel than half a
    lattice spacing on both axes (the right site): [B] bool."""
    guess = logits.argmax(-1)
    dy = _periodic((guess // size - target // size).float(), size).abs()
    dx = _periodic((guess % size - target % size).float(), size).abs()
    return (dy < spacing / 2) & (dx < spacing / 2)


__all__ = ["ImageSpec", "located", "microscope_images"]
