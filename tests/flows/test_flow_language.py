"""Coupling flows of continuous fields in the language: ``learner f = coupling_flow(...)``,
``train f via reverse_kl(...)`` in a ``flow`` run, checked by ``physml check`` (located
diagnostics), run end to end, resumable, and validated on a Gaussian free field, where
-log Z is exact: S = phi^T A phi with A = m2 + (lattice Laplacian), so
-log Z / V = (1 / 2V) sum_k log(lambda_k / pi), lambda_k = m2 + sum_mu (2 - 2 cos(2 pi k_mu / L)).

F_q is a variational upper bound of -log Z / V: it must lie above the exact value (within its
error); F_NIS must agree with it within 4 sigma.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.checkpoint import Checkpoint

MODELS = """
model Phi4Lattice(L: int = 4, m2: real = -4, lam: real = 8) {
    lattice square(L, L, boundary = periodic)
    field phi: real on sites
    action S = sum((phi[j] - phi[i])^2 for (i, j) in bonds)
               + sum(m2 * phi[i]^2 + lam * phi[i]^4 for i in sites)
    symmetry translation, spin_flip
}
model Tilted(L: int = 4, h: real = 0.5) {
    lattice square(L, L, boundary = periodic)
    field phi: real on sites
    action S = sum((phi[j] - phi[i])^2 for (i, j) in bonds) + sum(phi[i]^2 - h * phi[i] for i in sites)
    symmetry translation
}
model Open(L: int = 4) {
    lattice square(L, L, boundary = open)
    field phi: real on sites
    action S = sum((phi[j] - phi[i])^2 for (i, j) in bonds) + sum(phi[i]^2 for i in sites)
}
model XYm(L: int = 4) {
    lattice square(L, L, boundary = periodic)
    field theta: angle on sites
    action S = -sum(cos(theta[i] - theta[j]) for (i, j) in bonds)
}
model Ising(L: int = 4) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
"""
LEARNER = "learner f = coupling_flow(layers = 4, width = 4) respecting translation, spin_flip"


def _program(run: str, learner: str = LEARNER) -> physml_lang.CompiledProgram:
    return physml_lang.compile(MODELS + learner + "\n" + run)


def _error(run: str, learner: str = LEARNER):
    with pytest.raises(PhysmlError) as exc:
        _program(run, learner).check()
    return exc.value.diagnostics[0]


@pytest.mark.parametrize("learner,run,code,where", [
    (LEARNER, "run r { model Phi4Lattice(L = 5)  train f via reverse_kl(steps = 10) }",
     "P424", "L = 5"),
    (LEARNER, "run r { model Tilted  train f via reverse_kl(steps = 10) }", "P505", "spin_flip"),
    (LEARNER, "run r { model Ising  train f via reverse_kl(steps = 10) }", "P503", "f"),
    (LEARNER, "run r { model XYm  train f via reverse_kl(steps = 10) }", "P503", "f"),
    ("learner f = coupling_flow(layers = 4)",
     "run r { model XYm  train f via reverse_kl(steps = 10) }", "P503", "XYm"),
    ("learner f = coupling_flow(layers = 4)",
     "run r { model Open  train f via reverse_kl(steps = 10) }", "P503", "Open"),
    ("learner f = coupling_flow(layers = 3)",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P424", "layers = 3"),
    ("learner f = coupling_flow(kernel = 4)",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P424", "kernel = 4"),
    ("learner f = coupling_flow(kind = planar)",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P402", "kind"),
    (LEARNER, "run r { model Phi4Lattice  train f via reverse_kl(lr = -1) }", "P402", "lr"),
    (LEARNER, "run r { model Phi4Lattice  train g via reverse_kl(steps = 10) }", "P207", "g"),
    ("learner f = coupling_flow() respecting gauge",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P501", "gauge"),
    ("learner f = made(hidden = 8)",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P503", "f"),
    (LEARNER, "run r { model Phi4Lattice  train f via reverse_kl(steps = 10)  measure energy }",
     "P208", "energy"),
    (LEARNER, "run r { model Phi4Lattice  train f via reverse_kl(steps = 10)  scan T in [1, 2] }",
     "P205", "T"),
    (LEARNER, "run r { model Phi4Lattice(L = 8)  train f via reverse_kl(train_extent = 3) }",
     "P424", "train_extent"),
    (LEARNER, "run r { model Phi4Lattice(L = 8)  train f via reverse_kl(train_extent = 6) }",
     "P424", "train_extent"),
    ("learner f = coupling_flow(spin_flip = mixture)",
     "run r { model Phi4Lattice  train f via reverse_kl(steps = 10) }", "P424", "spin_flip"),
    ("learner f = coupling_flow(spin_flip = mixture) respecting spin_flip",
     "run r { model Tilted  train f via reverse_kl(steps = 10) }", "P505", "spin_flip"),
])  # fmt: skip
def test_check_reports_located_errors(learner, run, code, where):
    d = _error(run, learner)
    assert d.code == code, d
    assert d.span is not None and where in (MODELS + learner + "\n" + run).splitlines()[
        d.span.line - 1], d  # fmt: skip


def test_check_accepts_a_flow_run():
    p = _program("run r { model Phi4Lattice(L = 8)  train f via reverse_kl(steps = 10, "
                 "warm_start = 5)  measure abs_magnetization, binder }")  # fmt: skip
    p.check()


def gaussian_free_energy(L: int, m2: float, dim: int = 2) -> float:
    """Exact -log Z / V of S = sum_bonds (phi_j - phi_i)^2 + m2 sum phi^2 on a periodic L^dim
    lattice (L > 2), Z = int exp(-S) dphi."""
    k = 2 * math.pi * np.arange(L) / L
    lap = sum(np.meshgrid(*[2 - 2 * np.cos(k)] * dim, indexing="ij"))
    lam = m2 + lap
    return float(0.5 * np.mean(np.log(lam / math.pi)))


def test_reverse_kl_on_a_gaussian_free_field_is_unbiased(tmp_path):
    """4 x 4, m2 = 1, lam = 0: F_NIS = exact -log Z / V within 4 sigma, F_q above it; the
    chain's <m> = 0 within 4 sigma and V <m^2> = 1 / (2 m2) exactly (the k = 0 mode)."""
    exact = gaussian_free_energy(4, 1.0)
    p = _program("run g { model Phi4Lattice(L = 4, m2 = 1, lam = 0)\n"
                 "  train f via reverse_kl(steps = 150, batch = 64, lr = 3e-3, samples = 20000)\n"
                 "  measure magnetization, m2 }",
                 "learner f = coupling_flow(layers = 4, width = 8) respecting spin_flip")  # fmt: skip
    result = p.run("g", out=tmp_path, progress=False)
    row = result.rows[0]
    fq, fnis = row["free_energy_q"], row["free_energy_nis"]
    assert abs(fnis["mean"] - exact) < 4 * fnis["stderr"], (fnis, exact)
    assert fq["mean"] > exact - 4 * fq["stderr"]
    assert row["ess_per_sample"] > 0.3 and 0 < row["nmcmc_acceptance"] <= 1
    m, m2 = row["magnetization"], row["m2"]
    assert abs(m["mean"]) < 4 * m["stderr"]
    assert abs(m2["mean"] - 0.5) < 4 * m2["stderr"], m2
    assert (tmp_path / "training.png").is_file() and (tmp_path / "results.csv").is_file()
    assert result.summary["history"][0][-1]["step"] == 150


def test_sign_mixture_flow_is_unbiased_on_a_gaussian_free_field():
    """spin_flip = mixture (an unconstrained flow q0, q = (q0(phi) + q0(-phi)) / 2), after a
    warm start on sign-folded HMC samples: F_NIS exact within 4 sigma, <m> = 0 within 4 sigma,
    V <m^2> = 1 / (2 m2); both signs are sampled."""
    exact = gaussian_free_energy(4, 1.0)
    p = _program("run g { model Phi4Lattice(L = 4, m2 = 1, lam = 0)\n"
                 "  train f via reverse_kl(warm_start = 20, steps = 100, batch = 64, lr = 3e-3,"
                 " samples = 8000)\n  measure magnetization, m2 }",
                 "learner f = coupling_flow(layers = 4, width = 8, spin_flip = mixture)"
                 " respecting spin_flip")  # fmt: skip
    row = p.run("g", progress=False).rows[0]
    fnis, m, m2 = row["free_energy_nis"], row["magnetization"], row["m2"]
    assert abs(fnis["mean"] - exact) < 4 * fnis["stderr"], (fnis, exact)
    assert row["ess_per_sample"] > 0.3
    assert abs(m["mean"]) < 4 * m["stderr"]
    assert abs(m2["mean"] - 0.5) < 4 * m2["stderr"], m2


def test_a_flow_trained_on_a_smaller_torus_is_unbiased_at_the_model_size():
    """reverse_kl(train_extent = 4) on an 8 x 8 Gaussian free field (warm start included): the
    flow trained on 4 x 4 gives F_NIS at 8 x 8 equal to the exact value within 4 sigma."""
    exact = gaussian_free_energy(8, 1.0)
    p = _program("run g { model Phi4Lattice(L = 8, m2 = 1, lam = 0)\n"
                 "  train f via reverse_kl(train_extent = 4, warm_start = 10, steps = 100,"
                 " batch = 64, lr = 3e-3, samples = 4000) }",
                 "learner f = coupling_flow(layers = 4, width = 8) respecting spin_flip")  # fmt: skip
    row = p.run("g", progress=False).rows[0]
    fnis = row["free_energy_nis"]
    assert abs(fnis["mean"] - exact) < 4 * fnis["stderr"], (fnis, exact)
    assert row["ess_per_sample"] > 0.1


def test_warm_start_then_reverse_kl_runs():
    """A forward-KL warm start on physml's HMC samples, then reverse KL; the history records
    both phases."""
    p = _program("run w { model Phi4Lattice(L = 4, m2 = 1, lam = 0)\n"
                 "  train f via reverse_kl(warm_start = 20, steps = 10, batch = 32, samples = 512) }")  # fmt: skip
    result = p.run("w", progress=False)
    hist = result.summary["history"][0]
    assert {h["phase"] for h in hist} == {0, 1} and hist[-1]["step"] == 30
    assert math.isfinite(result.rows[0]["free_energy_nis"]["mean"])


def test_flow_training_resumes_bit_identically():
    """A checkpoint taken mid-training (inside the warm start) and restored into a fresh point
    continues the same training: parameters after 2 x 10 steps equal those after 20."""
    from physml_lang.api import bind_runtime
    from physml_lang.runtime.flows.task import FlowTraining
    from physml_lang.runtime.plans.flows import plan_flow
    from physml_lang.runtime.random import RandomStreams
    from physml_lang.runtime.tasks import RunState

    bind_runtime()
    p = _program("run r { model Phi4Lattice(L = 4)  train f via reverse_kl(warm_start = 6, "
                 "steps = 14, batch = 16) }")  # fmt: skip
    plan = plan_flow(RunState.of(p.runs["r"]), p, {}, lambda ir: p.compile_ir(ir))

    def fresh() -> FlowTraining:
        return FlowTraining(plan, plan.points[0], RandomStreams(0).fork(0), torch.device("cpu"))

    straight = fresh()
    for _ in range(20):
        straight.step()
    for cut in (4, 10):
        first = fresh()
        for _ in range(cut):
            first.step()
        saved = Checkpoint(first.tensors(), {"done": first.done})
        second = fresh()
        second.restore(saved)
        for _ in range(20 - cut):
            second.step()
        for (k, a), b in zip(straight.flow.state_dict().items(),
                             second.flow.state_dict().values()):  # fmt: skip
            assert torch.equal(a, b), (cut, k)


def test_a_diverging_flow_run_is_a_located_error():
    """An action that overflows (lam = 1e308): a located P700 at the objective."""
    p = _program("run r { model Phi4Lattice(L = 4, lam = 1e308)  train f via reverse_kl("
                 "steps = 5, batch = 8) }", "learner f = coupling_flow(layers = 2, dtype = float64)")  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        p.run("r", progress=False)
    d = exc.value.diagnostics[0]
    assert d.code == "P704" and "diverged" in d.message


def test_a_scan_trains_one_flow_per_point_and_plots(tmp_path):
    """scan m2: one row per point (each with its own flow), the plot statement drawn."""
    p = _program("run s { model Phi4Lattice(L = 4)\n"
                 "  train f via reverse_kl(steps = 3, batch = 8, samples = 64)\n"
                 "  scan m2 in [-4, 1]\n  measure abs_magnetization, binder\n"
                 "  plot abs_magnetization, ess_per_sample }",
                 "learner f = coupling_flow(layers = 2, width = 2)")  # fmt: skip
    result = p.run("s", out=tmp_path, progress=False)
    assert [r["m2"] for r in result.rows] == [-4, 1]
    assert all(math.isfinite(r["binder"]["mean"]) for r in result.rows)
    assert (tmp_path / "plot.png").is_file() and len(result.summary["history"]) == 2
