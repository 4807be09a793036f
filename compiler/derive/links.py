"""Link variables in their linear form, with numpy: what the torch-free checks of a gauge model
evaluate its action on (random configurations, gauge transformations, plaquettes).

Linear form (as the lowering's evaluator reads links): z2 -> the float +-1, u1 -> the phase
exp(i theta), su2 -> the 2x2 special unitary matrix, a0 I + i a.sigma with |a| = 1. Links are
lin (B, L_1..L_d, d, *lin_shape) with lin[b, x, mu] the link x -> x + e_mu; site fields are
(B, L_1..L_d, *lin_shape); f(x + k e_mu) at x is ``np.roll(f, -k, axis=1 + mu)``.
"""

from __future__ import annotations

import numpy as np

from physml_lang.compiler.geometry import roll_arguments
from physml_lang.compiler.lower.gauge import planes

N_COLOURS = {"z2": 1, "u1": 1, "su2": 2}  # N of Re tr P / N


def random_elements(group: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Haar-random group elements in linear form: (*shape, *lin_shape)."""
    if group == "z2":
        return np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if group == "u1":
        return np.exp(1j * rng.uniform(-np.pi, np.pi, shape))
    a = rng.normal(size=(*shape, 4))  # a uniform point of S^3: Haar measure of SU(2)
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    a0, a1, a2, a3 = np.moveaxis(a, -1, 0)
    return np.stack([np.stack([a0 + 1j * a3, a2 + 1j * a1], -1),
                     np.stack([-a2 + 1j * a1, a0 - 1j * a3], -1)], -2)  # fmt: skip


def lin_mul(group: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The group product in linear form (the matrix product for su2)."""
    return a @ b if group == "su2" else a * b


def lin_dag(group: str, a: np.ndarray) -> np.ndarray:
    """The inverse (conjugate transpose) in linear form."""
    return np.conj(a).swapaxes(-1, -2) if group == "su2" else np.conj(a)


def lin_retr(group: str, a: np.ndarray) -> np.ndarray:
    """Re tr(a) / N, without the group axes."""
    if group == "su2":
        return (a[..., 0, 0] + a[..., 1, 1]).real / 2
    return np.real(a)


def shift(f: np.ndarray, mu: int, k: int = 1) -> np.ndarray:
    """f(x + k e_mu) at x for a site-indexed array (B, L_1..L_d, ...)."""
    shifts, dims = roll_arguments((0,) * mu + (k,))
    return np.roll(f, shifts, axis=dims) if dims else f


def gauge_transform(group: str, lin: np.ndarray, omega: np.ndarray, d: int) -> np.ndarray:
    """U_mu(x) -> Omega_x U_mu(x) Omega_{x+mu}^dag for links lin (B, L_1..L_d, d, *lin_shape)
    and Omega (B, L_1..L_d, *lin_shape)."""
    out = [lin_mul(group, lin_mul(group, omega, np.take(lin, mu, axis=1 + d)),
                   lin_dag(group, shift(omega, mu))) for mu in range(d)]  # fmt: skip
    return np.stack(out, axis=1 + d)


def plaquettes(group: str, lin: np.ndarray, d: int) -> np.ndarray:
    """P_{mu nu}(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dag U_nu(x)^dag for every plane, in linear
    form: (B, L..., n_planes, *lin_shape), planes as ``planes(d)``."""
    u = [np.take(lin, mu, axis=1 + d) for mu in range(d)]
    m = lin_mul
    ps = [m(group, m(group, u[mu], shift(u[nu], mu)),
            m(group, lin_dag(group, shift(u[mu], nu)), lin_dag(group, u[nu])))
          for mu, nu in planes(d)]  # fmt: skip
    return np.stack(ps, axis=1 + d)


def plaquette_sum(group: str, lin: np.ndarray, d: int) -> np.ndarray:
    """sum_x sum_{mu<nu} Re tr P_{mu nu}(x) / N per configuration: (B,). The Wilson action is
    -beta times this."""
    return lin_retr(group, plaquettes(group, lin, d)).reshape(lin.shape[0], -1).sum(1)


__all__ = ["N_COLOURS", "gauge_transform", "lin_dag", "lin_mul", "lin_retr", "plaquette_sum",
           "plaquettes", "random_elements", "shift"]  # fmt: skip
