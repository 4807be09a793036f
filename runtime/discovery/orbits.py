"""Measures of simulated orbits, batched over trajectories (no loop over them).

Every trajectory of a bound, periodic motion gives one row: its ``period``, ``amplitude``,
``semi_major_axis`` (planar central-force orbits) and ``energy``. The period is the time the
orbit's phase angle takes to turn a whole number of times, found by linear interpolation
between saved states:

- one degree of freedom (a pendulum): the angle of (q - q_c, p - p_c) about the orbit's centre
  in phase space, which turns monotonically along a closed orbit of H = T(p) + V(q);
- a two-body problem (q of shape (2, D)): the angle of the relative position q_1 - q_2 in its
  first two dimensions (Kepler orbits close after one turn); a single body in D >= 2
  dimensions: the angle of its position about the origin (a central force).

Shapes: t (T,), q and p (B, T, n) over flattened coordinates with ``shape`` the declared one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
TWO_PI = 2 * math.pi


@dataclass
class OrbitMeasures:
    """Per-trajectory measures, each (B,) float64: ``period`` (NaN where the orbit did not turn
    once), ``turns`` (whole turns observed), ``amplitude`` (max |q| over time and coordinates;
    the largest separation for two bodies), ``semi_major_axis`` ((r_min + r_max) / 2 of the
    separation; NaN for one degree of freedom), ``energy`` (H at the first state)."""

    period: Tensor
    turns: Tensor
    amplitude: Tensor
    semi_major_axis: Tensor | None
    energy: Tensor | None

    def columns(self) -> dict[str, Tensor]:
        out = {"period": self.period, "amplitude": self.amplitude}
        if self.semi_major_axis is not None:
            out["semi_major_axis"] = self.semi_major_axis
        if self.energy is not None:
            out["energy"] = self.energy
        return out


def unwrapped(angle: Tensor) -> Tensor:
    """Unwrap angles (B, T) along time: steps wrapped into (-pi, pi], summed."""
    step = torch.diff(angle, dim=1)
    step = torch.remainder(step + math.pi, TWO_PI) - math.pi
    return torch.cat([torch.zeros_like(angle[:, :1]), torch.cumsum(step, 1)], 1)


def winding_period(t: Tensor, phase: Tensor) -> tuple[Tensor, Tensor]:
    """(period, whole turns) (B,) of unwrapped phases (B, T): the time at which |phase|
    first reaches 2 pi N (N: the whole turns made), linearly interpolated, over N."""
    turned = phase.abs()
    turned = torch.cummax(turned, 1).values  # monotone for searchsorted (noise-safe)
    turns = torch.floor(turned[:, -1] / TWO_PI)
    goal = (turns * TWO_PI).unsqueeze(1)
    hi = torch.searchsorted(turned.contiguous(), goal).clamp(1, t.shape[0] - 1)
    lo = hi - 1
    y0, y1 = turned.gather(1, lo), turned.gather(1, hi)
    frac = ((goal - y0) / (y1 - y0).clamp_min(1e-300)).clamp(0, 1)
    t_hit = (t[lo.squeeze(1)] + frac.squeeze(1) * (t[hi.squeeze(1)] - t[lo.squeeze(1)]))
    period = torch.where(turns >= 1, t_hit / turns.clamp_min(1), torch.nan)
    return period, turns


def _refined_extremum(t: Tensor, r: Tensor, largest: bool) -> Tensor:
    """The extreme value of r (B, T) with a parabola through the sample nearest to it and its
    neighbours (the extremum of a smooth r(t) falls between samples)."""
    k = (r.argmax(1) if largest else r.argmin(1)).clamp(1, r.shape[1] - 2).unsqueeze(1)
    r0, r1, r2 = r.gather(1, k - 1), r.gather(1, k), r.gather(1, k + 1)
    curv = r0 - 2 * r1 + r2
    shift = torch.where(curv.abs() > 1e-300, 0.5 * (r0 - r2) / curv, torch.zeros_like(curv))
    shift = shift.clamp(-1, 1)
    peak = r1 - 0.25 * (r0 - r2) * shift
    raw = r.amax(1) if largest else r.amin(1)
    return torch.maximum(peak.squeeze(1), raw) if largest else torch.minimum(peak.squeeze(1), raw)


def orbit_measures(t: Tensor, q: Tensor, p: Tensor, shape: tuple[int, ...],
                   hamiltonian: Callable[[Tensor, Tensor], Tensor] | None = None
                   ) -> OrbitMeasures:  # fmt: skip
    """The measures of B trajectories (module docstring for the phase angle used)."""
    B, T, n = q.shape
    energy = None
    if hamiltonian is not None:
        with torch.no_grad():
            energy = hamiltonian(q[:, 0], p[:, 0]).reshape(B).to(torch.float64)
    two_body = len(shape) == 2 and shape[0] == 2 and shape[1] >= 2
    planar = two_body or (len(shape) >= 1 and n >= 2 and (len(shape) == 1 or shape[0] == 1))
    if planar:
        x = q.reshape(B, T, *shape)
        rel = (x[:, :, 0] - x[:, :, 1]) if two_body else x.reshape(B, T, -1)
        r = rel.norm(dim=-1)
        phase = unwrapped(torch.atan2(rel[..., 1], rel[..., 0]))
        a = 0.5 * (_refined_extremum(t, r, False) + _refined_extremum(t, r, True))
        period, turns = winding_period(t, phase)
        return OrbitMeasures(period, turns, r.amax(1), a, energy)
    q0, p0 = q[..., 0], p[..., 0]
    qc = 0.5 * (q0.amax(1, keepdim=True) + q0.amin(1, keepdim=True))
    pc = 0.5 * (p0.amax(1, keepdim=True) + p0.amin(1, keepdim=True))
    # scale p to q's spread: the angle turns more evenly (fewer samples per turn needed)
    scale = (q0.amax(1, keepdim=True) - q0.amin(1, keepdim=True)) / (
        p0.amax(1, keepdim=True) - p0.amin(1, keepdim=True)).clamp_min(1e-300)  # fmt: skip
    phase = unwrapped(torch.atan2((p0 - pc) * scale, q0 - qc))
    period, turns = winding_period(t, phase)
    return OrbitMeasures(period, turns, q.abs().amax(dim=(1, 2)), None, energy)


__all__ = ["OrbitMeasures", "orbit_measures", "unwrapped", "winding_period"]
