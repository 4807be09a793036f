"""Variational autoregressive networks in the language: ``learner q = made(...)``, ``train q via
free_energy(...)`` in a ``van`` run, checked by ``physml check``, run end to end, resumable, and
validated against exact free energies (enumeration; Kaufman's formula at 6 x 6).

F_q is a variational upper bound: it must lie above the exact F (within its error) and close
to it; F_NIS (importance sampling with the trained q) must agree with the exact F within its
error bar. A result below the bound beyond its error is a bug.
"""

from __future__ import annotations

import math

import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.checkpoint import Checkpoint

ISING = """
model Ising(L: int = 3, J: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
model Field(L: int = 3) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds) - 0.5 * sum(s[i] for i in sites)
}
"""


def _program(run: str, learner: str = "learner q = made(hidden = 32, depth = 2) respecting "
             "spin_flip") -> physml_lang.CompiledProgram:  # fmt: skip
    return physml_lang.compile(ISING + learner + "\n" + run)


def _errors(run: str, learner: str | None = None) -> list:
    with pytest.raises(PhysmlError) as exc:
        p = _program(run) if learner is None else _program(run, learner)
        p.check()
    return exc.value.diagnostics


@pytest.mark.parametrize("learner,run,code,where", [
    ("learner q = made(hiden = 32)", "run v { model Ising  train q via free_energy(beta = 0.4) }",
     "P401", "hiden"),
    ("learner q = made()", "run v { model Ising  train q via free_energy(steps = 10) }",
     "P402", "free_energy"),
    ("learner q = made()", "run v { model Ising  train q via free_energy(beta = -1) }",
     "P402", "beta"),
    ("learner q = made()", "run v { model Ising  train p via free_energy(beta = 0.4) }",
     "P207", "p"),
    ("learner q = made() respecting spin_flip",
     "run v { model Field  train q via free_energy(beta = 0.4) }", "P505", "spin_flip"),
    ("learner q = made() respecting gauge",
     "run v { model Ising  train q via free_energy(beta = 0.4) }", "P501", "gauge"),
    ("learner q = made()",
     "run v { model Ising  train q via free_energy(beta = 0.4)  scan T in [1, 2] }",
     "P205", "T"),
    ("learner q = made()",
     "run v { model Ising  train q via free_energy(beta = 0.4)  reference kaufman }",
     "P406", "reference"),
])  # fmt: skip
def test_check_locates_mistakes_in_van_runs(learner, run, code, where):
    diags = _errors(run, learner)
    assert diags[0].code == code, diags[0]
    text = _program.__globals__["ISING"] + learner + "\n" + run
    span = diags[0].span
    assert span is not None
    line = text.splitlines()[span.line - 1]
    assert where in line[span.column - 1:], (line, span)


def test_a_missing_required_option_is_named():
    diags = _errors("run v { model Ising  train q via free_energy(steps = 10) }",
                    "learner q = made()")  # fmt: skip
    assert diags[0].message == "objective free_energy needs option 'beta'"
    assert diags[0].hint.startswith("write beta = ...")


def test_check_accepts_a_van_run_without_torch_work():
    p = _program("run v { model Ising(L = 4)  train q via free_energy(beta = 0.44)  "
                 "reference exact }")  # fmt: skip
    lines = p.check()
    assert any("van" in line for line in lines)


def _exact_free_energy(L: int, beta: float) -> float:
    from itertools import product

    s = torch.tensor(list(product([-1.0, 1.0], repeat=L * L)), dtype=torch.float64)
    s = s.reshape(-1, L, L)
    E = -(s * s.roll(1, 1) + s * s.roll(1, 2)).sum((1, 2))
    return float(-torch.logsumexp(-beta * E, 0) / (beta * L * L))


def test_a_van_run_bounds_and_estimates_the_exact_free_energy(tmp_path):
    """3 x 3 torus at beta = 0.44 (exact by enumeration): the whole run in a few seconds."""
    p = _program("run v { model Ising(L = 3)  train q via free_energy(beta = 0.44, steps = 250, "
                 "batch = 400, lr = 0.01, anneal = 0.9, samples = 20000)  reference exact }")
    result = p.run("v", out=tmp_path, progress=False)
    (row,) = result.summary["rows"]
    exact = _exact_free_energy(3, 0.44)
    assert row["exact_free_energy"] == pytest.approx(exact, abs=1e-12)
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"]
    assert abs(fq["mean"] - exact) < 1e-2 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"]
    assert 0.3 < row["ess_per_sample"] <= 1
    assert 0 < row["nmcmc_acceptance"] <= 1
    e = row["nmcmc_energy_per_site"]
    assert math.isfinite(e["mean"]) and e["stderr"] > 0
    assert (tmp_path / "training.png").is_file() and (tmp_path / "results.csv").is_file()
    assert result.summary["history"][0][-1]["step"] == 250


def test_van_training_resumes_bit_identically():
    """A checkpoint taken mid-training and restored into a fresh point continues the same
    training: the parameters after 2 x 15 steps equal those after 30 uninterrupted ones."""
    from physml_lang.api import bind_runtime
    from physml_lang.runtime.generative.task import VANTraining
    from physml_lang.runtime.plans.generative import plan_van
    from physml_lang.runtime.random import RandomStreams
    from physml_lang.runtime.tasks import RunState

    bind_runtime()
    p = _program("run v { model Ising(L = 3)  train q via free_energy(beta = 0.44, steps = 30, "
                 "batch = 64) }")  # fmt: skip
    task = p.runs["v"]
    plan = plan_van(RunState.of(task), p, {},
                    lambda ir: p.compile_ir(ir, dtype=torch.float64))  # fmt: skip

    def fresh() -> VANTraining:
        return VANTraining(plan, plan.points[0], RandomStreams(0).fork(0), torch.device("cpu"))

    straight = fresh()
    for _ in range(30):
        straight.step()
    first = fresh()
    for _ in range(15):
        first.step()
    saved = Checkpoint(first.tensors(), {"done": first.done})
    second = fresh()
    second.restore(saved)
    for _ in range(15):
        second.step()
    for (k, a), b in zip(straight.net.state_dict().items(), second.net.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["free_energy_q"] for h in straight.history] == \
        [h["free_energy_q"] for h in second.history]  # fmt: skip


def test_a_diverging_van_run_is_a_located_error(tmp_path):
    """Energies that overflow (J = 1e308): the first step's F_q is not finite, a located P700
    at the objective, nothing written as a result."""
    p = _program("run v { model Ising(L = 3, J = 1e308)  train q via free_energy(beta = 0.44, "
                 "steps = 50, batch = 64) }")  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        p.run("v", out=tmp_path, progress=False)
    d = exc.value.diagnostics[0]
    assert d.code == "P704" and "diverged at step 1" in d.message
    assert d.span is not None and d.span.line == 14


# ------------------------------------------------------------------------- validations
@pytest.mark.slow
def test_van_at_6x6_beta_044_against_kaufman(tmp_path):
    """The issue's CI validation: MADE at 6 x 6, beta = 0.44. F_q above the exact F (Kaufman's
    finite-torus formula) within its error and within 1e-3 relative; F_NIS equal to it within
    4 sigma, with stderr(F_NIS) / |F| <= 1e-4."""
    from physml_lang.runtime.generative.kaufman import ising2d_torus_free_energy

    p = _program("run v { model Ising(L = 6)  train q via free_energy(beta = 0.44, steps = 800, "
                 "batch = 500, lr = 0.005, anneal = 0.99, samples = 100000)  reference exact }",
                 "learner q = made(hidden = 64, depth = 2) respecting spin_flip")  # fmt: skip
    (row,) = p.run("v", out=tmp_path, progress=False).summary["rows"]
    exact = ising2d_torus_free_energy(6, 6, 0.44)
    assert row["exact_free_energy"] == pytest.approx(exact, abs=1e-12)
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"], (fq, exact)
    assert fq["mean"] - exact < 1e-3 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"], (fn, exact)
    assert fn["stderr"] / abs(exact) <= 1e-4


SMALL = {
    "sk": ("import SK\n", "SK(N = 16, seed = 3)", None),
    "triangular_afm": ("""
model TriAFM(L: int = 4) {
    lattice triangular(L, L)
    field s: spin on sites
    energy E = sum(s[i] * s[j] for (i, j) in bonds)
    symmetry spin_flip
}
""", "TriAFM(L = 4)", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_van_bound_and_nis_on_frustrated_systems(name, tmp_path):
    """The SK spin glass (N = 16, fixed couplings) and the triangular antiferromagnet (4 x 4
    torus, frustrated): F exact by enumeration; the same bound and NIS checks."""
    header, model, _ = SMALL[name]
    src = (header + "learner q = made(hidden = 64, depth = 2) respecting spin_flip\n"
           f"run v {{ model {model}  train q via free_energy(beta = 1.0, steps = 500, "
           "batch = 500, lr = 0.005, anneal = 0.98, samples = 50000)  reference exact }")  # fmt: skip
    (row,) = physml_lang.compile(src).run("v", out=tmp_path, progress=False).summary["rows"]
    exact = row["exact_free_energy"]
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"], (fq, exact)
    assert fq["mean"] - exact < 1e-2 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"], (fn, exact)
    assert row["ess_per_sample"] > 0.2


def test_reference_exact_is_refused_before_training_where_none_is_known():
    """6 x 6 in a field: too many states to enumerate and not Kaufman's model: a located P423 at
    the reference statement from check, before any training."""
    diags = _errors("run v { model Field(L = 6)  train q via free_energy(beta = 0.4)\n"
                    "        reference exact }", "learner q = made()")  # fmt: skip
    assert diags[0].code == "P423" and diags[0].span.line == 15


def test_kaufman_applies_to_the_uniform_square_lattice_ising_model_only():
    from physml_lang.runtime.plans.generative import kaufman_coupling

    p = _program("")
    ising = p.derive(p.instantiate("Ising", {"L": 6, "J": 0.7}))
    assert kaufman_coupling(ising, "s", [-1, 1]) == pytest.approx(0.7)
    field = p.derive(p.instantiate("Field", {"L": 6}))
    assert kaufman_coupling(field, "s", [-1, 1]) is None


POTTS = """
model Potts(L: int = 3) {
    lattice square(L, L)
    field s: potts(3) on sites
    energy E = -sum(delta(s[i], s[j]) for (i, j) in bonds)
    symmetry spin_flip
}
"""


def test_van_on_a_three_state_potts_model(tmp_path):
    """q = 3 values per site (one-hot inputs, categorical conditionals): 3 x 3 Potts at
    beta = 1.0 against exact enumeration (19683 states)."""
    src = POTTS + ("learner q = made(hidden = 32, depth = 2)\n"
                   "run v { model Potts(L = 3)  train q via free_energy(beta = 1.0, steps = 300, "
                   "batch = 400, lr = 0.01, anneal = 0.9, samples = 20000)  reference exact }")
    (row,) = physml_lang.compile(src).run("v", out=tmp_path, progress=False).summary["rows"]
    exact = row["exact_free_energy"]
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"]
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"]
    assert row["ess_per_sample"] > 0.3


def test_respecting_spin_flip_is_refused_on_potts_fields():
    src = POTTS + ("learner q = made() respecting spin_flip\n"
                   "run v { model Potts  train q via free_energy(beta = 1.0) }")
    with pytest.raises(PhysmlError) as exc:
        physml_lang.compile(src).check()
    d = exc.value.diagnostics[0]
    assert d.code == "P501" and d.span.line == 8


def test_van_with_a_pixelcnn(tmp_path):
    """The masked convolutional network on the 3 x 3 torus: the same bound and NIS checks."""
    src = ISING + ("learner q = pixelcnn(width = 8, depth = 3) respecting spin_flip\n"
                   "run v { model Ising(L = 3)  train q via free_energy(beta = 0.44, steps = 150, "
                   "batch = 300, lr = 0.01, anneal = 0.9, samples = 10000)  reference exact }")
    (row,) = physml_lang.compile(src).run("v", out=tmp_path, progress=False).summary["rows"]
    exact = row["exact_free_energy"]
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"]
    assert abs(fq["mean"] - exact) < 1e-2 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"]


def test_pixelcnn_needs_a_grid_of_single_site_cells():
    src = """
model Honey(L: int = 3) {
    lattice honeycomb(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
learner q = pixelcnn()
run v { model Honey  train q via free_energy(beta = 0.4) }
"""
    with pytest.raises(PhysmlError) as exc:
        physml_lang.compile(src).check()
    d = exc.value.diagnostics[0]
    assert d.code == "P503" and "2 sites per cell" in d.message and d.span.line == 7


@pytest.mark.slow
@pytest.mark.long
def test_van_at_10x10_beta_044_against_kaufman(tmp_path):
    """The issue's CPU long validation: MADE (hidden 128) at 10 x 10, beta = 0.44, 3000 steps
    (about 25 minutes on one core). Measured (seed 0): F_q = -2.1244 +- 0.000014 against the
    exact -2.1252061 (3.8e-4 relative), F_NIS = -2.12523 +- 0.000014 (1.4 sigma), ESS 0.93."""
    from physml_lang.runtime.generative.kaufman import ising2d_torus_free_energy

    p = _program("run v { model Ising(L = 10)  train q via free_energy(beta = 0.44, "
                 "steps = 3000, batch = 1000, lr = 0.003, anneal = 0.995, samples = 200000)  "
                 "reference exact }",
                 "learner q = made(hidden = 128, depth = 2) respecting spin_flip")  # fmt: skip
    (row,) = p.run("v", out=tmp_path, progress=False).summary["rows"]
    exact = ising2d_torus_free_energy(10, 10, 0.44)
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"], (fq, exact)
    assert fq["mean"] - exact < 1e-3 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"], (fn, exact)
    assert fn["stderr"] / abs(exact) <= 1e-4


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.gpu
def test_pixelcnn_van_at_16x16_beta_044_against_kaufman(tmp_path):
    """The issue's GPU validation: a PixelCNN (width 64, 6 masked layers, kernel 13, the
    stat-mech-van settings) at 16 x 16, beta = 0.44: F_q above the exact -2.11636405544 within
    its error and within 1e-3 relative; F_NIS equal to it within 4 sigma. Run with
    ``python -m pytest -m gpu --device cuda``; not run here (no CUDA device was available)."""
    from physml_lang.runtime.generative.kaufman import ising2d_torus_free_energy

    p = _program("run v { model Ising(L = 16)  train q via free_energy(beta = 0.44, "
                 "steps = 10000, batch = 1000, lr = 0.001, anneal = 0.998, samples = 200000)  "
                 "reference exact }",
                 "learner q = pixelcnn(width = 64, depth = 6, kernel = 13) respecting "
                 "spin_flip")  # fmt: skip
    (row,) = p.run("v", out=tmp_path, progress=False).summary["rows"]
    exact = ising2d_torus_free_energy(16, 16, 0.44)
    assert exact == pytest.approx(-2.11636405544, abs=1e-10)
    fq, fn = row["free_energy_q"], row["free_energy_nis"]
    assert fq["mean"] > exact - 3 * fq["stderr"], (fq, exact)
    assert fq["mean"] - exact < 1e-3 * abs(exact)
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"], (fn, exact)
