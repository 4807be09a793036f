"""Units of parameters and table columns: read from the IR (never from text), dimensions in SI
bases, scales to SI, located errors; table models and model-free runs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import physml_lang
from physml_lang.check.units import BASES, UNITS, unit_of
from physml_lang.diagnostics import PhysmlError

PENDULUM = """
model Pendulum(l: real [m] = 1.0, g: real [m / s^2] = 9.81, G: real [m^3 / (kg * s^2)] = 1.0,
               w: real [1 / s] = 2.0, r: real [m^(1/2)] = 1.0, n: int = 3) {
    data swings: table(l = cm, T = s, n) = load("swings.csv")
}
"""


def _dims(**p) -> tuple[Fraction, ...]:
    return tuple(Fraction(p.get(b, 0)) for b in BASES)


@pytest.fixture
def pendulum(tmp_path):
    (tmp_path / "swings.csv").write_text("l,T,n\n10,0.63,1\n40,1.27,2\n90,1.90,3\n")
    path = tmp_path / "pendulum.phys"
    path.write_text(PENDULUM)
    return physml_lang.load(path)


def test_parameter_units_in_si_bases(pendulum):
    ir = pendulum.instantiate("Pendulum")
    units = {p.name: (unit_of(p.unit) if p.unit is not None else None) for p in ir.params}
    assert units["l"].dims == _dims(m=1)
    assert units["g"].dims == _dims(m=1, s=-2)
    assert units["G"].dims == _dims(m=3, kg=-1, s=-2)
    assert units["w"].dims == _dims(s=-1)
    assert units["r"].dims == _dims(m=Fraction(1, 2))
    assert units["n"] is None
    assert units["g"].dimension() == "m s^-2"


def test_table_columns_and_scales(pendulum):
    cm = pendulum.model("Pendulum")
    decl, data = cm.tables["swings"]
    assert [c.name for c in decl.columns] == ["l", "T", "n"]
    assert unit_of(decl.columns[0].unit).scale == pytest.approx(1e-2)
    assert decl.columns[2].unit is None
    assert data.values.shape == (3, 3)
    np.testing.assert_allclose(data.values[:, 0], [10, 40, 90])
    assert "swings: 3 rows of l, T, n" in cm.describe()


def test_scales_of_derived_units():
    assert UNITS["AU"].scale == pytest.approx(1.495978707e11)
    assert UNITS["eV"].dims == UNITS["J"].dims
    assert (UNITS["km"] / UNITS["h"]).scale == pytest.approx(1000 / 3600)


def test_wrong_column_count_is_located(tmp_path):
    (tmp_path / "swings.csv").write_text("l,T\n10,0.63\n40,1.27\n")
    path = tmp_path / "p.phys"
    path.write_text(PENDULUM)
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(path).model("Pendulum")
    d = err.value.diagnostics[0]
    assert d.code == "P601" and "3 column(s) were declared (l, T, n)" in d.message
    assert d.span is not None and d.span.line == 4


def test_column_named_twice(tmp_path):
    path = tmp_path / "p.phys"
    path.write_text('model M { data t: table(a = m, a = s) = load("x.csv") }')
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(path).instantiate("M")
    assert err.value.diagnostics[0].code == "P212"


def test_a_model_of_parameters_and_data_is_a_table_model(pendulum):
    assert pendulum.instantiate("Pendulum").kind == "table"


def test_a_run_that_generates_its_data_needs_no_model(tmp_path):
    """Runs of tasks that make their own data (band Hamiltonians, images) name no model, also
    in a file that declares or imports models; a run of a task that needs one still must."""
    path = tmp_path / "mixed.phys"
    path.write_text(
        "import Ising\nlearner net = classifier(channels = [4]) respecting translation\n"
        "run w {\n    invariant winding(samples = 20, tests = 10, epochs = 1), learners = [net]\n}\n"
        "run s {\n    sampler metropolis(chains = 2, sweeps = 10)\n    let T = 2.0\n}\n")
    program = physml_lang.load(path)
    assert program.checker_for(program.runs["w"]).kind == "table"
    assert program.checker_for(program.runs["s"]).name == "Ising"
