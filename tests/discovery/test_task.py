"""The discover task end to end through the language: a law from a table with units, from
simulated orbits and from a scan; SINDy rows; located errors (P428 naming the column, P203
for a name that is no column, P108 for a malformed statement) in ``check`` and ``run``."""

from __future__ import annotations

import json

import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError

MODELS = """
model Table(G: real [m^3 / (kg * s^2)] = 6.674e-11, M: real [kg] = 2e30) {
    data rows: table(a = AU, P = yr) = load("law.csv")
}
model Osc(k: real = 1, m: real = 1) {
    phase_space (q, p)
    hamiltonian H = p^2 / (2 * m) + k * q^2 / 2
}
"""


def _program(tmp_path, runs: str, csv: str = "a,P\\n1,1\\n2,2.8284\\n4,8\\n9,27\\n"):
    (tmp_path / "law.csv").write_text(csv.replace("\\n", "\n"))
    path = tmp_path / "law.phys"
    path.write_text(MODELS + runs)
    return physml_lang.load(path)


def _error(fn):
    """The first diagnostic fn raises."""
    with pytest.raises(PhysmlError) as err:
        fn()
    return err.value.diagnostics[0]


def test_a_table_law_with_units(tmp_path):
    prog = _program(tmp_path, "run fit { model Table   discover P via power_law(a), data = rows }")
    prog.check()
    out = tmp_path / "out"
    out.mkdir()
    res = prog.run("fit", out=out)
    (row,) = res.rows
    assert row["predictor"] == "a" and row["rational"] == "3/2"
    assert row["exponent"]["mean"] == pytest.approx(1.5, abs=1e-4)
    assert row["dimensions_consistent"] and row["constant_exponents"] == "G^(-1/2) M^(-1/2)"
    assert row["law"] == "P = 1 * a^(3/2)" and row["expression"] == "0.999998*a**(3/2)"
    saved = json.loads((out / "summary.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(res.rows)) and saved["complete"]
    assert (out / "law.png").exists()


def test_oscillator_period_law_and_equations(tmp_path):
    """The period of q'' = -(k/m) q is 2 pi sqrt(m / k): exponents 1/2 and -1/2 from a scan;
    SINDy finds dq/dt = p / m, dp/dt = -k q."""
    prog = _program(tmp_path, """
run periods { model Osc
    scan k in [0.5, 1, 2]
    scan m in [1, 3]
    trajectories count = 2, points = 400, t_span = 20.0, substeps = 4, radius = [0.5, 1.0]
    discover period via monomial(k, m) }
run motion { model Osc(k = 2, m = 0.5)
    trajectories count = 3, points = 50, t_span = 5.0, radius = [0.5, 1.0]
    discover equations(degree = 2) }
""")
    prog.check()
    rows = prog.run("periods").rows
    assert {r["predictor"]: r["rational"] for r in rows} == {"k": "-1/2", "m": "1/2"}
    row = rows[0]
    assert row["prefactor"] == pytest.approx(2 * 3.141592653589793, rel=1e-5)
    assert row["n_points"] == 12
    rows = prog.run("motion").rows
    assert [r["terms"] for r in rows] == [["p"], ["q"]]
    assert [r["coefficients"] for r in rows] == [pytest.approx([2.0]), pytest.approx([-2.0])]


@pytest.mark.parametrize("csv, column, words", [
    ("a,P\\n1,1\\n0,0.5\\n4,8\\n9,27\\n", "a", "column 'a' holds 0"),
    ("a,P\\n2,1\\n2,2\\n2,8\\n2,27\\n", "a", "column 'a' is constant"),
    ("a,P\\n1,1\\n2,2.83\\n", "P", "2 points cannot fit 2 parameters"),
])  # fmt: skip
def test_data_that_cannot_support_the_law_is_located(tmp_path, csv, column, words):
    src = "run fit { model Table   discover P via power_law(a), data = rows }"
    prog = _program(tmp_path, src, csv)
    d = _error(lambda: prog.run("fit"))
    assert d.code == "P428" and words in d.message
    line = (MODELS + src).splitlines()[d.span.line - 1]
    assert column in line[d.span.column - 1:]


@pytest.mark.parametrize("run, code, words", [
    ("discover P via power_law(b), data = rows", "P203", "'b' is not a column"),
    ("discover P via power_law(a), data = planets", "P203", "no table 'planets'"),
    ("discover P via power_law(a, confidence = 2), data = rows", "P402", "confidence"),
    ("discover equations(degree = 2), data = rows", "P108", "reads trajectories"),
    ("discover P via power_law(a)", "P108", "has neither"),
    ("discover power_law(a), data = rows", "P108", "explains a column"),
])  # fmt: skip
def test_malformed_discover_statements_are_located(tmp_path, run, code, words):
    prog = _program(tmp_path, f"run fit {{ model Table   {run} }}")
    d = _error(prog.check)
    assert d.code == code and words in d.message, d


def test_a_law_of_trajectories_names_its_predictors(tmp_path):
    prog = _program(tmp_path, """run p { model Osc   trajectories count = 4
    discover period via power_law(amplitud) }""")
    d = _error(prog.check)
    assert d.code == "P203" and "amplitude" in (d.hint or "")


def test_orbits_that_do_not_turn_have_no_period(tmp_path):
    prog = _program(tmp_path, """run p { model Osc
    scan k in [0.5, 1, 2]
    trajectories count = 2, points = 30, t_span = 1.0
    discover period via power_law(k) }""")
    d = _error(lambda: prog.run("p"))
    assert d.code == "P428" and "t_span" in d.hint


def test_set_reaches_method_and_trajectory_options(tmp_path):
    prog = _program(tmp_path, """run motion { model Osc
    trajectories count = 2, points = 40, t_span = 5.0
    discover equations(degree = 2) }""")
    res = prog.run("motion", sets={"degree": 1, "count": 3})
    assert res.summary["method"]["degree"] == 1 and res.summary["trajectories"]["count"] == 3


def test_conserved_quantities_of_the_oscillator(tmp_path):
    """One conserved quantity, the energy p^2 / 2 + q^2 / 2 (up to scale): one row for it and
    a row with the counts."""
    prog = _program(tmp_path, """run inv { model Osc
    trajectories count = 6, points = 60, t_span = 6.0, radius = [0.5, 1.5]
    discover conserved(degree = 2) }""")
    prog.check()
    rows = prog.run("inv").rows
    counts = rows[-1]
    assert counts["count"] == 1 and "count_from_data" in counts  # H2 tests the data-only count
    (energy,) = rows[:-1]
    assert "q**2" in energy["expression"] and "p**2" in energy["expression"]
