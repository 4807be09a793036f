"""The validation of examples/learned_schrodinger.phys as written (about a minute): on held-out
packets over t = 40 (800 recurrent steps) the unitary rnn keeps the norm to round-off and the
overlap with the exact propagator's state high; the plain rnn's norm runs away."""

from __future__ import annotations

from pathlib import Path

import pytest

from physml_lang.api import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "learned_schrodinger.phys"


@pytest.mark.slow
def test_learned_schrodinger_example():
    res = load(EXAMPLE).run(seed=0)
    rows = {r["learner"]: r for r in res.rows}
    u, p = rows["U"], rows["plain"]
    assert u["steps"] == 800
    assert u["norm_drift"] < 1e-11
    assert u["fidelity"]["mean"] > 0.75 and u["diverged"] == 0
    assert p["norm_drift"] is None or p["norm_drift"] > 1e-2
    assert p["fidelity"]["mean"] < u["fidelity"]["mean"] - 0.3
