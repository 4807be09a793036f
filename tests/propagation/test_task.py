"""``train U, plain via propagation(...)`` in the language: static checks (located errors) and a
short run on the shared driver (rows, plot, norm kept by the unitary cell only)."""

from __future__ import annotations

import json

import pytest

from physml_lang.api import load
from physml_lang.diagnostics import PhysmlError

PROGRAM = """
model Oscillator(w: real = 1.0) {
    coordinates x: real in [-8, 8]
    potential V = w^2 * x^2 / 2
}
model Plane {
    coordinates x: real[2] in [-8, 8]
    potential V = x[0]^2 + x[1]^2
}
learner U = rnn(unitary = true)
learner plain = rnn(hidden = 32)
learner H_net = hnn(hidden = [8])
run learn {
    model Oscillator
    train U, plain via propagation(steps = 60, lr = 1e-2, dt = 0.05, horizon = 2, packets = 16,
                                   unroll = 4, test = 4, points = 32)
}
"""


def _code(text: str) -> str:
    with pytest.raises(PhysmlError) as err:
        load(text).check()
    return err.value.diagnostics[0].code


def test_check_passes_and_reports_the_task():
    done = load(PROGRAM).check()
    assert any("learn_propagation" in line for line in done)


@pytest.mark.parametrize(("old", "new", "code"), [
    ("model Oscillator\n", "model Plane\n", "P431"),           # two coordinates
    ("train U,", "train V_net,", "P207"),                      # not declared
    ("train U,", "train H_net,", "P503"),                      # a learner of another kind
    ("points = 32)", "points = 32, width = [0.1, 1.0])", "P431"),   # packets below the grid
    ("points = 32)", "points = 32, momentum = 20)", "P431"),   # beyond the grid's wavenumbers
    ("horizon = 2", "horizon = 0.01", "P402"),                 # shorter than a step
    ("points = 32)", "points = 32, bogus = 1)", "P401"),       # unknown option
    ("rnn(unitary = true)", "rnn(unitary = true) respecting translation", "P501"),
])  # fmt: skip
def test_static_errors_are_located(old, new, code):
    assert old in PROGRAM
    assert _code(PROGRAM.replace(old, new)) == code


def test_short_run_rows_and_files(tmp_path):
    res = load(PROGRAM).run(seed=0, out=tmp_path)
    rows = {r["learner"]: r for r in res.rows}
    assert set(rows) == {"U", "plain"}
    u, p = rows["U"], rows["plain"]
    assert u["unitary"] and not p["unitary"]
    assert u["steps"] == 40 and u["horizon"] == pytest.approx(2.0)
    assert u["norm_drift"] < 1e-12 < p["norm_drift"]
    assert 0 <= u["fidelity"]["mean"] <= 1 + 1e-12 and u["diverged"] == 0
    assert u["train_loss"]["mean"] > 0
    for name in ("fidelity.png", "U.safetensors", "plain.safetensors", "results.csv"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == "learn_propagation"
    assert summary["exact"]["ground_energy"] == pytest.approx(0.5, abs=1e-6)
