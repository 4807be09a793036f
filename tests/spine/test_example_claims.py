"""The numbers an example's header claims are the numbers the example prints.

Each example that quotes results has a block in its header::

    # Claims (seed 0, this file as written; tests/spine/test_example_claims.py checks them):
    #   hmc_scan, kappa = 0.2: acceptance = 0.886 ± 0.003, abs_magnetization = 0.0740 ± 0.0018

A line selects a row: the run block's name (optional when the file has one run) and the values
of the scan variables, then a colon (no selection and no colon where the only run writes one
row); then ``column = value`` or ``column = value ± stderr``. Runs are
deterministic at a fixed seed on the CPU, so a claim must equal the fresh number to the digits it
is written with (one unit of its last digit, which allows rounding), error bars included. The
test runs each example as written, which takes minutes: examples that finish within about a
minute run in the slow stage of CI, the others are ``long`` (``scripts/long.sh``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import physml_lang
from physml_lang.tools.reference_docs import NUMBER, Claim, claims
from physml_lang.tools.reference_docs import last_digit_unit as _unit
from physml_lang.tools.reference_docs import to_float as _float

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# wall time of the full example on one CPU core (the slow stage's share: about 10 minutes)
QUICK = {  # seconds, measured on a shared 2-core machine
    "ising2d": 30, "phi4_hmc": 15, "kepler_hnn": 95, "tfim": 27, "j1j2_chain_phase": 13,
    "pendulum_leapfrog_vs_rk4": 29, "hopfield_capacity": 10, "pendulum_hnn": 25, "u1_2d_hmc": 53,
    "van_ising": 40, "quantum_levels": 20, "softmax_levels": 5,
    "fokker_planck_double_well": 7, "dmc_hydrogen": 18, "optimisers_ackley": 15,
    "sk_annealing": 25, "kepler_law": 12, "pendulum_law": 12, "sindy_pendulum": 5,
    "interaction_network": 75, "winding_numbers": 35, "chern_numbers": 45, "ising_phases": 120,
    "active_learning": 100, "conserved_quantities": 10, "collisions": 4, "ising_tempering": 12,
}  # fmt: skip
# learned_schrodinger and microscope_impurities run in the slow stage as physics tests
# (tests/propagation/test_propagation_slow.py, tests/topology/test_validation_slow.py); their
# claims are checked with the long ones

CLAIMED = {p.stem: claims(p) for p in sorted(EXAMPLES.glob("*.phys"))}
CASES = [
    pytest.param(name, run, marks=[pytest.mark.slow]
                 + ([] if name in QUICK else [pytest.mark.long]), id=f"{name}-{run or 'default'}")
    for name, cs in CLAIMED.items() for run in sorted({c.run or "" for c in cs})
]  # fmt: skip


def _selects(value, wanted: float | str) -> bool:
    if isinstance(wanted, str):
        return str(value) == wanted
    return isinstance(value, int | float) and abs(value - wanted) <= 1e-9 * max(1, abs(wanted))


def _row(rows: list[dict], claim: Claim) -> dict:
    found = [r for r in rows if all(_selects(r.get(k), v) for k, v in claim.where.items())]
    assert len(found) == 1, f"line {claim.line}: {claim.where} selects {len(found)} rows"
    return found[0]


def _check(claim: Claim, row: dict, name: str) -> list[str]:
    assert claim.column in row, f"{name}:{claim.line}: no column '{claim.column}' in the results"
    cell = row[claim.column]
    mean, stderr = (cell["mean"], cell.get("stderr")) if isinstance(cell, dict) else (cell, None)
    bad = []
    if abs(mean - _float(claim.value)) > _unit(claim.value) * 1.0001:
        bad.append(f"{name}:{claim.line}: {claim.column} = {claim.value} claimed, {mean:.6g} "
                   "printed")  # fmt: skip
    if claim.err is not None and (stderr is None
                                  or abs(stderr - _float(claim.err)) > _unit(claim.err) * 1.0001):
        bad.append(f"{name}:{claim.line}: {claim.column} ± {claim.err} claimed, ± {stderr} printed")
    return bad


def test_claims_are_readable_and_name_runs_of_their_file():
    """Every claims block parses, names existing run blocks, and is non-empty."""
    for name, cs in CLAIMED.items():
        runs = set(physml_lang.load(EXAMPLES / f"{name}.phys").runs)
        for c in cs:
            assert c.run is None or c.run in runs, f"{name}:{c.line}: no run '{c.run}'"
            assert c.run is not None or len(runs) == 1, f"{name}:{c.line}: which run?"
    assert CLAIMED["ising2d"] and CLAIMED["phi4_hmc"] and CLAIMED["kepler_hnn"]


def test_the_flagship_numbers_in_the_readme_are_its_claims():
    """The README quotes the flagship's u(T), |m|(T) and c(T) with error bars: the same
    numbers as the example's claims."""
    readme = (ROOT / "README.md").read_text()
    quoted = re.findall(rf"(u|\\\|m\\\||c)\((\d\.\d)\) = ({NUMBER}) ± ({NUMBER})", readme)
    assert len(quoted) >= 4, quoted
    column = {"u": "energy_per_site", "\\|m\\|": "abs_magnetization", "c": "specific_heat"}
    claimed = {(c.column, c.where["T"]): (c.value, c.err) for c in CLAIMED["ising2d"]}
    for sym, t, value, err in quoted:
        key = (column[sym], float(t))
        assert key in claimed, f"README quotes {sym}({t}), which ising2d.phys does not claim"
        assert (_float(value), _float(err)) == tuple(map(_float, claimed[key])), key


@pytest.mark.parametrize("name, run", CASES)
def test_example_prints_what_its_header_claims(name: str, run: str, tmp_path, record_property):
    if name == "rbm_digits":
        pytest.importorskip("sklearn")
    program = physml_lang.load(EXAMPLES / f"{name}.phys")
    result = program.run(run or None, seed=0, out=tmp_path / "out", device="cpu")
    rows = json.loads(json.dumps(result.rows, default=str))
    bad = []
    for claim in CLAIMED[name]:
        if (claim.run or "") == run:
            row = _row(rows, claim)
            cell = row.get(claim.column)
            where = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                              for k, v in claim.where.items()) or run or name  # fmt: skip
            if isinstance(cell, dict):
                cell = f"{cell['mean']:.6g}" + (f" ± {cell['stderr']:.2g}"
                                                if cell.get("stderr") is not None else "")  # fmt: skip
            record_property(f"{where}: {claim.column}", cell)
            bad += _check(claim, row, f"{name}.phys")
    assert not bad, "\n".join(bad)
