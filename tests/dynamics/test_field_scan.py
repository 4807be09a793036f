"""Continuous fields sampled at a temperature: scans of T or beta and of model parameters,
measured expressions and the helicity modulus of the XY model, validated against spin-wave
theory (low T), the high-temperature expansion and the BKT criterion (docs/references.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from scipy.special import i0, i1

import physml_lang
from physml_lang.api import load
from physml_lang.diagnostics import PhysmlError, RunInterrupted
from physml_lang.runtime.dynamics import field as field_task

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64

XY = """
import XY
run r {
    model XY(L = 6)
    sampler hmc(chains = 4, sweeps = 64, burn_in = 16, step_size = 0.1, n_steps = 8)
    scan T in [0.5, 2.0]
    measure e = energy / sites, abs_magnetization, helicity_modulus,
            c = sum(cos(theta[i] - theta[i + e0]) for i in sites) / sites
}
"""


def _error(src: str, run: str = "r", **kw) -> PhysmlError:
    with pytest.raises(PhysmlError) as exc:
        p = load(src)
        p.check() if not kw else p.run(run, **kw)
    return exc.value


def test_temperature_scan_writes_a_row_per_temperature(tmp_path):
    """One batch of chains x temperatures; rows on disk (summary.json, results.csv) hold T,
    every measure with its error bar, the acceptance and R-hat."""
    res = load(XY).run("r", seed=1, out=tmp_path)
    assert [r["T"] for r in res.rows] == [0.5, 2.0]
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["complete"] and on_disk["rows"] == json.loads(json.dumps(res.rows))
    assert on_disk["temperature"] == {"T": [0.5, 2.0]} and on_disk["params"]["J"] == 1.0
    assert (tmp_path / "results.csv").read_text().startswith("T,acceptance_mean")
    cold, hot = res.rows
    for r in res.rows:
        for name in ("e", "abs_magnetization", "helicity_modulus", "c"):
            assert math.isfinite(r[name]["mean"]) and r[name]["stderr"] >= 0, name
        assert 0.5 < r["acceptance"]["mean"] <= 1 and r["r_hat"] > 0
    assert cold["e"]["mean"] < hot["e"]["mean"] < 0  # colder: more ordered
    assert cold["helicity_modulus"]["mean"] > hot["helicity_modulus"]["mean"]
    assert (tmp_path / "plot.png").is_file()


def test_t_and_beta_are_the_same_weight():
    """scan beta in [0.5] samples what scan T in [2.0] does (same chains, same numbers);
    XY(J = 2) at T = 2 is XY(J = 1) at T = 1 with energies doubled (weight exp(-E/T))."""
    run = load(XY.replace("scan T in [0.5, 2.0]", "scan T in [2.0]")).run("r", seed=3).rows[0]
    beta = load(XY.replace("scan T in [0.5, 2.0]", "scan beta in [0.5]")).run("r", seed=3).rows[0]
    assert beta["beta"] == 0.5 and "T" not in beta
    for name in ("e", "abs_magnetization", "helicity_modulus", "c"):
        assert beta[name] == run[name], name
    unit = load(XY.replace("scan T in [0.5, 2.0]", "let T = 1.0")).run("r", seed=3).rows[0]
    double = load(XY.replace("XY(L = 6)", "XY(L = 6, J = 2)")
                  .replace("scan T in [0.5, 2.0]", "let T = 2.0")).run("r", seed=3).rows[0]  # fmt: skip
    assert double["T"] == 2.0 and unit["T"] == 1.0
    assert double["e"]["mean"] == pytest.approx(2 * unit["e"]["mean"], rel=1e-12)
    assert double["helicity_modulus"]["mean"] == pytest.approx(
        2 * unit["helicity_modulus"]["mean"], rel=1e-12)
    assert double["c"] == unit["c"]


def test_no_temperature_is_the_action_as_written():
    """A field run without T samples exp(-S): its rows equal those of T = 1, without a T column."""
    plain = load(XY.replace("scan T in [0.5, 2.0]", "")).run("r", seed=2).rows[0]
    unit = load(XY.replace("scan T in [0.5, 2.0]", "scan T in [1.0]")).run("r", seed=2).rows[0]
    assert "T" not in plain and unit["T"] == 1.0
    assert {k: v for k, v in unit.items() if k != "T"} == plain


def test_sets_resolve_scan_variables_parameters_and_options():
    """--set T collapses the scan, J is a model parameter, sweeps a sampler option (its old
    name samples still accepted, with a P403 warning); anything else is a P205 listing names."""
    res = load(XY).run("r", seed=0, sets={"T": 0.7, "J": 0.5, "sweeps": 40})
    assert [r["T"] for r in res.rows] == [0.7] and res.summary["params"]["J"] == 0.5
    assert res.summary["sampler"]["sweeps"] == 40
    with pytest.warns(Warning, match="P403"):
        old = load(XY).run("r", seed=0, sets={"T": 0.7, "J": 0.5, "samples": 40})
    assert old.rows == res.rows
    old_file = XY.replace("sweeps = 64", "samples = 64").replace("n_steps", "n_leapfrog")
    with pytest.warns(Warning, match="P403"):
        load(old_file).check()
    assert load(old_file).run("r", seed=0, sets={"T": 0.7, "J": 0.5, "sweeps": 40}).rows == res.rows
    e = _error(XY, sets={"Tc": 1.0})
    assert e.diagnostics[0].code == "P205" and "'T'" in (e.diagnostics[0].hint or "")


def test_parameter_and_temperature_scans_combine():
    src = XY.replace("scan T in [0.5, 2.0]", "scan T in [0.5, 2.0]\n    scan L in [4, 6]")
    rows = load(src).run("r", seed=0).rows
    assert [(r["L"], r["T"]) for r in rows] == [(4, 0.5), (4, 2.0), (6, 0.5), (6, 2.0)]


@pytest.mark.parametrize("change, code, text", [
    ("scan T in [0.5, 2.0]", "scan Tc in [0.5, 2.0]", "cannot scan 'Tc'"),
    ("scan T in [0.5, 2.0]", "scan T in [0.5, -2.0]", "positive"),
    ("scan T in [0.5, 2.0]", "scan T in [0.5]\n    scan beta in [1.0]", "either T or beta"),
    ("abs_magnetization,", "abs_magnetisation,", "unknown continuous-field observable"),
    ("/ sites,", "/ volume,", "unknown name 'volume'"),
    ("e = energy / sites,", "e = susceptibility / sites,", "measure it on its own"),
])  # fmt: skip
def test_static_errors_are_located(change, code, text):
    e = _error(XY.replace(change, code))
    assert text in e.diagnostics[0].message + (e.diagnostics[0].hint or "")
    assert e.diagnostics[0].span is not None and e.diagnostics[0].span.line >= 3


def test_helicity_modulus_needs_an_angle_field_and_rotation_symmetry():
    """phi^4 (a real field) and an XY model in an external field have no helicity modulus:
    check says so at the measure."""
    phi4 = ("import Phi4\nrun r {\n    model Phi4(L = 4)\n    sampler hmc(chains = 2)\n"
            "    measure helicity_modulus\n}\n")  # fmt: skip
    e = _error(phi4)
    assert e.diagnostics[0].code == "P414" and "angle" in e.diagnostics[0].message
    assert e.diagnostics[0].span.line == 5
    field = """
model XYh(L: int = 4, h: real = 0.1) {
    lattice square(L, L, boundary = periodic)
    field theta: angle on sites
    action S = -sum(cos(theta[i] - theta[j]) for (i, j) in bonds) - h * sum(cos(theta[i]) for i in sites)
}
run r {
    model XYh
    sampler hmc(chains = 2)
    measure helicity_modulus
}
"""
    e = _error(field)
    assert e.diagnostics[0].code == "P414" and "invariant" in e.diagnostics[0].message
    load(field.replace("h: real = 0.1", "h: real = 0.0")).check()


TRAP = """
import XY
run r {
    model XY(L = 16)
    sampler hmc(chains = 8, sweeps = 64, burn_in = 16, step_size = 0.05, n_steps = 12, start = START)
    let T = 0.2
    measure helicity_modulus
}
"""


def test_a_trapped_random_start_is_flagged():
    """At T = 0.2 a random start of 16 x 16 rotors quenches vortices and windings that HMC
    does not remove: the chains disagree (P702, hinting start = ordered) and the error bar of
    Upsilon says so; an ordered start samples spin waves, Upsilon ~ 1 - T/4. (The ordered
    start runs 128 sweeps: at 64 the split R-hat of its action, still relaxing from the ordered
    state, is 1.1 - 1.22 at every seed, so whether it crossed 1.2 was chance; at 128 it stays
    below 1.19 at seeds 0 - 9.)"""
    hot = load(TRAP.replace("START", "random")).run("r", seed=0)
    (w,) = hot.summary["warnings"]
    assert w["code"] == "P702" and "T = 0.2" in w["message"] and "start = ordered" in w["hint"]
    assert hot.rows[0]["helicity_modulus"]["stderr"] > 0.1
    cold = load(TRAP.replace("START", "ordered").replace("sweeps = 64, burn_in = 16",
                                                         "sweeps = 128, burn_in = 32")).run("r", seed=0)  # fmt: skip
    assert "warnings" not in cold.summary
    assert abs(cold.rows[0]["helicity_modulus"]["mean"] - 0.95) < 0.01


def test_twist_derivatives_equal_hand_written():
    """dS/dpsi = J sum sin(theta_x - theta_x+e), d2S/dpsi2 = J sum cos(...) along each axis
    (derived from the action; the sign of the first is irrelevant to Upsilon)."""
    cm = load("import XY\n").model("XY", L=5, J=1.3)
    t = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(4), dtype=F64)
    d1, d2 = cm.twist(t)
    for mu in range(2):
        diff = t - torch.roll(t, -1, mu + 1)
        torch.testing.assert_close(d1[:, mu].abs(), 1.3 * torch.sin(diff).sum((1, 2)).abs())
        torch.testing.assert_close(d2[:, mu], 1.3 * torch.cos(diff).sum((1, 2)))


def test_interrupted_field_scan_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    """Interrupt the second temperature point; --resume finishes with the numbers of an
    uninterrupted run (chains, random stream and series were checkpointed)."""
    src = XY.replace("scan T in [0.5, 2.0]", "scan L in [4, 6]")
    reference = load(src).run("r", seed=7).rows
    calls = {"n": 0}
    measure = field_task.FieldChains._measure

    def interrupted(self, k):
        calls["n"] += 1
        if calls["n"] == 64 + 30:  # inside the second point
            raise KeyboardInterrupt
        measure(self, k)

    monkeypatch.setattr(field_task.FieldChains, "_measure", interrupted)
    with pytest.raises(RunInterrupted) as exc:
        load(src).run("r", seed=7, out=tmp_path, checkpoint_seconds=0.0)
    assert exc.value.diagnostics[0].code == "P701" and "--resume" in exc.value.diagnostics[0].hint
    assert len(json.loads((tmp_path / "summary.json").read_text())["rows"]) == 1
    monkeypatch.setattr(field_task.FieldChains, "_measure", measure)
    done = load(src).run("r", seed=7, out=tmp_path, resume=True)
    assert done.summary["resumed"] and done.rows == reference
    assert not (tmp_path / "checkpoint.safetensors").exists()


# ---------------------------------------------------------------- physics (references.md)

SPIN_WAVES = """
import XY
run r {
    model XY(L = LSIZE)
    sampler hmc(chains = CHAINS, sweeps = SWEEPS, burn_in = 100, step_size = 0.05, n_steps = 12, jitter = 0.2,
                start = ordered)
    scan T in [0.1, 0.2, 10.0]
    measure e = energy / sites, helicity_modulus
}
"""


def _limits(L: int, chains: int, sweeps: int) -> list[dict]:
    src = SPIN_WAVES.replace("LSIZE", str(L)).replace("CHAINS", str(chains))
    return load(src.replace("SWEEPS", str(sweeps))).run("r", seed=0).rows


def _check_limits(rows: list[dict], N: int) -> None:
    """Spin waves (T -> 0): e = -2 + (T/2)(1 - 1/N) + T^2/16 (equipartition over the N - 1
    non-zero modes; the quartic term of the cosine in first order), allowed O(T^3) as T^3/4;
    Upsilon = 1 - T/4 up to O(T^2), allowed as T^2/8. High T: e = -2 I1(beta) / I0(beta) per
    site (independent bonds; loops correct it by O(beta^3) ~ 2.5e-4 at beta = 0.1), Upsilon
    -> 0."""
    for r in rows[:2]:
        T = r["T"]
        e, u = r["e"], r["helicity_modulus"]
        spin_waves = -2 + T / 2 * (1 - 1 / N) + T * T / 16
        assert abs(e["mean"] - spin_waves) < 4 * e["stderr"] + T**3 / 4, r
        assert abs(u["mean"] - (1 - T / 4)) < 4 * u["stderr"] + T * T / 8, r
    hot = rows[2]
    e, u = hot["e"], hot["helicity_modulus"]
    beta = 1 / hot["T"]
    assert abs(e["mean"] + 2 * i1(beta) / i0(beta)) < 4 * e["stderr"] + 1e-3, hot
    assert abs(u["mean"]) < 4 * u["stderr"] + 1e-3, hot


def test_xy_limits_spin_waves_and_high_temperature():
    """Seconds: L = 6, 8 chains per temperature (errors ~1e-3)."""
    _check_limits(_limits(6, 8, 300), 36)


@pytest.mark.slow
def test_xy_limits_spin_waves_and_high_temperature_precise():
    """L = 16, 16 chains x 2000 sweeps per temperature (errors ~1e-4)."""
    _check_limits(_limits(16, 16, 2000), 256)


@pytest.mark.slow
def test_xy_helicity_crosses_the_bkt_line_near_t_bkt():
    """The example (L = 16, fewer sweeps): Upsilon decreases with T and crosses 2T/pi between
    T_BKT = 0.893 and 1.0 (the finite-size crossing lies above T_BKT by ~1 / ln^2 L)."""
    rows = physml_lang.load(ROOT / "examples" / "xy_helicity.phys").run(
        "bkt", seed=0, sets={"sweeps": 1000, "burn_in": 300}).rows  # fmt: skip
    ups = [r["helicity_modulus"]["mean"] for r in rows]
    assert all(a > b for a, b in zip(ups, ups[1:]))
    gap = [u - 2 * r["T"] / math.pi for u, r in zip(ups, rows)]
    k = next(i for i, g in enumerate(gap) if g < 0)
    crossing = rows[k - 1]["T"] + (rows[k]["T"] - rows[k - 1]["T"]) * gap[k - 1] / (gap[k - 1] - gap[k])
    assert 0.893 < crossing < 1.0, crossing
