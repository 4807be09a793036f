"""Reference dynamics for the conserved-quantity tests: accurate trajectories and known invariants.

Trajectories from scipy's DOP853 at rtol 1e-10 (energy drifts ~1e-9). Each system gives states
(B, T, d) with q then p (or angular velocities for the double pendulum, whose energy is then a
finite sum of library terms) and its conserved quantities as sympy expressions in its names.
"""

from __future__ import annotations

import numpy as np
import sympy
from scipy.integrate import solve_ivp

from physml_lang.runtime.discovery.features import FeatureLibrary


def integrate(rhs, starts: np.ndarray, t_end: float, samples: int) -> np.ndarray:
    """States (B, samples, d) at equally spaced times in [0, t_end] from starts (B, d)."""
    times = np.linspace(0.0, t_end, samples)
    paths = [solve_ivp(rhs, (0.0, t_end), x0, t_eval=times, method="DOP853", rtol=1e-10,
                       atol=1e-12).y.T for x0 in starts]  # fmt: skip
    return np.array(paths)


def oscillator(seed: int = 0, trajectories: int = 6, samples: int = 200,
               omega: float = 1.3) -> np.ndarray:  # fmt: skip
    """1D harmonic oscillator H = p^2/2 + omega^2 q^2/2, about 5 periods per trajectory."""
    starts = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(trajectories, 2))
    return integrate(lambda _, x: [x[1], -omega**2 * x[0]], starts, 25.0, samples)


def _kepler_rhs(_, s):
    x, y, px, py = s
    r3 = (x * x + y * y) ** 1.5
    return [px, py, -x / r3, -y / r3]


def kepler(seed: int = 0, trajectories: int = 8, samples: int = 300) -> np.ndarray:
    """Planar Kepler H = |p|^2/2 - 1/r: bound orbits of random size, eccentricity, orientation."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.7, 1.3, trajectories)
    phi = rng.uniform(0.0, 2 * np.pi, trajectories)
    speed = rng.uniform(0.55, 0.9, trajectories) * np.sqrt(2 / r)  # bound: below escape speed
    heading = phi + np.pi / 2 + rng.uniform(-0.6, 0.6, trajectories)
    starts = np.stack([r * np.cos(phi), r * np.sin(phi), speed * np.cos(heading),
                       speed * np.sin(heading)], axis=1)  # fmt: skip
    return integrate(_kepler_rhs, starts, 12.0, samples)


def _two_body_rhs(_, s):
    """Two unit masses, G = 1, state (q1x, q1y, q2x, q2y, p1x, p1y, p2x, p2y): stdlib Kepler's."""
    d = s[0:2] - s[2:4]
    force = -d / (d @ d) ** 1.5
    return np.concatenate([s[4:8], force, -force])


def two_body(seed: int = 0, trajectories: int = 10, samples: int = 300) -> np.ndarray:
    """Bound two-body orbits with a drifting centre of mass (random Q, V)."""
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(trajectories):
        r, phi = rng.uniform(1.0, 2.0), rng.uniform(0.0, 2 * np.pi)
        d = r * np.array([np.cos(phi), np.sin(phi)])
        speed = rng.uniform(0.6, 0.9) * np.sqrt(4 / r)  # relative escape speed sqrt(2 G M / r)
        heading = phi + np.pi / 2 + rng.uniform(-0.5, 0.5)
        v = speed * np.array([np.cos(heading), np.sin(heading)])
        centre, drift = rng.normal(0.0, 1.0, 2), rng.normal(0.0, 0.2, 2)
        starts.append(np.concatenate([centre + d / 2, centre - d / 2, drift + v / 2,
                                      drift - v / 2]))  # fmt: skip
    return integrate(_two_body_rhs, np.array(starts), 20.0, samples)


def two_body_invariants() -> dict[str, sympy.Expr]:
    """P, E, total L and the relative Runge-Lenz vector A = p x L_rel - mu k r/|r| (mu = 1/2)."""
    q1x, q1y, q2x, q2y, p1x, p1y, p2x, p2y = symbols("q1x q1y q2x q2y p1x p1y p2x p2y")
    x, y = q1x - q2x, q1y - q2y
    px, py = (p1x - p2x) / 2, (p1y - p2y) / 2
    r = sympy.sqrt(x**2 + y**2)
    rel = x * py - y * px
    return {"P_x": p1x + p2x, "P_y": p1y + p2y,
            "E": (p1x**2 + p1y**2 + p2x**2 + p2y**2) / 2 - 1 / r,
            "L": q1x * p1y - q1y * p1x + q2x * p2y - q2y * p2x,
            "A_x": sympy.expand(py * rel) - x / (2 * r),
            "A_y": sympy.expand(-px * rel) - y / (2 * r)}  # fmt: skip


def _pendulum_rhs(_, s):
    """Double pendulum, unit masses, lengths and g; state (theta1, theta2, omega1, omega2)."""
    t1, t2, w1, w2 = s
    delta = t1 - t2
    c, sn = np.cos(delta), np.sin(delta)
    den = 2 - c * c
    a1 = (-sn * (w2 * w2 + w1 * w1 * c) - 2 * np.sin(t1) + np.sin(t2) * c) / den
    a2 = (sn * (2 * w1 * w1 + w2 * w2 * c) + 2 * np.sin(t1) * c - 2 * np.sin(t2)) / den
    return [w1, w2, a1, a2]


def double_pendulum(seed: int = 0, trajectories: int = 8, samples: int = 200,
                    t_end: float = 40.0) -> np.ndarray:  # fmt: skip
    """Chaotic regime: both arms released from 90-180 degrees, small initial velocities."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(np.pi / 2, np.pi, (trajectories, 2))  # drawn before the signs
    angles = angles * rng.choice([-1, 1], (trajectories, 2))
    starts = np.concatenate([angles, rng.uniform(-0.5, 0.5, (trajectories, 2))], axis=1)
    return integrate(_pendulum_rhs, starts, t_end, samples)


def symbols(names: str) -> list[sympy.Symbol]:
    return list(sympy.symbols(names, real=True))


def oscillator_energy(omega: float = 1.3) -> sympy.Expr:
    q, p = symbols("q p")
    return p**2 / 2 + sympy.nsimplify(omega) ** 2 * q**2 / 2


def kepler_invariants(names: str = "x y px py") -> dict[str, sympy.Expr]:
    """E, L and the Runge-Lenz vector A = p x L - q/r (GM = m = 1), in variables ``names``."""
    x, y, px, py = symbols(names)
    r = sympy.sqrt(x**2 + y**2)
    ang = x * py - y * px
    return {"E": (px**2 + py**2) / 2 - 1 / r, "L": ang,
            "A_x": sympy.expand(py * ang) - x / r, "A_y": sympy.expand(-px * ang) - y / r}


def pendulum_energy(names: str = "t1 t2 w1 w2") -> sympy.Expr:
    """The double pendulum's energy (unit masses, lengths, g) in angles and angular velocities."""
    t1, t2, w1, w2 = symbols(names)
    return w1**2 + w2**2 / 2 + w1 * w2 * sympy.cos(t1 - t2) - 2 * sympy.cos(t1) - sympy.cos(t2)


def in_library(expression: sympy.Expr, library: FeatureLibrary) -> np.ndarray:
    """Raw coefficients (n_features,) of a known expression, term by term (no fitting)."""
    where = {e: j for j, e in enumerate(library.expressions)}
    coefficients = np.zeros(len(library.expressions))
    for term in sympy.Add.make_args(sympy.expand(expression, deep=False)):
        number, rest = term.as_coeff_Mul()
        coefficients[where[rest]] += float(number)
    return coefficients
