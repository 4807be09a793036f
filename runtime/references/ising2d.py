"""Exact curves of the 2D Ising model E = -J sum_<ij> s_i s_j on an L1 x L2 torus.

Finite size: the energy and specific heat per site of Ferdinand and Fisher (Phys. Rev. 185, 832
(1969)), here the beta-derivatives of Kaufman's exact log Z (runtime/generative/kaufman.py).
Infinite lattice: the spontaneous magnetisation of Onsager and Yang (Phys. Rev. 85, 808 (1952)),
|m| = (1 - sinh(2 beta J)^-4)^(1/8) below T_c = 2 J / ln(1 + sqrt 2), zero above.

Whether a compiled model is this one is decided numerically, not from its text: a square,
periodic, one-site-cell lattice carrying one +-1 field, whose compiled energy on random
configurations equals -J times the sum over nearest-neighbour bonds for one fitted J.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..generative.kaufman import ising2d_torus_log_z

K_C = math.log(1 + math.sqrt(2)) / 2  # critical beta J (Onsager)
_CONFIGS = 16  # random configurations of the fingerprint
_TOLERANCE = 1e-5  # relative: the compiled energy may be float32


@dataclass(frozen=True)
class IsingTorus:
    """The nearest-neighbour Ising model on an L1 x L2 torus with coupling J."""

    L1: int
    L2: int
    J: float

    @property
    def sites(self) -> int:
        return self.L1 * self.L2

    @property
    def critical_temperature(self) -> float:
        """Onsager's T_c = 2 |J| / ln(1 + sqrt 2) of the infinite lattice (k_B = 1)."""
        return abs(self.J) / K_C

    def log_z(self, beta: float) -> float:
        return ising2d_torus_log_z(self.L1, self.L2, beta, self.J)

    def energy_and_heat(self, beta: float) -> tuple[float, float]:
        """Exact E/N = -d log Z / d beta / N and C/N = beta^2 d^2 log Z / d beta^2 / N."""
        return _energy_and_heat(self.L1, self.L2, self.J, beta)

    def magnetisation(self, beta: float) -> float:
        """Onsager-Yang spontaneous |m| of the infinite ferromagnet (J > 0)."""
        k = beta * self.J
        return (1 - math.sinh(2 * k) ** -4) ** 0.125 if k > K_C else 0.0


@functools.lru_cache(maxsize=4096)
def _energy_and_heat(L1: int, L2: int, J: float, beta: float) -> tuple[float, float]:
    """A five-point stencil of Kaufman's log Z in beta (E/N within 1e-10 of enumeration at
    4 x 4; kept, as the energy and the specific heat panels of a plot share it)."""
    h = 1e-3 * beta
    f = [ising2d_torus_log_z(L1, L2, beta + k * h, J) for k in (-2, -1, 0, 1, 2)]
    d1 = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h)
    d2 = (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * h * h)
    return -d1 / (L1 * L2), beta * beta * d2 / (L1 * L2)


def ising_torus(cm) -> IsingTorus | None:
    """The Ising torus a compiled model is, or None: structure from the lattice and field,
    the coupling from a least-squares fit of the compiled energy to the bond sum."""
    lat = getattr(cm, "lattice", None)
    model = getattr(cm, "model", None)
    if lat is None or model is None or getattr(lat, "kind", None) != "square" \
            or getattr(lat, "dim", 0) != 2 or getattr(lat, "basis", 0) != 1 \
            or not getattr(lat, "all_periodic", False) or len(model.fields) != 1:  # fmt: skip
        return None
    (name, f), = model.fields.items()
    if f.on != "sites" or not f.domain.discrete or f.domain.values() != [-1.0, 1.0]:
        return None
    L1, L2 = (int(n) for n in lat.cells)
    J = _fitted_coupling(cm, name, (L1, L2))
    if J is None or (J < 0 and (L1 % 2 or L2 % 2)):  # an odd antiferromagnetic torus is frustrated
        return None
    return IsingTorus(L1, L2, J)


def _fitted_coupling(cm, field: str, shape: tuple[int, int]) -> float | None:
    """J with E(s) = -J sum_<ij> s_i s_j on random configurations (and the ordered one), or
    None where no J fits (a field, further couplings, another lattice's bonds)."""
    gen = torch.Generator().manual_seed(0)
    s = torch.randint(0, 2, (_CONFIGS, *shape), generator=gen, dtype=torch.float64,
                      device="cpu") * 2 - 1  # fmt: skip
    s[0] = 1.0
    bonds = (s * s.roll(1, 1) + s * s.roll(1, 2)).sum((1, 2)).numpy()
    device = cm.kernels.device if hasattr(cm, "kernels") else "cpu"
    with torch.no_grad():
        energy = cm.energy({field: s.to(cm.dtype).to(device).reshape(_CONFIGS, *cm.lattice.shape)})
    energy = energy.detach().double().cpu().numpy()
    J = -float(np.dot(energy, bonds) / np.dot(bonds, bonds))
    scale = max(1.0, float(np.abs(energy).max()))
    if J == 0 or not math.isfinite(J) or np.abs(energy + J * bonds).max() > _TOLERANCE * scale:
        return None
    # a float32 energy fits J to ~1e-7: the model parameter it matches is J to all its digits
    exact = [float(v) for v in cm.model.params.values()
             if isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
    return next((v for v in exact if abs(v - J) <= _TOLERANCE * abs(J)), J)


__all__ = ["K_C", "IsingTorus", "ising_torus"]
