"""Hopfield retrieval at T = 0 (N = 1000): retrieval below alpha_c ~ 0.138, failure above."""

from __future__ import annotations

import physml_lang

RUN = """
import Hopfield
run recall {
    model Hopfield(N = 1000, P = PP)
    recall xi via glauber(T = 0, update = UPDATE, sweeps = 12), flip = 0.1, patterns = 16
}
"""


def overlap(P: int, update: str = "sequential") -> dict:
    program = physml_lang.load(RUN.replace("PP", str(P)).replace("UPDATE", update))
    return program.run(seed=1).rows[0]


def test_retrieval_at_alpha_005():
    row = overlap(50)
    assert row["alpha"] == 0.05
    assert row["overlap_initial"]["mean"] < 0.85
    assert row["overlap"]["mean"] > 0.99
    # a stored pattern is (close to) a local minimum: its energy is what retrieval reaches
    assert abs(row["energy_final"]["mean"] - row["energy_stored"]["mean"]) < 0.01


def test_failure_at_alpha_02():
    row = overlap(200)
    assert row["overlap"]["mean"] < 0.9
    assert row["retrieved"]["mean"] < 0.5
    # the network falls into spurious states of lower energy than the stored patterns
    assert row["energy_final"]["mean"] < row["energy_stored"]["mean"]


def test_parallel_dynamics_retrieves():
    assert overlap(50, "parallel")["overlap"]["mean"] > 0.99
