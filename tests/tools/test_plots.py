"""Plots people can read: exact curves found from the compiled model (and only for the model
they hold for), exact to 1e-10 against enumeration, drawn with a legend; axis labels with
units; marks named."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.runtime import outputs
from physml_lang.runtime.references import (
    Mark,
    ReferenceCurve,
    axis_label,
    critical_marks,
    labelled_marks,
    reference_curves,
)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
FLAGSHIP = REPO / "examples" / "ising2d.phys"
NAMES = ["energy_per_site", "abs_magnetization", "specific_heat", "susceptibility", "binder"]
EXPRESSIONS = {"energy_per_site": "energy / sites",
               "abs_magnetization": "abs(magnetization) / sites"}  # fmt: skip
T_C = 2 / math.log(1 + math.sqrt(2))


def _model(name: str | None = None, **params):
    text = f"import {name}\n" if name else FLAGSHIP.read_text()
    return physml_lang.load(text).model(name, **params)


def _curves(cm, names=NAMES, x_range=(1.5, 3.5)):
    return reference_curves(cm, "T", names, x_range, EXPRESSIONS)


def test_the_flagship_gets_its_exact_curves_and_onsager_tc():
    curves = _curves(_model(L=4))
    by_name = {c.observable: c for c in curves}
    assert set(by_name) == {"energy_per_site", "abs_magnetization", "specific_heat"}
    assert "Ferdinand-Fisher" in by_name["energy_per_site"].label
    assert "L = 4" in by_name["specific_heat"].label
    assert "Onsager" in by_name["abs_magnetization"].label
    assert len(by_name["energy_per_site"].x) >= 100
    assert min(by_name["energy_per_site"].x) == 1.5 and max(by_name["energy_per_site"].x) == 3.5
    (mark,) = critical_marks(_model(L=4), "T")
    assert mark.x == pytest.approx(T_C, rel=1e-12) and mark.label == "T_c (Onsager)"
    (beta_mark,) = critical_marks(_model(L=4, J=0.5), "beta")
    assert beta_mark.x == pytest.approx(1 / (0.5 * T_C), rel=1e-6)


def test_a_user_named_measure_is_recognised_by_its_expression():
    curves = reference_curves(_model(L=4), "T", ["u"], (2.0, 3.0), {"u": "energy / sites"})
    assert [c.observable for c in curves] == ["u"]


@pytest.mark.parametrize("name, params", [
    (None, {"L": 4, "h": 0.1}),                    # a field
    ("TriangularIsing", {"L": 6}),                 # another lattice
    ("IsingJ1J2", {"L": 6, "J2": 0.3}),            # next-nearest-neighbour couplings
    ("BlumeCapel", {"L": 4}),                      # spin 1
])  # fmt: skip
def test_no_curves_where_the_model_is_not_the_square_ising_torus(name, params):
    cm = _model(name, **params)
    assert _curves(cm) == []
    assert critical_marks(cm, "T") == []


def test_the_fingerprint_is_numerical_not_textual():
    """J1-J2 with J2 = 0 is the nearest-neighbour model: its curves apply, with J = J1."""
    curves = _curves(_model("IsingJ1J2", L=4, J1=0.7, J2=0.0), ["energy_per_site"])
    assert len(curves) == 1
    (mark,) = critical_marks(_model("IsingJ1J2", L=4, J1=0.7, J2=0.0), "T")
    assert mark.x == pytest.approx(0.7 * T_C, rel=1e-6)


def _enumerated(L: int, J: float, T: float) -> tuple[float, float]:
    """E/N and C/N of the L x L torus by summing all 2^(L L) states."""
    N = L * L
    codes = np.arange(2**N)[:, None] >> np.arange(N) & 1
    s = (2 * codes - 1).reshape(-1, L, L).astype(np.float64)
    E = -J * (s * np.roll(s, 1, 1) + s * np.roll(s, 1, 2)).sum((1, 2))
    w = np.exp(-(E - E.min()) / T)
    e, e2 = (w * E).sum() / w.sum(), (w * E * E).sum() / w.sum()
    return e / N, (e2 - e * e) / (T * T * N)


@pytest.mark.parametrize("J", [1.0, 0.7])
def test_exact_energy_matches_enumeration_at_4x4(J):
    cm = _model(L=4, J=J)
    (energy,) = reference_curves(cm, "T", ["energy_per_site"], (1.2, 4.0), EXPRESSIONS)
    (heat,) = reference_curves(cm, "T", ["specific_heat"], (1.2, 4.0))
    for k in (0, 30, 60, 99):
        e, c = _enumerated(4, J, energy.x[k])
        assert abs(energy.y[k] - e) < 1e-10, (energy.x[k], energy.y[k], e)
        assert abs(heat.y[k] - c) < 1e-8, (heat.x[k], heat.y[k], c)


def _rows():
    return [{"T": t, "energy_per_site": {"mean": -2 + t / 3, "stderr": 0.01},
             "binder": {"mean": 0.5, "stderr": float("nan")}} for t in (1.5, 2.0, 2.5, 3.0)]  # fmt: skip


def test_plot_rows_draws_the_reference_and_names_it_in_the_legend(tmp_path):
    ref = ReferenceCurve("energy_per_site", (1.5, 2.0, 3.0), (-1.5, -1.4, -1.0), "exact (test)")
    labels = {"T": axis_label("T", energy_unit="J"),
              "energy_per_site": axis_label("energy_per_site", "energy / sites", "J"),
              "binder": axis_label("binder")}  # fmt: skip
    fig = outputs.figure_rows(_rows(), "T", ["energy_per_site", "binder"],
                              [Mark(T_C, "T_c (Onsager)")], references=[ref], labels=labels)
    energy, binder = fig.axes[:2]
    lines = {line.get_label(): line for line in energy.get_lines()}
    assert list(lines["exact (test)"].get_xdata()) == [1.5, 2.0, 3.0]
    legend = [t.get_text() for t in energy.get_legend().get_texts()]
    assert {"exact (test)", "T_c (Onsager)", "measured ± stderr"} <= set(legend)
    assert "exact (test)" not in [line.get_label() for line in binder.get_lines()]
    assert energy.get_xlabel() == "T [J/k_B]" and energy.get_ylabel() == "E/N [J]"
    assert energy.get_title() == "energy_per_site" and binder.get_ylabel() == "U_4"
    assert len(energy.containers) == 1  # the error bars
    path = outputs.plot_rows(tmp_path, _rows(), "T", ["energy_per_site"], [2.0],
                             references=[ref], labels=labels)  # fmt: skip
    assert path == tmp_path / "plot.png" and path.stat().st_size > 0


def test_plot_rows_keeps_its_old_calls_and_labels_plain_marks():
    fig = outputs.figure_rows(_rows(), "T", ["binder"], [2.2])
    (ax,) = fig.axes
    assert "T = 2.2" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlabel() == "T" and ax.get_ylabel() == "binder"


def test_plot_rows_joins_per_row_exact_values():
    rows = [{"beta": b, "plaquette": {"mean": 0.5 + b / 10, "stderr": 0.01},
             "plaquette_exact": 0.5 + b / 10} for b in (1.0, 2.0, 3.0)]  # fmt: skip
    fig = outputs.figure_rows(rows, "beta", ["plaquette"],
                              row_references={"plaquette": ("plaquette_exact", "exact")})
    (ax,) = fig.axes
    assert "exact" in [line.get_label() for line in ax.get_lines()]


def test_axis_labels_carry_units():
    assert axis_label("T", energy_unit="J") == "T [J/k_B]"
    assert axis_label("beta", energy_unit="J") == "β [1/J]"
    assert axis_label("energy_per_site", energy_unit="J") == "E/N [J]"
    assert axis_label("u", "energy / sites", "J") == "E/N [J]"
    assert axis_label("abs_magnetization", energy_unit="J") == "|M|/N"
    assert axis_label("susceptibility", energy_unit="J") == "χ/N [1/J]"
    assert axis_label("specific_heat", energy_unit="J") == "C/N"
    assert axis_label("binder") == "U_4"
    assert axis_label("l", unit="m") == "l [m]"
    assert axis_label("something_else") == "something_else"


def test_marks_at_a_known_critical_point_are_named():
    known = [Mark(T_C, "T_c (Onsager)")]
    assert [m.label for m in labelled_marks([2.269185, 3.0], known, "T")] == \
        ["T_c (Onsager)", "T = 3"]  # fmt: skip


def test_the_sample_task_plots_the_flagship_with_its_exact_curves(tmp_path, monkeypatch):
    from physml_lang.runtime import sample_task
    from physml_lang.runtime.tasks import RunState

    text = FLAGSHIP.read_text().replace("chains = 16, sweeps = 1000, burn_in = 300",
                                        "chains = 4, sweeps = 40, burn_in = 10")
    text = text.replace("linspace(1.5, 3.5, 21)", "[1.5, 2.5, 3.5]")
    program = physml_lang.load(text)
    result = program.run(sets={"L": 4}, seed=0)
    run = RunState.of(program.ir().tasks[0])
    figures = []
    monkeypatch.setattr(outputs, "save_figure", lambda fig, path: figures.append(fig) or path)
    files = sample_task._plots(tmp_path, run, result.summary, run.measures, "T", [],
                               program.model(L=4))  # fmt: skip
    assert files == [tmp_path / "plot.png"]
    axes = figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == ["E/N [J]", "|M|/N", "C/N", "χ/N [1/J]", "U_4"]
    assert all(ax.get_xlabel() == "T [J/k_B]" for ax in axes)
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    assert "exact, L = 4 (Ferdinand-Fisher)" in legends[0]
    assert "exact, L = ∞ (Onsager-Yang)" in legends[1]
    assert all("T_c (Onsager)" in entries for entries in legends)


def test_a_gauge_scan_joins_the_exact_torus_values(tmp_path, monkeypatch):
    text = """
    import U1
    run r {
        model U1(L = 4)
        sampler hmc(step_size = 0.2, n_steps = 5, chains = 2, sweeps = 20, burn_in = 5)
        scan beta in [1.0, 2.0]
        measure plaquette, Q2 = topological_charge^2
    }
    """
    figures = []
    monkeypatch.setattr(outputs, "save_figure", lambda fig, path: figures.append(fig) or path)
    physml_lang.load(text).run(seed=0, out=tmp_path)
    plaquette, q2 = figures[0].axes
    assert plaquette.get_xlabel() == "β" and q2.get_ylabel() == "⟨Q²⟩"
    for ax in (plaquette, q2):
        exact = [line for line in ax.get_lines() if line.get_label() == "exact (finite torus)"]
        assert len(exact) == 1 and len(exact[0].get_xdata()) == 2


def test_a_quantum_scan_joins_the_exact_diagonalisation_energies(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from physml_lang.runtime.quantum.plots import scan_plot

    rows = [{"g": g, "energy": {"mean": -g - 1.0, "stderr": 0.01}, "exact_energy": -g - 1.001,
             "reference": "exact (sector sum(Z) = 0)"} for g in (0.5, 1.0, 1.5)]  # fmt: skip
    figures = []
    monkeypatch.setattr(outputs, "save_figure", lambda fig, path: figures.append(fig) or path)
    run = SimpleNamespace(scans=[SimpleNamespace(name="g")], name="r")
    assert scan_plot(tmp_path, run, {"rows": rows, "model": "TFIM"}, "vmc")
    (ax,) = figures[0].axes
    assert "exact diagonalisation" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylabel() == "E"


def test_a_van_plot_shows_the_exact_free_energy(tmp_path):
    text = """
    model Ising(L: int = 3, J: real = 1.0) {
        lattice square(L, L, boundary = periodic)
        field s: spin on sites
        energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
        symmetry translation, spin_flip
    }
    learner q = made(hidden = 8, depth = 1) respecting spin_flip
    run v { model Ising  train q via free_energy(beta = 0.4, steps = 5, batch = 50,
            samples = 500)  reference exact }
    """
    result = physml_lang.compile(text).run(seed=0, out=tmp_path)
    assert isinstance(result.rows[0]["exact_free_energy"], float)
    assert (tmp_path / "training.png").stat().st_size > 0
