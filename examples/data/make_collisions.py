"""Writes collisions.csv: 1D inelastic collisions of two bodies, before and after (numpy only).

Each event: masses m1, m2 (kg) uniform in [0.5, 5]; body 1 approaches body 2 (v1 > v2, m/s,
each uniform in [-3, 3]); a coefficient of restitution e uniform in [0.2, 0.9] (e < 1:
inelastic). After the impact (momentum conserved, the relative velocity reversed and scaled by e)
    v1_after = (m1 v1 + m2 v2 - m2 e (v1 - v2)) / (m1 + m2)
    v2_after = (m1 v1 + m2 v2 + m1 e (v1 - v2)) / (m1 + m2)
and the kinetic energy drops by (1 - e^2) m1 m2 (v1 - v2)^2 / (2 (m1 + m2)).

    python3 examples/data/make_collisions.py      # seed 20, 200 events
"""

from pathlib import Path

import numpy as np

EVENTS, SEED = 200, 20


def collisions(events: int, seed: int) -> np.ndarray:
    """(events, 8): m1, m2, v1, v2, m1_after, m2_after, v1_after, v2_after."""
    rng = np.random.default_rng(seed)
    m1, m2 = rng.uniform(0.5, 5.0, (2, events))
    v = np.sort(rng.uniform(-3.0, 3.0, (events, 2)), axis=1)  # v2 < v1: they approach
    v1, v2 = v[:, 1], v[:, 0]
    e = rng.uniform(0.2, 0.9, events)
    momentum = m1 * v1 + m2 * v2
    v1_after = (momentum - m2 * e * (v1 - v2)) / (m1 + m2)
    v2_after = (momentum + m1 * e * (v1 - v2)) / (m1 + m2)
    return np.stack([m1, m2, v1, v2, m1, m2, v1_after, v2_after], axis=1)


if __name__ == "__main__":
    header = ("# 1D inelastic two-body collisions (restitution 0.2 .. 0.9), written by "
              f"make_collisions.py (seed {SEED})\n"
              "# masses in kg, velocities in m/s: before each event and after it (_after)\n"
              "m1,m2,v1,v2,m1_after,m2_after,v1_after,v2_after")
    path = Path(__file__).with_name("collisions.csv")
    np.savetxt(path, collisions(EVENTS, SEED), delimiter=",", header=header, comments="",
               fmt="%.12g")  # fmt: skip
