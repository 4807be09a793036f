"""The landscape tasks end to end through the language: every evolution and optimiser writes
its rows, list-valued options become rows plus an extrapolation, ``--set`` reaches method and
optimise options, a scan runs each model, and failures are located with the rows kept."""

from __future__ import annotations

import json

import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError

PROGRAM = """
import DoubleWell, HarmonicOscillator, Hydrogen, Rastrigin

run ground { model DoubleWell
    evolve imaginary_time(points = [48, 64, 96], dtau = 0.01, steps = 1500, states = 2, levels = 2) }
run packet { model HarmonicOscillator(d = 2, L = 8)
    evolve real_time(points = 32, dt = 0.01, steps = 200, center = [1.0, 0.5], momentum = 1.0) }
run relax { model DoubleWell
    evolve fokker_planck(points = 64, D = 0.5, dtau = 2e-4, steps = 20000) }
run seed { model DoubleWell
    evolve taylor_diffusion(points = 64, D = 0.5, dtau = 1e-3, steps = 500) }
run walkers { model DoubleWell
    evolve langevin(walkers = 4000, D = 0.5, dtau = 0.01, steps = 400, burn_in = 0, adjust = true) }
run atom { model Hydrogen(alpha = 0.9)
    evolve dmc(walkers = 400, dtau = [0.04, 0.02, 0.01], steps = 300, burn_in = 100) }
run control { model HarmonicOscillator(d = 1)
    evolve dmc(walkers = [50, 100, 200], dtau = 0.05, steps = 600, burn_in = 100, trial = false) }
run search { model Rastrigin(d = 2)
    optimise f via mqhoa(k = 10), evaluations = 4000, restarts = 4, target = 0
    scan d in [1, 2] }
run anneal { model Rastrigin(d = 2)
    optimise f via simulated_annealing(chains = 4), evaluations = 2000, restarts = 2 }
run population { model Rastrigin(d = 2)
    optimise f via population_annealing(population = 50, sweeps = 2), evaluations = 2000 }
"""


@pytest.fixture(scope="module")
def program():
    return physml_lang.load(PROGRAM)


def test_imaginary_time_rows_and_extrapolation(program, tmp_path):
    res = program.run("ground", out=tmp_path)
    rows = res.rows
    grids = [r for r in rows if not r.get("extrapolated")]
    assert [(r["points"], r["state"]) for r in grids] == [(48, 0), (48, 1), (64, 0), (64, 1),
                                                          (96, 0), (96, 1)]  # fmt: skip
    for r in grids:  # the same grid H, diagonalised exactly
        assert r["energy"] == pytest.approx(r["exact"], abs=1e-7)
    extra = [r for r in rows if r.get("extrapolated")]
    assert len(extra) == 2 and extra[0]["energy"] == pytest.approx(grids[-2]["energy"], abs=1e-8)
    assert grids[0]["softmax_deviation"] < 1e-4  # eq. (23) up to the O(dtau^2) splitting error
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["complete"]
    assert (tmp_path / "softmax_48_points.png").exists()


def test_real_time_conserves_norm(program):
    (row,) = program.run("packet").rows
    assert row["norm_drift"] < 1e-12 and row["energy_drift"] < 1e-3


def test_fokker_planck_relaxes_and_seed_scheme_runs(program):
    (relax,) = program.run("relax").rows
    assert relax["l1_to_stationary"] < 1e-3 and relax["mass_drift"] < 1e-12
    (seed,) = program.run("seed").rows
    assert seed["stability"] == pytest.approx(0.5 * 1e-3 / (8 / 64) ** 2)


def test_langevin_histogram(program):
    (row,) = program.run("walkers", seed=3).rows
    assert row["p_value"] > 1e-3 and row["acceptance"] > 0.9


def test_dmc_rows_and_timestep_extrapolation(program):
    rows = program.run("atom").rows
    assert [r["dtau"] for r in rows] == [0.04, 0.02, 0.01, 0.0]
    zero = rows[-1]
    assert zero["extrapolated"] and zero["energy"]["stderr"] > 0
    # the trial exp(-0.9 r) is close to exact: a few mHa at most from -1/2
    assert abs(zero["energy"]["mean"] + 0.5) < 5 * zero["energy"]["stderr"] + 2e-3


def test_population_control_bias_is_extrapolated(program):
    """A list of walker counts: one row each and the 1/N -> 0 fit (oscillator: E0 = 1/2)."""
    rows = program.run("control").rows
    assert [r["walkers"] for r in rows] == [50, 100, 200, None]
    last = rows[-1]
    assert last["bias"] == "population" and last["extrapolated"]
    assert abs(last["energy"]["mean"] - 0.5) < 4 * last["energy"]["stderr"] + 0.01


def test_one_bias_at_a_time():
    src = """import Hydrogen
run r { model Hydrogen  evolve dmc(walkers = [100, 200], dtau = [0.02, 0.01]) }"""
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(src).run("r")
    assert err.value.diagnostics[0].code == "P402"
    assert "one bias at a time" in err.value.diagnostics[0].message


def test_optimise_scan_and_sets(program):
    rows = program.run("search").rows
    assert [r["d"] for r in rows] == [1, 2]
    for r in rows:
        assert r["success_rate"]["mean"] == 1.0 and r["best_f"] < 1e-4
        assert len(r["best_x"]) == r["d"]
    (one,) = program.run("search", sets={"d": 1, "restarts": 2, "k": 4}).rows
    assert one["restarts"] == 2
    (sa,) = program.run("anneal").rows
    assert sa["evaluations"] <= 2000 and sa["success_rate"] is None
    (pa,) = program.run("population").rows
    assert "log_z" in pa


def test_unknown_set_is_refused(program):
    with pytest.raises(PhysmlError) as err:
        program.run("search", sets={"kk": 3})
    assert err.value.diagnostics[0].code == "P205"


def test_population_explosion_is_located():
    """A potential unbounded below makes the population explode: P705 at the method."""
    src = """model Drop { coordinates x: real in [-5, 5]
        potential f = -x^2 * 50 }
    run dive { model Drop  evolve dmc(walkers = 200, dtau = 0.05, steps = 400, burn_in = 10,
                                      trial = false) }"""
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(src).run("dive")
    d = err.value.diagnostics[0]
    assert d.code == "P705" and d.span is not None and d.span.line == 3


def test_fokker_planck_step_above_limit_is_located():
    src = """model W { coordinates x: real in [-4, 4]
        potential f = (x^2 - 1)^2 }
    run relax { model W  evolve fokker_planck(points = 256, dtau = 0.01, steps = 10) }"""
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(src).run("relax")
    d = err.value.diagnostics[0]
    assert d.code == "P426" and "explicit Fokker-Planck limit" in d.message


def test_memory_is_estimated_before_the_grid(monkeypatch):
    """A 3D grid too large for the memory there is: P409 at the run, before any allocation."""
    from physml_lang.runtime import device

    monkeypatch.setattr(device, "available_memory", lambda dev: 64 << 20)
    src = """import HarmonicOscillator
run big {
    model HarmonicOscillator(d = 3)
    evolve imaginary_time(points = 200, states = 4)
}"""
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(src).run("big", device="cpu")
    d = err.value.diagnostics[0]
    assert d.code == "P409" and d.span.line == 2 and "memory" in d.message


def test_a_scan_of_a_grid_run_is_one_batch_with_the_same_numbers():
    """The potentials of every scan point evolve as one batch: the same levels as each point
    run alone (the oscillator's E_n = w (n + 1/2))."""
    src = """import HarmonicOscillator
run ho { model HarmonicOscillator(d = 1)
    evolve imaginary_time(points = 96, dtau = 0.01, steps = 1500, states = 2, tol = 0)
    scan w in [0.5, 1.0, 2.0] }"""
    program = physml_lang.load(src)
    rows = program.run("ho").rows
    assert [(r["w"], r["state"]) for r in rows] == [(w, k) for w in (0.5, 1.0, 2.0)
                                                    for k in (0, 1)]  # fmt: skip
    for w in (0.5, 2.0):
        alone = program.run("ho", sets={"w": w}).rows
        batched = [r for r in rows if r["w"] == w]
        for a, b in zip(alone, batched, strict=True):
            assert a["energy"] == pytest.approx(b["energy"], abs=1e-10)
            assert a["energy"] == pytest.approx(w * (a["state"] + 0.5), abs=1e-6)
