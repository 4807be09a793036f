"""Runs that cannot fit or that blow up, each a located diagnostic instead of an OOM kill or a
traceback: (A) a memory estimate of every task kind before its large allocations (P409, at
the run), (B) a value that becomes non-finite during a run stops it with a located P700 that
names what and where, keeping the rows of the points finished before it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime import device

MiB = 1 << 20

TFIM = """
model TFIM(L: int = 20, J: real = 1.0, g: real = 1.0) {
    lattice chain(L, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = -J * sum(Z[i] * Z[j] for (i, j) in bonds) - g * sum(X[i] for i in sites)
}
"""

XXZ = """
model XXZ(L: int = 20) {
    lattice chain(L, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = sum(X[i] * X[j] + Y[i] * Y[j] + Z[i] * Z[j] for (i, j) in bonds)
    conserve sum(Z[i] for i in sites)
}
"""

QUARTIC = """
model Quartic(k: real = 1) {
    phase_space (q, p)
    hamiltonian H = p^2 / 2 + k * q^4
}
"""


def _refused(text: str, *, out: Path | None = None, seconds: float = 2.0, **kw):
    """The first diagnostic of running ``text`` on the CPU, raised within ``seconds``."""
    started = time.perf_counter()
    with pytest.raises(PhysmlError) as err:
        physml_lang.compile(text).run(device="cpu", out=out, **kw)
    assert time.perf_counter() - started < seconds
    d = err.value.diagnostics[0]
    assert d.span is not None, d.render()
    return d


def _memory(text: str, line: int, **kw):
    """A located P409 about memory, at the run block on ``line``."""
    d = _refused(text, **kw)
    assert d.code == "P409" and "memory" in d.message and d.hint, d.render()
    assert (d.span.line, d.span.column) == (line, 1), d.render()
    return d


def _too_large(d) -> None:
    """An earlier, existing limit (sites, states, steps) of the P400 family, located."""
    assert d.code.startswith("P4"), d.render()
    assert any(w in d.message for w in ("memory", "limit", "more than", "less than")), d.render()


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["rows"]


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend ``n`` MiB are available (the estimate's path, on any machine)."""
    return lambda n: monkeypatch.setattr(device, "available_memory", lambda dev: n * MiB)


# ---------------------------------------------------------------- A: memory, every task kind


def test_exact_diagonalisation_too_large_is_refused_before_building_h(little_memory):
    _too_large(_refused(TFIM + "run r {\n    model TFIM(L = 48)\n    exact levels = 4\n}\n"))
    little_memory(64)  # the estimate itself: a 20-site sector of 184756 states, ~0.3 GiB
    d = _memory(XXZ + "run r {\n    model XXZ(L = 20)\n    exact levels = 2, sector = 0\n}\n", 8)
    assert "exact diagonalisation of 20 qubits, 184756 states" in d.message
    assert "sector" in d.hint


def test_vmc_learner_too_large_is_refused_before_it_is_built():
    """alpha = 10^5 on 1000 sites: 10^11 parameters; SR's Jacobian alone is petabytes."""
    text = TFIM + ("learner psi = rbm(alpha = 100000)\nrun r {\n    model TFIM(L = 1000)\n"
                   "    learner psi\n    optimize psi via sr(lr = 0.01)\n    iterations 5\n"
                   "    samples 1000\n    reference none\n}\n")  # fmt: skip
    d = _memory(text, 8)
    assert "parameters on 1000 qubits" in d.message and "samples" in d.hint


def test_field_sampling_too_large_is_refused_before_the_fields_exist():
    _too_large(_refused("import Phi4\nrun r {\n    model Phi4(L = 100000)\n"
                        "    sampler hmc(chains = 2, sweeps = 10)\n}\n"))  # fmt: skip
    d = _memory("import Phi4\nrun r {\n    model Phi4(L = 40000)\n"
                "    sampler hmc(chains = 16, sweeps = 10)\n}\n", 2)  # fmt: skip
    assert "16 chains of 1600000000 sites" in d.message


def test_gauge_sampling_too_large_is_refused_before_compiling_or_sampling(little_memory):
    _too_large(_refused("import U1_4D\nrun r {\n    model U1_4D(L = 4000)\n"
                        "    sampler hmc(chains = 2, sweeps = 10)\n}\n"))  # fmt: skip
    # 1.6e9 sites: deriving the action alone would evaluate it on random configurations
    d = _memory("import U1_4D\nrun r {\n    model U1_4D(L = 200)\n"
                "    sampler hmc(chains = 2, sweeps = 10)\n}\n", 2)  # fmt: skip
    assert "compiling model U1_4D" in d.message
    little_memory(16)  # a small model, but 1000 chains of it
    d = _memory("import U1\nrun r {\n    model U1(L = 16)\n"
                "    sampler hmc(chains = 1000, sweeps = 10)\n}\n", 2)  # fmt: skip
    assert "1000 chains of 256 sites" in d.message


def test_gauge_regression_too_large_is_refused_before_sampling_its_data():
    text = ("import U1\nlearner f = lcnn(channels = [64, 64]) respecting gauge, translation\n"
            "run r {\n    model U1(L = 64)\n    scan beta in [1.0]\n    regress f, target = "
            "wilson_loop(1, 1), samples = 100000, test_samples = 100000, test_L = [512],\n"
            "            epochs = 1, sweeps = 1\n}\n")  # fmt: skip
    d = _memory(text, 3)
    assert "100000 training configurations" in d.message


def test_boltzmann_tasks_too_large_are_refused_before_compiling(tmp_path):
    d = _memory("import RBM\nrun r {\n    model RBM(Nv = 1000000, Nh = 1000000)\n"
                "    sampler gibbs(chains = 10, sweeps = 10)\n}\n", 2)  # fmt: skip
    assert "2000000 units" in d.message
    d = _memory("import Hopfield\nrun r {\n    model Hopfield(N = 1000000, P = 10)\n"
                "    recall xi via glauber(T = 0, sweeps = 2)\n}\n", 2)  # fmt: skip
    assert "1000000 units" in d.message
    np.savez(tmp_path / "x.npz", x=np.zeros((20, 9)))
    (tmp_path / "fit.phys").write_text(
        "import RBM\ndata D: binary = load(\"x.npz\", key = \"x\")\n"
        "learner rbm = RBM(Nv = 9, Nh = 1000000000)\nrun fit {\n"
        "    train rbm via cd(k = 1), data = D, epochs = 1, batch = 10\n}\n")  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(tmp_path / "fit.phys").run(device="cpu")
    assert time.perf_counter() - started < 2
    d = err.value.diagnostics[0]
    assert d.code == "P409" and "memory" in d.message and d.span.line == 4


def test_trajectories_too_long_are_refused_before_integrating(little_memory):
    text = ("import Pendulum\nrun r {\n    model Pendulum\n    initial q = 1.0, p = 0.0\n"
            "    evolve integrator = [leapfrog], dt = 0.1, steps = STEPS, save_every = 1\n}\n")
    _too_large(_refused(text.replace("STEPS", "1000000000000")))  # over the steps' limit
    little_memory(16)  # 10^6 saved states
    d = _memory(text.replace("STEPS", "1000000"), 2)
    assert "1000000 steps" in d.message and "save_every" in d.hint


def test_learned_dynamics_too_large_are_refused_before_simulating_data():
    text = ("import Pendulum\nlearner H = hnn(hidden = [100000, 100000]) respecting "
            "symplectic\nrun r {\n    model Pendulum\n    trajectories count = 100000, "
            "points = 100000\n    train H via derivative_mse(steps = 10)\n}\n")  # fmt: skip
    d = _memory(text, 3)
    assert "100000 trajectories of 100000 points" in d.message


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.phys"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_no_estimate_fires_on_the_examples_at_their_sizes(path, monkeypatch):
    """Every example's estimates at its declared sizes, without running it: far below what a
    laptop has (the largest, a 16-site symmetrised GRU of heisenberg_chain_rnn, ~2.7 GiB for
    a measured 1.3 GiB)."""
    needs: list[tuple[str, int]] = []

    def record(need, dev, what, span, hint):
        needs.append((what, need))
        if what.startswith("run "):  # a run's last estimate: before any of its work
            raise _Stop

    from physml_lang.runtime import sample_task
    from physml_lang.runtime.discovery import task as discovery
    from physml_lang.runtime.dynamics import field
    from physml_lang.runtime.dynamics import tasks as dynamics
    from physml_lang.runtime.flows import task as flows
    from physml_lang.runtime.gauge import tasks as gauge
    from physml_lang.runtime.gauge_flows import task as gauge_flows
    from physml_lang.runtime.generative import task as generative
    from physml_lang.runtime.hopfield import task as hopfield
    from physml_lang.runtime.landscape import task as landscape
    from physml_lang.runtime.learners import deep
    from physml_lang.runtime.learners import tasks as learners
    from physml_lang.runtime.phases import task as phases
    from physml_lang.runtime.propagation import task as propagation
    from physml_lang.runtime.quantum import tasks as quantum
    from physml_lang.runtime.scores import task as scores
    from physml_lang.runtime.topology import task as topology

    for module in (sample_task, field, dynamics, gauge, learners, quantum, generative, hopfield,
                   flows, gauge_flows, scores, deep, landscape, discovery, phases, topology,
                   propagation):
        monkeypatch.setattr(module, "check_memory", record)
    program = physml_lang.load(path)
    for name in program.runs:
        with pytest.raises(_Stop):
            program.run(name, device="cpu")
    assert len(needs) >= len(program.runs)
    worst = max(needs, key=lambda x: x[1])
    assert worst[1] < 3 << 30, worst


class _Stop(Exception):
    pass


# ---------------------------------------------------------------- B: non-finite values


def test_an_integrator_blowup_is_located_and_keeps_the_finished_integrators(tmp_path):
    text = QUARTIC + ("run r {\n    model Quartic\n    initial q = 1.0, p = 0.0\n"
                      "    evolve integrator = [rk4, euler], dt = 0.05, steps = 2000\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "energy" in d.message and "euler" in d.message
    assert "step 200 (t = 10)" in d.message and "dt" in d.hint
    assert (d.span.line, d.span.column) == (9, 39)  # dt = 0.05
    assert [r["integrator"] for r in _rows(tmp_path)] == ["rk4"]


def test_simulated_training_data_that_blow_up_are_located():
    text = ("import MassSpring\nlearner H = hnn(hidden = [16]) respecting symplectic\n"
            "run fit {\n    model MassSpring\n    trajectories count = 4, points = 8, "
            "t_span = 3.0, noise = 0.0, radius = [1e160, 1e161]\n"
            "    train H via derivative_mse(steps = 5)\n}\n")  # fmt: skip
    d = _refused(text)
    assert d.code == "P700" and "simulating the training trajectories" in d.message
    assert "non-finite" in d.message and "t = " in d.message and d.span.line == 5


def test_exact_rollout_trajectories_that_blow_up_are_located_not_a_traceback(tmp_path):
    """The rollouts' exact reference, integrated with a step of 10 in a quartic well, used to
    escape as an EnergyBlowupError traceback."""
    text = QUARTIC + ("learner H = hnn(hidden = [8]) respecting symplectic\nrun fit {\n"
                      "    model Quartic\n    trajectories count = 4, points = 8, t_span = 1.0, "
                      "noise = 0.0\n    train H via derivative_mse(steps = 3)\n"
                      "    rollout count = 2, horizon = 1000, steps = 10\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "exact trajectories" in d.message and "t = 100" in d.message
    assert (d.span.line, d.span.column) == (11, 5)  # the rollout statement
    assert "steps" in d.hint


def test_a_non_finite_training_loss_names_the_learner_and_keeps_finished_learners(tmp_path):
    """Derivatives of 1e200 in the loaded data: the HNN's squared error overflows; the
    sympnet before it (trained on consecutive states, finite) keeps its row."""
    t = np.linspace(0, 1, 6)
    q = np.cos(t)[None, :, None] * np.arange(1, 5)[:, None, None]
    huge = np.full_like(q, 1e200)
    np.savez(tmp_path / "huge.npz", t=t, q=q, p=-q, dq=huge, dp=-huge)
    (tmp_path / "f.phys").write_text(
        "import MassSpring\nlearner S = sympnet(layers = 2, width = 8)\n"
        "learner H = hnn(hidden = [16]) respecting symplectic\nrun fit {\n"
        "    model MassSpring\n    trajectories load(\"huge.npz\")\n"
        "    train S via step_mse(steps = 5)\n    train H via derivative_mse(steps = 5)\n"
        "    rollout count = 2, horizon = 2, steps = 20\n}\n")  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(tmp_path / "f.phys").run(out=tmp_path / "out", device="cpu")
    assert time.perf_counter() - started < 2
    d = err.value.diagnostics[0]
    assert d.code == "P700" and "training loss of learner H" in d.message
    assert "step 1 of 5" in d.message and d.span.line == 3
    assert [r["learner"] for r in _rows(tmp_path / "out")] == ["S"]


def test_a_diverging_vmc_point_names_it_and_keeps_the_finished_point(tmp_path):
    text = TFIM.replace("L: int = 20", "L: int = 6") + (
        "learner psi = rbm(alpha = 1)\nrun gs {\n    model TFIM(L = 6)\n    learner psi\n"
        "    sampler metropolis(chains = 8)\n    optimize psi via sgd(lr = 0.01)\n"
        "    iterations 3\n    samples 64, final = 64\n    reference none\n"
        "    scan J in [1.0, 1e300]\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "variational energy" in d.message
    assert "iteration" in d.message and "J = 1e+300" in d.message
    assert (d.span.line, d.span.column) == (8, 1)
    assert [r["J"] for r in _rows(tmp_path)] == [1.0]


def test_diverging_boltzmann_training_names_the_point_and_keeps_finished_rows(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", x=rng.integers(0, 2, size=(40, 9)).astype(np.float64))
    (tmp_path / "fit.phys").write_text(
        "import RBM\ndata D: binary = load(\"x.npz\", key = \"x\")\n"
        "learner rbm = RBM(Nv = 9, Nh = 3)\nrun fit {\n"
        "    train rbm via cd(k = 1), data = D, epochs = 2, batch = 20\n"
        "    scan sigma in [0.1, 100000.0]\n}\n")  # fmt: skip
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(tmp_path / "fit.phys").run(out=tmp_path / "out", device="cpu")
    d = err.value.diagnostics[0]
    assert d.code == "P700" and "diverged" in d.message and "sigma = 100000" in d.message
    assert d.span.line == 5 and "1 finished row(s)" in d.hint
    assert [r["sigma"] for r in _rows(tmp_path / "out")] == [0.1]


def test_hmc_of_an_unbounded_field_action_stops_with_a_located_error(tmp_path):
    """A negative quartic coupling: the action is unbounded below, HMC's trajectories overflow
    and every one was rejected silently (acceptance 0, garbage rows)."""
    text = ("import Phi4\nrun r {\n    model Phi4(L = 4)\n    sampler hmc(chains = 2, "
            "sweeps = 20, burn_in = 5, step_size = 0.1, n_steps = 20)\n"
            "    scan lam in [1.145, -20.0]\n    measure action_density\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "non-finite" in d.message and "HMC trajectories" in d.message
    assert "lam = -20" in d.message and "update 1" in d.message
    assert (d.span.line, d.span.column) == (4, 55)  # step_size = 0.1
    assert "unbounded" in d.hint
    assert [r["lam"] for r in _rows(tmp_path)] == [1.145]


def test_gauge_hmc_overflow_stops_with_a_located_error(tmp_path):
    text = ("import U1\nrun r {\n    model U1(L = 4)\n    sampler hmc(step_size = 0.2, "
            "n_steps = 4, chains = 2, sweeps = 10, burn_in = 2)\n"
            "    scan beta in [1.0, 1e300]\n    measure plaquette\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "dH of HMC trajectories" in d.message
    assert "beta = 1e+300" in d.message and (d.span.line, d.span.column) == (4, 17)
    assert [r["beta"] for r in _rows(tmp_path)] == [1.0]


def test_a_non_finite_regression_loss_names_the_learner(tmp_path, monkeypatch):
    """No legal option makes the L-CNN's loss overflow (lr <= 1 now: lr = 1e300 was a torch
    traceback); a planted NaN in the second learner checks the epoch check."""
    from physml_lang.runtime.gauge import lcnn

    monkeypatch.setattr(lcnn.PlainCNN, "forward", lambda self, U: (
        self.net[0].weight.sum() * float("nan")).expand(U.shape[0], 1))  # fmt: skip
    text = ("import U1\nlearner f = lcnn(channels = [2]) respecting gauge, translation\n"
            "learner g = gauge_cnn(channels = [2]) respecting translation\nrun r {\n"
            "    model U1(L = 4)\n    scan beta in [1.0]\n    regress f, g, target = "
            "wilson_loop(1, 1), samples = 16, test_samples = 8, test_L = [4], epochs = 2, "
            "sweeps = 1\n}\n")  # fmt: skip
    d = _refused(text, out=tmp_path)
    assert d.code == "P700" and "learner g" in d.message and "epoch 1 of 2" in d.message
    assert d.span.line == 4
    assert {r["learner"] for r in _rows(tmp_path)} == {"f"}
    bad = text.replace("sweeps = 1", "sweeps = 1, lr = 1e300")
    with pytest.raises(PhysmlError) as err:
        physml_lang.compile(bad).check()
    assert err.value.diagnostics[0].code == "P402"


def test_a_diverging_learned_rollout_is_counted_in_its_row_not_a_traceback():
    """A learned vector field that explodes: its rollout carries inf/NaN (it used to raise an
    EnergyBlowupError out of the row); the row counts it as diverged, and the means of the
    errors leave it out (undefined, null on disk, when every rollout diverged)."""
    import torch

    from physml_lang.catalogue.dynamics import RolloutOptions
    from physml_lang.runtime.dynamics.learners import MLPVectorField
    from physml_lang.runtime.dynamics.measures import evaluate_rollouts

    program = physml_lang.compile("import Pendulum\nrun r {\n    model Pendulum\n"
                                  "    initial q = 1.0, p = 0.0\n    evolve steps = 10\n}\n")  # fmt: skip
    cm = program.compile_ir(program.checker_for(program.runs["r"]).instantiate({}, {}))
    model = MLPVectorField(1, [8], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.net[-1].weight.mul_(1e150)
    q0 = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    ev = evaluate_rollouts(model, cm, RolloutOptions(count=2, horizon=4, steps=40), 0.1, q0,
                           torch.zeros_like(q0))  # fmt: skip
    assert ev.errors["diverged"] == 2
    assert np.isnan(ev.errors["rollout_energy_mse"]["mean"])


def test_occasional_divergences_are_rejected_not_fatal():
    """A divergent HMC proposal is rejected (the chain stays exact); only a chain whose
    proposals mostly diverge is reported, with its first divergent update and fraction."""
    import torch

    from physml_lang.runtime.divergences import Divergences

    d = Divergences(3, torch.device("cpu"))
    for t in range(10):
        d.record(torch.tensor([True, t != 4, t < 3]))  # chain 1: once; chain 2: from t = 3 on
        if t == 4:
            assert d.stuck() is None  # chain 2: 2 of 5 updates diverged
    assert d.stuck() == (3, 2, 0.7)
    ok = Divergences(2, torch.device("cpu"))
    for t in range(10):
        ok.record(torch.tensor([t % 3 != 0, True]))  # 4 of 10 diverge: rejected, not fatal
    assert ok.stuck() is None


@pytest.mark.parametrize("error", ["host", "cuda"])
def test_running_out_of_memory_anyway_is_a_p409_not_a_traceback(error, monkeypatch, capsys):
    """Past the estimates (another process took the memory), the host's MemoryError and CUDA's
    OutOfMemoryError are a P409 with exit code 1, not an internal error."""
    import torch

    from physml_lang import cli

    exc = MemoryError() if error == "host" else torch.cuda.OutOfMemoryError("CUDA out of memory")

    def dispatch(args):
        raise exc

    monkeypatch.setattr(cli, "_dispatch", dispatch)
    assert cli.main(["check", "x.phys"]) == 1
    err = capsys.readouterr().err
    assert "error[P409]" in err and "Traceback" not in err
    assert ("GPU" in err) == (error == "cuda")


@pytest.mark.parametrize("statement", ["iterations 99999999999999999999",
                                       "samples 99999999999999999999, final = 40"])
def test_counts_no_run_can_reach_are_refused_before_work(statement):
    """A VMC count beyond 2^40 (it ran forever, or overflowed the random streams' counters)
    is a located P421 (or P409, memory) before anything runs."""
    import physml_lang
    from physml_lang.diagnostics import PhysmlError

    src = ("import Heisenberg2D\nlearner psi = rbm(alpha = 1) respecting translation\n"
           "run r {\n    model Heisenberg2D(L = 4)\n    learner psi\n"
           "    sampler metropolis(chains = 10, move = exchange, magnetization = 0)\n"
           "    optimize psi via sr(lr = 0.02)\n    iterations 2\n    samples 20, final = 40\n"
           "    measure energy\n}\n")  # fmt: skip
    line = "iterations 2" if statement.startswith("iterations") else "samples 20, final = 40"
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(src.replace(line, statement)).run(out=None, device="cpu")
    d = err.value.diagnostics[0]
    assert d.code in ("P421", "P409") and d.span is not None
