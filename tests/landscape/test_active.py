"""Active learning (``optimise f via gaussian_process(...)`` / ``ensemble(...)``): the surrogate,
the loop on M-LOOP's sinc cost, noisy and failing objectives, the experiment interface (a
Python callable and a command), warm starts, and the located errors of the plan."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang import cli
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.landscape.active import ActiveSettings, active_learning, latin_hypercube
from physml_lang.runtime.landscape.experiments import CommandExperiment, measure, parse_answer
from physml_lang.runtime.landscape.surrogates import GaussianProcess
from physml_lang.runtime.random import RandomStreams

F64 = torch.float64
P_STAR = (0.0, 0.1, -0.1)

PROGRAM = """
import MLoopSinc

model SincSimulation(a: real = 0.05, b: real = 0.05, c: real = -0.05) {
    coordinates x: real[3] in [-2, 2]
    potential f = -(exp(-2 * (x[0] - a)^2) + exp(-2 * (x[1] - b)^2) + exp(-2 * (x[2] - c)^2))
}

model Flat(d: int = 2) {
    coordinates x: real[d] in [-1, 1]
    potential f = sum(x[i]^2 for i in dims)
}

run gp { model MLoopSinc
    optimise f via gaussian_process(initial = 8), evaluations = 60, restarts = 2, target = -3,
        tol = 0.01 }
run noisy { model MLoopSinc
    optimise f via gaussian_process(initial = 8, local_every = 4), evaluations = 60, restarts = 2,
        target = -3, tol = 0.02, noise = 0.01 }
run warm { model MLoopSinc
    optimise f via gaussian_process(initial = 4, warm_start = SincSimulation,
        warm_evaluations = 60), evaluations = 60, restarts = 2, target = -3, tol = 0.01 }
run nets { model MLoopSinc
    optimise f via ensemble(initial = 8, members = 3, hidden = [16, 16], epochs = 60,
        candidates = 300), evaluations = 14, restarts = 1 }
run measured { model Flat
    optimise f via gaussian_process(initial = 4, candidates = 200), evaluations = 10 }
run annealed { model Flat
    optimise f via simulated_annealing(chains = 2), evaluations = 400, noise = 0.1 }
"""


@pytest.fixture(scope="module")
def program():
    return physml_lang.compile(PROGRAM)


def _sinc(x: torch.Tensor) -> torch.Tensor:
    return -torch.sinc(x - torch.tensor(P_STAR, dtype=x.dtype, device=x.device)).sum(-1)


def _box(n: int, half: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n,), -half, dtype=F64), torch.full((n,), half, dtype=F64)


# ------------------------------------------------------------------------- the experiment


def test_answers_are_parsed_and_malformed_ones_are_bad():
    assert parse_answer({"cost": 1.5, "uncer": 0.1}) == parse_answer({"cost": "1.5",
                                                                      "uncer": 0.1})  # fmt: skip
    assert parse_answer(2.0).cost == 2.0 and not parse_answer(2.0).bad
    for answer in ({"cost": 1.0, "bad": True}, {"uncer": 1.0}, {"cost": "nan"}, "text",
                   {"cost": 1.0, "uncer": -1.0}, {"cost": math.inf}, [1.0]):  # fmt: skip
        assert parse_answer(answer).bad, answer

    def broken(x):
        raise RuntimeError("laser unlocked")

    m = measure(broken, np.zeros(2))
    assert m.bad and "laser unlocked" in m.why


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "experiment.py"
    path.write_text("import json, sys, time\nx = json.load(sys.stdin)['params']\n" + body)
    return f"{sys.executable} {path}"


def test_a_command_gets_the_point_as_json_and_failures_are_bad(tmp_path):
    ok = CommandExperiment(_script(tmp_path, "print('log line')\n"
                                   "print(json.dumps({'cost': sum(v * v for v in x), "
                                   "'uncer': 0.5}))\n"), timeout=30)  # fmt: skip
    m = measure(ok, np.array([1.0, 2.0]))
    assert (m.cost, m.uncer, m.bad) == (5.0, 0.5, False)
    for body, why in (("sys.exit(3)\n", "exit status 3"), ("print('not json')\n", "not JSON"),
                      ("time.sleep(5)\n", "timed out")):  # fmt: skip
        m = measure(CommandExperiment(_script(tmp_path, body), timeout=0.5), np.zeros(2))
        assert m.bad and why in m.why
    m = measure(CommandExperiment("/nonexistent/measure --x"), np.zeros(1))
    assert m.bad and "could not start" in m.why


# ------------------------------------------------------------------------- the surrogate


def test_latin_hypercube_has_one_point_per_stratum():
    u = latin_hypercube(RandomStreams(3), 4, 10, 3, F64)
    assert u.shape == (4, 10, 3)
    strata = torch.sort(torch.floor(u * 10), dim=1).values
    assert torch.equal(strata, torch.arange(10, dtype=F64)[None, :, None].expand(4, 10, 3))


def test_gp_interpolates_a_smooth_function_and_learns_the_noise_level():
    s = RandomStreams(1)
    u = s.uniform((2, 40), F64).reshape(2, 40, 1)
    clean = torch.sin(6 * u[..., 0])
    y = clean + torch.tensor([0.0, 0.1], dtype=F64)[:, None] * s.normal((2, 40), F64)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[:, 35:] = False  # empty slots change nothing
    y[:, 35:] = 1e3
    gp = GaussianProcess(2, 1, torch.device("cpu"), F64)
    gp.fit(u, y, mask, torch.zeros_like(y), steps=150,
           draws=s.uniform((2, 3 * 3), F64).reshape(2, 3, 3))  # fmt: skip
    grid = torch.linspace(0.05, 0.95, 50, dtype=F64)[None, :, None].expand(2, 50, 1)
    mean, sd = gp.predict(grid)
    truth = torch.sin(6 * grid[..., 0])
    assert float((mean[0] - truth[0]).abs().max()) < 0.02
    assert float((mean[1] - truth[1]).abs().max()) < 0.15
    noise = gp.log_noise.exp().sqrt()
    assert float(noise[0]) < 0.01 and 0.05 < float(noise[1]) < 0.2
    assert bool((sd[1] > sd[0]).all())


# ------------------------------------------------------------------------- the loop


def test_gp_reaches_mloops_sinc_target_in_tens_of_evaluations():
    lower, upper = _box(3, 2.0)
    calls = []

    def f(x):
        calls.append(x.shape[0])
        return _sinc(x)

    res = active_learning(f, lower, upper, RandomStreams(0), runs=3, max_evaluations=80,
                          settings=ActiveSettings(initial=10), f_target=-3.0, tol=0.01)  # fmt: skip
    assert all(r.success for r in res)
    assert sum(calls) == sum(r.evaluations for r in res)  # every measurement counted
    for r in res:
        assert r.evaluations == r.evaluations_to_target <= 40
        assert abs(r.best_f + 3) < 0.01 and r.trace[-1][1] == r.best_f
        assert np.allclose(r.best_x.numpy(), P_STAR, atol=0.1)


def test_failed_measurements_are_not_values_and_are_steered_away_from():
    """f fails (nan) on a third of the box; the runs still find the minimum, and proposals
    after the design rarely land in the failing region."""
    lower, upper = _box(2, 2.0)
    target = torch.tensor([0.3, -0.2], dtype=F64)

    def f(x):
        v = ((x - target) ** 2).sum(-1)
        return torch.where(x[:, 0] > 0.7, torch.full_like(v, math.nan), v)

    res = active_learning(f, lower, upper, RandomStreams(2), runs=2, max_evaluations=40,
                          settings=ActiveSettings(initial=12, candidates=500))  # fmt: skip
    for r in res:
        assert r.best_f < 1e-3
        assert 1 <= r.extras["bad"] <= 12  # the design's share (1/3 of 12) plus a few


def test_restarts_are_independent_of_how_many_run_together():
    lower, upper = _box(3, 2.0)
    s = ActiveSettings(initial=6, candidates=300, fit_steps=30)
    two = active_learning(_sinc, lower, upper, RandomStreams(5), runs=2, max_evaluations=9,
                          settings=s)  # fmt: skip
    one = active_learning(_sinc, lower, upper, RandomStreams(5), runs=1, max_evaluations=9,
                          settings=s)  # fmt: skip
    assert torch.allclose(two[0].best_x, one[0].best_x, atol=1e-6)


# ------------------------------------------------------------------------- through the language


def test_gp_run_reaches_the_target_and_writes_its_row(program, tmp_path):
    r = program.run("gp", out=tmp_path)
    row = r.rows[0]
    assert row["method"] == "gaussian_process" and row["success_rate"]["mean"] == 1.0
    assert row["median_evaluations"] <= 40 and row["bad_evaluations"] == 0
    assert (tmp_path / "summary.json").is_file()


def test_noise_is_judged_on_the_noise_free_value(program):
    row = program.run("noisy").rows[0]
    assert row["success_rate"]["mean"] == 1.0
    assert abs(row["best_f"] + 3) < 0.02


def test_warm_start_from_a_simulation_runs_and_counts_only_real_evaluations(program):
    row = program.run("warm").rows[0]
    assert row["success_rate"]["mean"] == 1.0
    assert row["evaluations"] <= 60  # the 60 simulated evaluations are not in the budget


def test_ensemble_surrogate_runs(program):
    row = program.run("nets").rows[0]
    assert row["method"] == "ensemble" and row["evaluations"] == 14
    assert row["best_f"] < -1.5


def test_a_python_experiment_replaces_the_potential(program):
    seen = []

    def experiment(x):
        seen.append(np.array(x))
        if x[0] > 0.8:
            return {"bad": True}
        return {"cost": float(((x - 0.25) ** 2).sum()), "uncer": 0.001}

    row = program.run("measured", experiment=experiment).rows[0]
    assert len(seen) == 10 and row["evaluations"] == 10
    assert all(p.shape == (2,) and (np.abs(p) <= 1).all() for p in seen)
    assert row["bad_evaluations"] == sum(p[0] > 0.8 for p in seen)
    assert row["best_f"] == min(float(((p - 0.25) ** 2).sum()) for p in seen if p[0] <= 0.8)


def test_the_command_line_experiment(tmp_path, capsys):
    src = tmp_path / "flat.phys"
    src.write_text(PROGRAM)
    cmd = _script(tmp_path, "print(json.dumps({'cost': sum((v - 0.5) ** 2 for v in x)}))\n")
    rc = cli.main(["run", str(src), "--run", "measured", "--out", str(tmp_path / "out"),
                   "--quiet", "--experiment", cmd, "--experiment-timeout", "30"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "gaussian_process" in out and "evaluations = 10" in out


def test_noise_reaches_the_annealers_too(program):
    row = program.run("annealed").rows[0]
    assert row["best_f"] < 0  # the minimum of noisy values lies below the true f* = 0


# ------------------------------------------------------------------------- located errors


@pytest.mark.parametrize("statement, code, fragment", [
    ("optimise f via gaussian_process(initial = 20), evaluations = 20", "P426", "initial = 20"),
    ("optimise f via gaussian_process(warm_start = Nowhere), evaluations = 30", "P203",
     "Nowhere"),
    ("optimise f via gaussian_process(warm_start = Flat), evaluations = 30", "P432",
     "coordinates"),
    ("optimise f via gaussian_process(acquisition = greedy), evaluations = 30", "P40", ""),
    ("optimise f via ensemble(hidden = [0]), evaluations = 30", "P40", ""),
    ("optimise f via gaussian_process(), evaluations = 30, noise = -1", "P40", ""),
])  # fmt: skip
def test_plan_errors_are_located(statement, code, fragment):
    src = PROGRAM + f"\nrun bad {{ model MLoopSinc\n    {statement} }}\n"
    with pytest.raises(PhysmlError) as info:
        physml_lang.compile(src).check()
    d = info.value.diagnostics[0] if hasattr(info.value, "diagnostics") else info.value.diagnostic
    assert d.code.startswith(code) and fragment in d.message and d.span is not None


def test_an_experiment_needs_an_active_learner(program):
    with pytest.raises(PhysmlError) as info:
        program.run("annealed", experiment=lambda x: {"cost": 0.0})
    assert "P432" in str(info.value)
