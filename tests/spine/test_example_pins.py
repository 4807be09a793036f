"""Every example, shrunk, pinned: the rows each run block writes with small settings and seed 0.

A restructuring must keep these results. Each pinned row is compared with a fresh run:
observables with an error bar within 4 combined standard errors, exact results (error bar 0:
exact diagonalisation, deterministic integrators) to 1e-6 relative, and unmeasured training
outputs (loss, coupling error: no error bar) to 10 % relative. ``PHYSML_PINS_EXACT=1`` demands
the same numbers to 1e-9 relative, for refactors that must not change a single operation.

Regenerate deliberately with ``PHYSML_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

import physml_lang

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "tests" / "golden" / "pins"

# (example, run block, --set values): small enough that every case takes seconds
CASES: list[tuple[str, str | None, dict]] = [
    ("ising2d", "scan", {"L": 8, "sweeps": 200, "burn_in": 50}),
    ("ising_tempering", "tempering", {"L": 8, "sweeps": 200, "burn_in": 50}),
    ("potts", "scan", {"L": 6, "sweeps": 200, "burn_in": 50}),
    ("spin_glass", "anneal", {"N": 32, "sweeps": 100, "burn_in": 50}),
    ("rbm_ising", "mc", {"sweeps": 200, "burn_in": 50}),
    ("rbm_ising", "rbm", {"T": 3.0, "epochs": 2}),
    ("hopfield_capacity", "capacity", {"N": 200, "P": 20}),
    ("inverse_ising", "couplings", {"n": 250, "epochs": 2}),
    ("boltzmann_machine", "fit", {"Nh": 2, "epochs": 2}),
    ("rbm_digits", "fit", {"epochs": 1}),
    ("heisenberg_2d", "exact", {}),
    ("heisenberg_2d", "symmetric", {"iterations": 5, "samples": 200, "final_samples": 1000}),
    ("heisenberg_chain_rnn", "exact", {}),
    ("heisenberg_chain_rnn", "ground_state",
     {"iterations": 2, "samples": 64, "final_samples": 128, "pretrain": 2}),
    ("j1j2_chain_phase", "exact", {}),
    ("j1j2_chain_phase", "complex", {"iterations": 5, "final_samples": 500}),
    ("tfim", "spectrum", {}),
    ("tfim", "ground_state", {"iterations": 5, "final_samples": 1000, "L": 10}),
    ("hnn_mass_spring", "hnn_vs_mlp", {"steps": 30}),
    ("kepler_hnn", None, {"steps": 30}),
    ("pendulum_hnn", None, {"steps": 30}),
    ("pendulum_leapfrog_vs_rk4", "leapfrog_vs_rk4", {"steps": 1000}),
    ("phi4_hmc", "hmc_scan", {"L": 8, "sweeps": 50, "burn_in": 10}),
    ("xy_helicity", "bkt", {"L": 6, "chains": 8, "sweeps": 256, "burn_in": 128}),
    ("u1_2d_hmc", "hmc_l8", {"sweeps": 60, "burn_in": 10}),
    ("su2_or_z2", "z2_2d", {"sweeps": 40, "burn_in": 10, "L": 8}),
    ("su2_or_z2", "su2_2d", {"sweeps": 40, "burn_in": 10, "L": 8}),
    ("su2_or_z2", "su2_4d", {"sweeps": 20, "burn_in": 5}),
    ("z2_higgs", "beta0", {"sweeps": 40, "burn_in": 10}),
    ("z2_higgs", "kappa0", {"sweeps": 40, "burn_in": 10}),
    ("z2_higgs", "mixed", {"sweeps": 40, "burn_in": 10}),
    ("lcnn_wilson_loops", None,
     {"epochs": 3, "samples": 64, "test_samples": 32, "beta": 1.0}),
    ("van_ising", "van", {"L": 4, "steps": 30, "batch": 100, "samples": 2000}),
    ("quantum_levels", "double_well", {"points": [32, 48, 64], "steps": 800}),
    ("fokker_planck_double_well", "walkers", {"walkers": 2000, "steps": 200}),
    ("dmc_hydrogen", "guided", {"walkers": 300, "steps": 200, "burn_in": 50}),
    ("optimisers_ackley", "mqhoa", {"restarts": 4, "evaluations": 5000}),
    ("sk_annealing", "small", {"N": 12, "sweeps": 100, "restarts": 4}),
    ("kepler_law", "planets", {}),
    ("pendulum_law", "small_angle", {"points": 601, "t_span": 12.0}),
    ("sindy_pendulum", "pendulum", {}),
    ("interaction_network", "springs", {"steps": 30}),
    ("learned_schrodinger", "learn", {"steps": 20, "horizon": 2, "test": 4}),
    ("winding_numbers", "winding", {"samples": 50, "tests": 20, "epochs": 1}),
    ("microscope_impurities", "impurities", {"samples": 50, "tests": 20, "epochs": 1}),
    ("ising_phases", "confusion", {"sweeps": 20, "burn_in": 50, "epochs": 1}),
    ("conserved_quantities", "oscillator", {}),
    ("collisions", "collisions", {}),
    ("active_learning", "branin", {"restarts": 2, "evaluations": 20}),
]  # fmt: skip

EXACT = os.environ.get("PHYSML_PINS_EXACT") == "1"
UPDATE = os.environ.get("PHYSML_UPDATE_GOLDEN") == "1"


def _pin_path(example: str, run: str | None) -> Path:
    return PINS / f"{example}.{run or 'default'}.json"


def _same(pinned, fresh, where: str) -> None:
    """Compare a pinned value with a fresh one by the rules in the module docstring."""
    if isinstance(pinned, dict) and "mean" in pinned:
        assert isinstance(fresh, dict) and "mean" in fresh, where
        a, b = pinned["mean"], fresh["mean"]
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
            assert (a is None) == (b is None), where
            return
        if EXACT:
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a} != {b}"
            return
        se_a, se_b = pinned.get("stderr"), fresh.get("stderr")
        if se_a is None or se_b is None:
            assert math.isclose(a, b, rel_tol=0.1, abs_tol=1e-3), f"{where}: {a} vs {b}"
        elif se_a == 0 and se_b == 0:
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {a} vs {b}"
        else:
            tol = 4 * math.hypot(se_a, se_b) + 1e-9
            assert abs(a - b) <= tol, f"{where}: {a} vs {b} (4 sigma = {tol:.3g})"
        return
    if isinstance(pinned, dict):
        for k, v in pinned.items():
            if k in ("r_hat", "chain_excess", "acceptance", "tau_int", "relative"):
                continue  # diagnostics of the chains, not results
            assert k in fresh, f"{where}: column '{k}' is gone"
            _same(v, fresh[k], f"{where}.{k}")
    elif isinstance(pinned, list) and pinned and all(isinstance(x, float) for x in pinned):
        assert len(pinned) == len(fresh), where
        for i, (x, y) in enumerate(zip(pinned, fresh)):
            assert math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9), f"{where}[{i}]: {x} vs {y}"
    elif isinstance(pinned, str | bool | int) and not isinstance(pinned, float):
        assert pinned == fresh, f"{where}: {pinned!r} vs {fresh!r}"


@pytest.mark.parametrize(
    "example, run, sets", CASES, ids=[f"{e}-{r or 'default'}" for e, r, _ in CASES]
)
def test_example_reproduces_its_pinned_rows(example: str, run: str | None, sets: dict, tmp_path):
    if example == "rbm_digits":
        pytest.importorskip("sklearn")
    program = physml_lang.load(ROOT / "examples" / f"{example}.phys")
    result = program.run(run, sets=sets, seed=0, out=tmp_path / "out")
    rows = json.loads(json.dumps(result.rows, default=str))
    path = _pin_path(example, run)
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"sets": sets, "rows": rows}, indent=1) + "\n")
        if not UPDATE:
            pytest.fail(f"no pin for {example}/{run}: written to {path}; review and commit it")
        return
    pinned = json.loads(path.read_text())
    assert len(pinned["rows"]) == len(rows), "number of rows changed"
    for i, (p, f) in enumerate(zip(pinned["rows"], rows)):
        _same(p, f, f"{example}/{run} row {i}")
