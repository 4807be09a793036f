"""The columns a task writes, declared statically in the catalogue, cannot drift from the runtime.

Each task entry declares its :class:`~physml_lang.catalogue.columns.Columns`; ``physml check``
refuses a ``plot`` that names anything else (P208). Here the declaration is held to what runs
write: every plot of every example names declared columns; the pinned rows of every example run
(``tests/golden/pins``, kept current by test_example_pins) have exactly the declared columns
(less the optional ones where a model has none, plus the ``--set`` names a learner run records);
and a few quick runs write exactly the declared columns to results.csv and summary.json.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import physml_lang
from physml_lang.api import _task_for
from physml_lang.catalogue import CATALOGUE
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.tasks import run_columns

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.phys"))
PINS = sorted((ROOT / "tests" / "golden" / "pins").glob("*.json"))
SUFFIXES = ("_mean", "_stderr", "_tau_int")


def _columns(program, run):
    entry = _task_for(run, program)
    return entry, run_columns(run, entry)


def test_every_task_but_refused_ones_declares_its_columns():
    for entry in CATALOGUE.tasks:
        refused = entry.title == "sample [quantum]"  # classical sampling of qubits: an error
        assert (entry.facts.columns is None) == refused, entry.title


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_plots_name_declared_columns(path: Path):
    program = physml_lang.load(path)
    for run in program.runs.values():
        _, columns = _columns(program, run)
        for p in run.plots:
            for name in [*p.observables, *([p.x] if p.x else [])]:
                assert name in columns, f"{path.stem}/{run.name}: plot names {name!r}"


@pytest.mark.parametrize("pin", PINS, ids=[p.stem for p in PINS])
def test_pinned_rows_have_the_declared_columns(pin: Path):
    example, name = pin.stem.split(".")
    program = physml_lang.load(ROOT / "examples" / f"{example}.phys")
    run = program.runs[name] if name != "default" else next(iter(program.runs.values()))
    entry, columns = _columns(program, run)
    stored = json.loads(pin.read_text())
    written = list(dict.fromkeys(k for row in stored["rows"] for k in row))
    # learner runs record the model parameters given by --set with their points
    extra = [k for k in written if k not in columns and k not in stored["sets"]]
    assert not extra, f"written but not declared: {extra}"
    absent = entry.facts.columns.may_be_absent(s.name for s in run.scans)
    missing = [k for k in columns if k not in written and k not in absent]
    assert not missing, f"declared but not written: {missing}"


def _keys_of_csv(path: Path) -> list[str]:
    """The row keys of a results.csv: an observable's three columns NAME_mean, NAME_stderr,
    NAME_tau_int are one key NAME."""
    with path.open() as f:
        header = next(csv.reader(f))
    keys = []
    for h in header:
        base = next((h[: -len(s)] for s in SUFFIXES if h.endswith(s)), None)
        if base is not None and all(base + s in header for s in SUFFIXES):
            h = base
        if h not in keys:
            keys.append(h)
    return keys


QUICK = [
    ("tfim", "spectrum", {}),
    ("pendulum_leapfrog_vs_rk4", None, {"steps": 1000}),
    ("u1_2d_hmc", "hmc_l8", {"sweeps": 30, "burn_in": 5}),
    ("phi4_hmc", None, {"L": 4, "sweeps": 20, "burn_in": 5}),
]


@pytest.mark.parametrize("example, name, sets", QUICK, ids=[q[0] for q in QUICK])
def test_runs_write_the_declared_columns(example: str, name: str | None, sets: dict, tmp_path):
    program = physml_lang.load(ROOT / "examples" / f"{example}.phys")
    run = program.runs[name] if name else next(iter(program.runs.values()))
    entry, columns = _columns(program, run)
    program.run(run.name, sets=sets, seed=0, out=tmp_path)
    in_csv = _keys_of_csv(tmp_path / "results.csv")
    in_json = list(dict.fromkeys(k for r in json.loads((tmp_path / "summary.json").read_text())
                                 ["rows"] for k in r))  # fmt: skip
    assert in_csv == in_json
    assert set(in_csv) <= set(columns), f"written but not declared: {set(in_csv) - set(columns)}"
    required = set(columns) - entry.facts.columns.may_be_absent(s.name for s in run.scans)
    assert required <= set(in_csv), f"declared but not written: {required - set(in_csv)}"


BAD = {
    "exact": ("""
model TFIM(L: int = 6) {
    lattice chain(L, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = -sum(Z[i] * Z[j] for (i, j) in bonds) - sum(X[i] for i in sites)
}
run r {
    exact levels = 2
    measure energy, structure_factor
    plot gap, structure_factr
}""", "structure_factr", "structure_factor_q0"),
    "evolve": ("""
import Pendulum
run r {
    model Pendulum()
    initial q = 1.0, p = 0.0
    evolve integrator = leapfrog, dt = 0.1, steps = 100
    plot max_rel_energy_eror
}""", "max_rel_energy_eror", "max_rel_energy_error"),
    "sample [gauge]": ("""
import U1
run r {
    model U1(L = 4, beta = 1.0)
    sampler metropolis(chains = 2, sweeps = 10)
    scan beta in [1.0, 2.0]
    measure plaquette
    plot plaquette, x = betta
}""", "betta", "beta"),
    "sample [field]": ("""
import Phi4
run r {
    model Phi4(L = 4)
    sampler hmc(chains = 2, sweeps = 10)
    scan kappa in [0.2, 0.3]
    plot abs_magnetisation
}""", "abs_magnetisation", "abs_magnetization"),
}


@pytest.mark.parametrize("task", BAD, ids=list(BAD))
def test_a_plot_of_an_unwritten_column_is_a_located_error(task: str):
    source, name, suggestion = BAD[task]
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(source).check()
    d = next(d for d in info.value.diagnostics if d.code == "P208")
    assert f"plot names '{name}'" in d.message
    assert d.span is not None and d.span.source.line(d.span.line)[d.span.column - 1:].startswith(name)
    assert f"'{suggestion}'" in d.hint
