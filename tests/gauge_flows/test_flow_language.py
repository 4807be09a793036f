"""Gauge flows in the language: ``learner f = gauge_flow(...)``, ``train f via reverse_kl(...)``
in a flow run of a gauge model, checked by ``physml check`` (located errors), run end to end,
resumable bit-identically, and validated against exact 2D U(1) torus results (slow: <Q^2> and
<cos P> at L = 8, beta = 2; long: L = 16, beta = 6 against HMC's autocorrelation of Q)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.catalogue import CATALOGUE
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.checkpoint import Checkpoint
from physml_lang.runtime.gauge.exact import (
    u1_partition_function_log,
    u1_plaquette_torus,
    u1_topological_susceptibility_torus,
)

MODELS = """
import U1, U1_3D, SU2
model Bare(L: int = 4, beta: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field U: u1 on links
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1])
    action S = -beta * sum(re(P[x]) for x in sites)
}
model Improved(L: int = 4, beta: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field U: u1 on links
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1])
    action S = -beta * sum(re(P[x]) for x in sites) - 0.1 * sum(re(P[x] * P[x]) for x in sites)
    symmetry gauge
}
"""
OPEN = """
model Open(L: int = 4, beta: real = 1.0) {
    lattice square(L, L, boundary = open)
    field U: u1 on links
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1])
    action S = -beta * sum(re(P[x]) for x in sites)
}
"""
FLOW = "learner f = gauge_flow(layers = 4, width = 4, bins = 4) respecting gauge, translation"


def _program(run: str, learner: str = FLOW, extra: str = "") -> physml_lang.CompiledProgram:
    return physml_lang.compile(MODELS + extra + learner + "\n" + run)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("learner,run,code,where", [
    (FLOW, "run r { model SU2(L = 4)  train f via reverse_kl(steps = 5) }", "P503", "f via"),
    (FLOW, "run r { model U1_3D(L = 4)  train f via reverse_kl(steps = 5) }", "P422", "U1_3D"),
    (FLOW, "run r { model U1(L = 6)  train f via reverse_kl(steps = 5) }", "P424", "L = 6"),
    (OPEN + FLOW, "run r { model Open(L = 4)  train f via reverse_kl(steps = 5) }", "P415",
     "field U"),
    ("learner f = gauge_flow() respecting gauge",
     "run r { model Bare(L = 4)  train f via reverse_kl(steps = 5) }", "P505", "gauge"),
    ("learner f = gauge_flow(kernel = 4)",
     "run r { model U1(L = 4)  train f via reverse_kl(steps = 5) }", "P424", "kernel"),
    ("learner f = gauge_flow(layer = 4)",
     "run r { model U1(L = 4)  train f via reverse_kl(steps = 5) }", "P401", "layer"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(step = 5) }", "P401", "step"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(lr = -1) }", "P402", "lr"),
    (FLOW, "run r { model U1(L = 4)  train g via reverse_kl(steps = 5) }", "P207", "g via"),
    ("learner f = lcnn(channels = [2])",
     "run r { model U1(L = 4)  train f via reverse_kl(steps = 5) }", "P503", "f via"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(steps = 5)  scan T in [1, 2] }",
     "P205", "T"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(steps = 5)  reference kaufman }",
     "P406", "reference"),
    ("learner f = gauge_flow()",
     "run r { model Improved(L = 4)  train f via reverse_kl(warm_start = 5) }", "P502",
     "warm_start"),
    ("learner f = gauge_flow()",
     "run r { model Improved(L = 4)  train f via reverse_kl(steps = 5)  reference exact }",
     "P423", "reference"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(steps = 5)  measure wilson_loop(9, 1) }",
     "P406", "9"),
    (FLOW, "run r { model U1(L = 4)  train f via reverse_kl(lr_schedule = linear) }", "P402",
     "lr_schedule"),
    (FLOW, "run r { model U1(L = 8)  train f via reverse_kl(steps = 5, train_extent = 6) }",
     "P424", "train_extent"),
    (FLOW, "run r { model U1(L = 12)  train f via reverse_kl(steps = 5, train_extent = 8) }",
     "P424", "train_extent"),
])  # fmt: skip
def test_check_locates_mistakes_in_flow_runs(learner, run, code, where):
    text = MODELS + learner + "\n" + run
    with pytest.raises(PhysmlError) as exc:
        _program(run, learner).check()
    d = exc.value.diagnostics[0]
    assert d.code == code, d
    assert d.span is not None, d
    line = text.splitlines()[d.span.line - 1]
    assert where in line[d.span.column - 1:], (line, d.span)
    assert "Traceback" not in str(d)


def test_a_gauge_flow_is_not_a_regressor():
    run = ("run r { model U1(L = 4)  regress f, target = wilson_loop(1, 1), samples = 16, "
           "test_samples = 8, test_L = [8], epochs = 1, sweeps = 2 }")
    with pytest.raises(PhysmlError) as exc:
        _program(run).check()
    d = exc.value.diagnostics[0]
    assert d.code == "P503" and "not a regressor" in d.message and d.span is not None
    assert "reverse_kl" in d.hint


def test_check_accepts_a_flow_run_and_the_names_coexist_by_family():
    p = _program("run r { model U1(L = 8, beta = 2.0)  train f via reverse_kl(steps = 10, "
                 "warm_start = 5)  measure Q2 = topological_charge^2  reference exact }")
    assert any("run r" in line for line in p.check())
    assert CATALOGUE.objectives.get("reverse_kl", "gauge").facts.task == "flow"
    assert CATALOGUE.tasks.get("flow", "gauge").family == "gauge"


def test_a_small_flow_run_writes_its_columns_and_exact_references(tmp_path):
    """L = 4, beta = 1: warm start, reverse KL, NIS and NMCMC; every declared column."""
    from physml_lang.runtime.tasks import run_columns

    p = _program("run r { model U1(L = 4, beta = 1.0)  train f via reverse_kl(steps = 30, "
                 "batch = 32, lr = 0.005, warm_start = 10, samples = 2000)  "
                 "measure plaquette, Q2 = topological_charge^2  reference exact }")
    result = p.run("r", out=tmp_path, progress=False)
    (row,) = result.summary["rows"]
    entry = CATALOGUE.tasks.get("flow", "gauge")
    assert set(row) == set(run_columns(p.runs["r"], entry))
    assert row["exact_free_energy"] == pytest.approx(-u1_partition_function_log(1.0, 4) / 16)
    assert row["plaquette_exact"] == pytest.approx(u1_plaquette_torus(1.0, 4))
    assert row["Q2_exact"] == pytest.approx(u1_topological_susceptibility_torus(1.0, 4))
    fq = row["free_energy_q"]
    assert fq["mean"] > row["exact_free_energy"] - 4 * fq["stderr"]  # a bound
    assert 0 < row["ess_per_sample"] <= 1 and 0 < row["nmcmc_acceptance"] <= 1
    assert row["steps"] == 40 and math.isfinite(row["tau_int_Q"])
    hist = result.summary["history"][0]
    assert {h["phase"] for h in hist} == {0, 1} and hist[-1]["step"] == 40
    assert (tmp_path / "training.png").is_file() and (tmp_path / "results.csv").is_file()


def test_a_flow_trained_on_a_smaller_torus_estimates_on_the_models(tmp_path):
    """train_extent = 4 on U1(L = 8): the flow trains on the 4 x 4 torus (its samples there)
    and every estimate is made at L = 8 (the exact references of the 8 x 8 torus; F_q a bound
    of its F)."""
    from physml_lang.api import bind_runtime
    from physml_lang.runtime.gauge_flows.task import GaugeFlowTraining
    from physml_lang.runtime.plans.gauge_flows import plan_gauge_flow
    from physml_lang.runtime.random import RandomStreams
    from physml_lang.runtime.tasks import RunState

    run = ("run r { model U1(L = 8, beta = 1.0)  train f via reverse_kl(steps = 40, batch = 32, "
           "lr = 0.005, samples = 1000, train_extent = 4)  measure Q2 = topological_charge^2  "
           "reference exact }")  # fmt: skip
    p = _program(run)
    bind_runtime()
    plan = plan_gauge_flow(RunState.of(p.runs["r"]), p, {},
                           lambda ir: p.compile_ir(ir, dtype=torch.float64))  # fmt: skip
    point = GaugeFlowTraining(plan, plan.points[0], RandomStreams(0), torch.device("cpu"))
    assert point.flow.layers[0].active.shape == (4, 4)
    assert point.model_flow().layers[0].active.shape == (8, 8)
    improved = _program("run r { model Improved(L = 8, beta = 1.0)  train f via reverse_kl("
                        "steps = 1, train_extent = 4) }", "learner f = gauge_flow(layers = 4)")
    iplan = plan_gauge_flow(RunState.of(improved.runs["r"]), improved, {},
                            lambda ir: improved.compile_ir(ir, dtype=torch.float64))  # fmt: skip
    ipoint = GaugeFlowTraining(iplan, iplan.points[0], RandomStreams(0), torch.device("cpu"))
    theta = 2 * math.pi * torch.rand((5, 4, 4, 2), dtype=torch.float64,
                                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    small = improved.model("Improved", L=4, beta=1.0)  # the same action on the 4 x 4 torus
    assert torch.allclose(ipoint.train_action(theta), small.action(theta).double(), atol=1e-12)
    (row,) = p.run("r", out=tmp_path, progress=False).summary["rows"]
    assert row["exact_free_energy"] == pytest.approx(-u1_partition_function_log(1.0, 8) / 64)
    fq = row["free_energy_q"]
    assert fq["mean"] > row["exact_free_energy"] - 4 * fq["stderr"]
    assert row["steps"] == 40 and 0 < row["nmcmc_acceptance"] <= 1


def test_flow_training_resumes_bit_identically():
    """A checkpoint taken mid warm start (HMC chains, flow, Adam, streams) and restored into a
    fresh point continues the same training (the cosine lr schedule included): parameters after
    7 + 13 steps equal those after 20 uninterrupted ones."""
    from physml_lang.api import bind_runtime
    from physml_lang.runtime.gauge_flows.task import GaugeFlowTraining
    from physml_lang.runtime.plans.gauge_flows import plan_gauge_flow
    from physml_lang.runtime.random import RandomStreams
    from physml_lang.runtime.tasks import RunState

    bind_runtime()
    p = _program("run r { model U1(L = 4)  train f via reverse_kl(steps = 10, batch = 8, "
                 "warm_start = 10, lr_schedule = cosine) }")  # fmt: skip
    plan = plan_gauge_flow(RunState.of(p.runs["r"]), p, {},
                           lambda ir: p.compile_ir(ir, dtype=torch.float64))  # fmt: skip

    def fresh() -> GaugeFlowTraining:
        return GaugeFlowTraining(plan, plan.points[0], RandomStreams(0).fork(0),
                                 torch.device("cpu"))  # fmt: skip

    straight = fresh()
    for _ in range(20):
        straight.step()
    first = fresh()
    for _ in range(7):
        first.step()
    second = fresh()
    second.restore(Checkpoint(first.tensors(), {"done": first.done}))
    for _ in range(13):
        second.step()
    for (k, a), b in zip(straight.flow.state_dict().items(), second.flow.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in second.history]


def test_a_diverging_flow_run_is_a_located_error(tmp_path):
    p = _program("run r { model U1(L = 4, beta = 1e308)  train f via reverse_kl(steps = 5, "
                 "batch = 8) }")  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        p.run("r", out=tmp_path, progress=False)
    d = exc.value.diagnostics[0]
    assert d.code == "P704" and "diverged at step 1" in d.message and d.span is not None


# ------------------------------------------------------------------------- validations
L8 = ("learner f = gauge_flow(layers = 16, width = 8, depth = 2, kernel = 3, bins = 8) "
      "respecting gauge, translation")


@pytest.mark.slow
def test_flow_nmcmc_at_l8_beta2_against_the_exact_torus(tmp_path):
    """The issue's validation: L = 8, beta = 2. NMCMC <Q^2> within 4 sigma of the exact 1.2393
    and <cos P> within 4 sigma of the exact torus value; F_NIS within 4 sigma of the exact
    -log Z / V, F_q above it."""
    p = _program("run r { model U1(L = 8, beta = 2.0)  train f via reverse_kl(steps = 600, "
                 "batch = 64, lr = 0.003, samples = 20000)  measure plaquette, "
                 "Q2 = topological_charge^2  reference exact }", L8)  # fmt: skip
    (row,) = p.run("r", out=tmp_path, progress=False).summary["rows"]
    assert row["Q2_exact"] == pytest.approx(1.2393, abs=1e-4)
    q2, pl = row["Q2"], row["plaquette"]
    assert abs(q2["mean"] - row["Q2_exact"]) < 4 * q2["stderr"], q2
    assert abs(pl["mean"] - row["plaquette_exact"]) < 4 * pl["stderr"], pl
    fq, fn, exact = row["free_energy_q"], row["free_energy_nis"], row["exact_free_energy"]
    assert abs(fn["mean"] - exact) < 4 * fn["stderr"], (fn, exact)
    assert fq["mean"] > exact - 4 * fq["stderr"]
    assert row["ess_per_sample"] > 0.02


def _hmc_tau_q(L: int, beta: float, trajectories: int) -> tuple[float, float]:
    """tau_int of Q (in trajectories) and <Q^2> from physml's HMC at its usual settings
    (step_size 0.1, 10 steps, 16 chains, cold start, 200 trajectories of burn-in). A run in
    which Q never changes has a tau_int longer than the run: infinite here."""
    src = f"""
import U1
run h {{
    model U1(L = {L}, beta = {beta})
    sampler hmc(step_size = 0.1, n_steps = 10, chains = 16, sweeps = {trajectories},
                burn_in = 200, start = cold)
    measure Q = topological_charge, Q2 = topological_charge^2
}}
"""
    (row,) = physml_lang.compile(src).run("h", progress=False).summary["rows"]
    tau = row["Q"]["tau_int"]
    frozen = row["Q2"]["mean"] == 0 or not math.isfinite(tau)
    return (math.inf if frozen else tau), row["Q2"]["mean"]


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(2400)
def test_flow_beats_hmc_autocorrelation_at_l16_beta6(tmp_path):
    """L = 16, beta = 6, where HMC's topology freezes: a flow trained on the 8 x 8 torus of the
    same action (train_extent = 8) and sampled at L = 16 has an NMCMC tau_int(Q) (in proposals)
    below HMC's (in trajectories), and its <Q^2> agrees with the exact 1.1947 within 4 sigma.

    Measured (seed 0, one thread of a loaded 2-core machine, 17 min): flow tau_int(Q) = 707
    proposals against HMC's 1670 trajectories (HMC <Q^2> = 0.78); flow <Q^2> = 1.49 +- 0.27
    (1.1 sigma); F_q = -4.0951, 0.113 per site above the exact F = -4.2082. A marginal pass:
    the NMCMC acceptance is 6.8e-4 (34 accepted moves of 50000 proposals)."""
    p = _program("run r { model U1(L = 16, beta = 6.0)  train f via reverse_kl(steps = 4000, "
                 "batch = 64, lr = 0.001, lr_schedule = cosine, train_extent = 8, "
                 "samples = 50000)  measure Q = topological_charge, "
                 "Q2 = topological_charge^2  reference exact }", L8)  # fmt: skip
    (row,) = p.run("r", out=tmp_path, progress=False).summary["rows"]
    print({k: row[k] for k in ("Q2", "tau_int_Q", "nmcmc_acceptance", "ess_per_sample",
                               "free_energy_q", "free_energy_nis", "exact_free_energy")})
    assert row["Q2_exact"] == pytest.approx(1.1947, abs=1e-4)
    tau_hmc, q2_hmc = _hmc_tau_q(16, 6.0, 2000)
    print({"tau_hmc": tau_hmc, "Q2_hmc": q2_hmc})
    assert row["nmcmc_acceptance"] > 0
    assert row["tau_int_Q"] < tau_hmc, (row["tau_int_Q"], tau_hmc)
    q2 = row["Q2"]
    assert np.isfinite(q2["stderr"])
    assert abs(q2["mean"] - row["Q2_exact"]) < 4 * q2["stderr"], q2
