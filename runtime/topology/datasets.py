"""Labelled data sets of band Hamiltonians: inputs on the k-grid, exact invariants as labels.

Each class is drawn from models built around its target invariant, then labelled exactly (a
model whose invariant came out different is kept under its true label if that class is wanted,
otherwise dropped), gapped models only, until every class has ``per_class`` members.
"""

from __future__ import annotations

import torch

from .bands import (
    chern_models,
    chern_number,
    chiral_models,
    fourier_curve,
    harmonic_models,
    k_grid,
    max_angle_step,
    max_neighbour_angle,
    random_rotations,
    winding_number,
)

FINE = 16  # the winding label is computed on a grid this many times finer than the input's
GAP = 0.05  # least |d(k)| / max |d(k)| of a kept model (a gap closing leaves w undefined)
ROUNDS = 20  # draws before giving up on filling a class
# the input grid resolves a curve when neighbouring k differ by less than this in angle (the
# discrete formula needs < pi; a margin keeps every class's local steps in one range)
MAX_STEP = torch.pi / 2
MIXED = 0.5  # the fraction of chiral models drawn around any harmonic
HARMONIC = 0.8  # the fraction of 2D models drawn from the harmonic family
HARMONIC_TOP = 2  # its highest harmonic


class SampleShortfall(Exception):
    """A class could not be filled (the settings make its models too rare)."""

    def __init__(self, label: int, have: int, want: int):
        super().__init__(f"class {label}: {have} of {want} models")
        self.label, self.have, self.want = label, have, want


def _fill(draw, labels: list[int], per_class: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw batches ``draw(targets) -> (x, label, ok)`` until each label has per_class members;
    returns x [len(labels) * per_class, ...] and its labels, class by class."""
    got: dict[int, list[torch.Tensor]] = {w: [] for w in labels}
    have = dict.fromkeys(labels, 0)
    for _ in range(ROUNDS):
        need = [w for w in labels if have[w] < per_class]
        if not need:
            break
        targets = torch.tensor(need, device=device).repeat_interleave(2 * per_class)
        x, lab, ok = draw(targets)
        for w in need:
            pick = x[ok & (lab == w)][: per_class - have[w]]
            got[w].append(pick)
            have[w] += pick.shape[0]
    for w in labels:
        if have[w] < per_class:
            raise SampleShortfall(w, have[w], per_class)
    xs = torch.cat([torch.cat(got[w]) for w in labels])
    ys = torch.tensor(labels, device=device).repeat_interleave(per_class)
    return xs, ys


def winding_data(windings: list[int], per_class: int, k_points: int, harmonics: int,
                 disorder: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Chiral models with each winding in ``windings``: inputs d/|d| [N, 2, k_points] (float32)
    and exact windings [N] (long)."""
    dev = gen.device
    k = k_grid(k_points, device=dev)
    fine = k_grid(k_points * FINE, device=dev)

    def draw(targets):
        # half the models are built around any harmonic (labelled by their true winding):
        # every class then also holds curves that turn fast and back, so the local angle
        # steps of the training classes span those of higher windings
        spread = torch.randint(-harmonics, harmonics + 1, targets.shape, generator=gen,
                               device=dev)  # fmt: skip
        mixed = torch.rand(targets.shape, generator=gen, device=dev) < MIXED
        coeff = chiral_models(torch.where(mixed, spread, targets), harmonics, disorder, gen)
        d_fine = fourier_curve(coeff, fine)
        size = d_fine.norm(dim=1)
        gapped = size.amin(-1) > GAP * size.amax(-1)
        w = winding_number(d_fine).round().long()
        d = fourier_curve(coeff, k)
        # the input grid must resolve the curve: its own discrete winding agrees
        resolved = (winding_number(d).round().long() == w) & (max_angle_step(d) < MAX_STEP)
        return (d / d.norm(dim=1, keepdim=True)).float(), w, gapped & resolved

    return _fill(draw, windings, per_class, dev)


def chern_data(cherns: list[int], per_class: int, points: int, perturbation: float,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Two-band models with each Chern number in ``cherns``: inputs d/|d| [N, 3, N_k, N_k]
    (float32) and exact (FHS) Chern numbers [N] (long). Training and test sets come from the
    same generator; only their labels differ."""

    dev = gen.device

    def draw(targets):
        # most models come from the harmonic family (harmonics up to 2, labelled by their true
        # C): a training class C in {-1, 0, 1} then also holds the multi-cone, fast-turning
        # local textures of |C| = 2, so that the plaquettes of the test lie within the range
        # seen in training; the rest are QWZ models built around the wanted class
        b = targets.shape[0]
        qwz_like = chern_models(targets, points, perturbation, gen)
        family = harmonic_models(b, points, HARMONIC_TOP, perturbation, gen, device=dev)
        pick = torch.rand(b, generator=gen, device=dev) < HARMONIC
        d = torch.where(pick[:, None, None, None], family, qwz_like)
        size = d.norm(dim=1).flatten(1)
        gapped = size.amin(-1) > GAP * size.amax(-1)
        n = d / d.norm(dim=1, keepdim=True)
        resolved = max_neighbour_angle(n) < MAX_STEP  # FHS's plaquettes are then small
        c = chern_number(d).round().long()
        return n.float(), c, gapped & resolved

    return _fill(draw, cherns, per_class, dev)


def torus_symmetries(x: torch.Tensor, y: torch.Tensor,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A random symmetry per model of d/|d| x [B, 3, N, N] with Chern numbers y [B]: an O(3)
    map of d-space (C times its determinant), a transposition kx <-> ky and a reflection
    kx -> -kx of the torus (each reverses its orientation: C -> -C)."""
    b, dev = x.shape[0], gen.device
    rot = random_rotations(b, gen, device=dev, dtype=torch.float32)
    flips = torch.rand(b, 3, generator=gen, device=dev) < 0.5
    rot, flips = rot.to(x.device), flips.to(x.device)
    sign = torch.where(flips[:, 0], -1.0, 1.0).to(x.dtype)
    x = torch.einsum("bij,bjxy->bixy", rot * sign[:, None, None], x)  # -R: det -1
    x = torch.where(flips[:, 1, None, None, None], x.transpose(2, 3), x)
    x = torch.where(flips[:, 2, None, None, None], x.flip(2), x)
    odd = flips.sum(-1) % 2 == 1
    return x, torch.where(odd, -y, y)


__all__ = ["SampleShortfall", "chern_data", "torus_symmetries", "winding_data"]
