"""The gauge capability through the language: compiled actions against the runtime, symmetry
checks, a small HMC run through the command line, learner symmetry errors, `physml check`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import physml_lang
from physml_lang.compiler.models.gauge import GaugeModel
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.gauge import exact, wilson_action

ROOT = Path(__file__).resolve().parents[2]

PLAQ = {
    "u1": "U[x, mu] * U[x + e_mu, nu] * conj(U[x + e_nu, mu]) * conj(U[x, nu])",
    "z2": "U[x, mu] * U[x + e_mu, nu] * U[x + e_nu, mu] * U[x, nu]",
    "su2": "U[x, mu] * U[x + e_mu, nu] * dagger(U[x + e_nu, mu]) * dagger(U[x, nu])",
}
RETR = {"u1": "re(P[x, mu, nu])", "z2": "P[x, mu, nu]", "su2": "re(trace(P[x, mu, nu])) / 2"}
LATTICE = {2: "square(L, L)", 3: "cubic(L, L, L)"}


def model_source(group: str, d: int, extra: str = "", beta: float = 1.3) -> str:
    return f"""
model G(L: int = 4, beta: real = {beta}) {{
    lattice {LATTICE[d]}
    field U: {group} on links
    plaquette P[x, mu, nu] = {PLAQ[group]}
    action S = -beta * sum({RETR[group]} for (x, mu, nu) in plaquettes){extra}
    symmetry gauge, translation
}}
"""


@pytest.mark.parametrize("group", ["u1", "z2", "su2"])
@pytest.mark.parametrize("d", [2, 3])
def test_compiled_action_equals_runtime_wilson_action(group: str, d: int) -> None:
    cm = physml_lang.compile(model_source(group, d)).compiled
    assert isinstance(cm, GaugeModel)
    assert cm.wilson_beta == pytest.approx(1.3, rel=1e-12)
    assert cm.plaquette_defs == {"P": "standard"}
    U, _ = cm.random_configuration(4, torch.Generator().manual_seed(7))
    ref = wilson_action(U, group, 1.3)
    # the expression evaluated from the declaration (not the matched runtime call)
    assert torch.allclose(cm.generic_action(U), ref, rtol=1e-12, atol=1e-10)
    assert torch.allclose(cm.action(U), ref, rtol=1e-12, atol=1e-10)


def test_2d_single_plaquette_form_and_stdlib_models() -> None:
    src = """
import U1
model Mine(L: int = 6, beta: real = 2.0) {
    lattice square(L, L)
    field U: u1 on links
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1])
    action S = -beta * sum(re(P[x]) for x in sites)
    symmetry gauge
}
"""
    p = physml_lang.load(src)
    cm = p.model("Mine")
    U, _ = cm.random_configuration(3, torch.Generator().manual_seed(1))
    assert torch.allclose(cm.generic_action(U), wilson_action(U, "u1", 2.0), rtol=1e-12)
    assert p.model("U1", L=6).wilson_beta == pytest.approx(2.0, rel=1e-14)


def test_non_wilson_action_is_generic() -> None:
    # a rectangle-improved term is gauge invariant but not the Wilson form
    extra = (" - 0.1 * sum(re(U[x, 0] * U[x + e0, 0] * U[x + 2 * e0, 1] * conj(U[x + e0 + e1, 0])"
             " * conj(U[x + e1, 0]) * conj(U[x, 1])) for x in sites)")  # fmt: skip
    cm = physml_lang.compile(model_source("u1", 2, extra)).compiled
    assert cm.wilson_beta is None
    assert "verified" in cm.describe()


def test_gauge_symmetry_verified_for_wilson_and_higgs() -> None:
    cm = physml_lang.compile(model_source("su2", 3)).compiled
    assert "gauge invariance verified" in cm.describe()
    src = (ROOT / "stdlib" / "gauge.phys").read_text()
    higgs = physml_lang.load(src).model("Z2Higgs", L=4)
    assert higgs.matter_domains == {"phi": "z2"}
    assert "2 term(s) symbolically" in higgs.describe()
    u1h = """
model U1Higgs(L: int = 4, beta: real = 1.0, kappa: real = 0.5) {
    lattice square(L, L)
    field U: u1 on links
    field phi: u1 on sites
    action S = -beta * sum(re(U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1]))
                           for x in sites)
               - kappa * sum(re(conj(phi[x]) * U[x, mu] * phi[x + e_mu]) for (x, mu) in links)
    symmetry gauge
}
"""
    assert "2 term(s) symbolically" in physml_lang.compile(u1h).compiled.describe()


def test_bare_link_term_is_a_located_p500() -> None:
    src = model_source("u1", 2, " + 0.5 * sum(re(U[x, 0]) for x in sites)")
    with pytest.raises(PhysmlError) as info:
        _ = physml_lang.compile(src).compiled
    diag = info.value.diagnostics[0]
    assert diag.code == "P500"
    assert "re(U[x, 0])" in diag.message
    line = src.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1 :].startswith("0.5 * sum(re(U[x, 0])")


def test_broken_higgs_coupling_is_p500() -> None:
    src = """
model H(L: int = 4, kappa: real = 0.5) {
    lattice square(L, L)
    field U: z2 on links
    field phi: spin on sites
    action S = -kappa * sum(phi[x] * U[x, mu] * phi[x + e_nu] for (x, mu) in links for nu)
    symmetry gauge
}
"""
    with pytest.raises(PhysmlError) as info:
        _ = physml_lang.compile(src).compiled
    assert info.value.diagnostics[0].code == "P500"


LEARNER_RUN = """
import U1
learner f = lcnn(channels = [2]) respecting gauge, translation
learner g = gauge_cnn(channels = [4]) respecting {respect}
run r {{
    model U1(L = 4)
    regress f, g, target = wilson_loop(1, 1), samples = 16, test_samples = 8, test_L = [6],
            epochs = 1, sweeps = 2
}}
"""


def test_learner_asked_for_gauge_it_cannot_respect() -> None:
    src = LEARNER_RUN.format(respect="gauge, translation")
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(src).check()
    diag = info.value.diagnostics[0]
    assert diag.code == "P501" and "cannot respect gauge" in diag.message
    assert src.splitlines()[diag.span.line - 1][diag.span.column - 1 :].startswith("gauge")


def test_learner_unknown_symmetry_and_tiny_regress_run(tmp_path: Path) -> None:
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(LEARNER_RUN.format(respect="gauge_invariance")).check()
    assert info.value.diagnostics[0].code == "P210"
    res = physml_lang.load(LEARNER_RUN.format(respect="translation")).run(out=tmp_path)
    assert {r["learner"] for r in res.rows} == {"f", "g"}
    assert (tmp_path / "table.md").exists() and (tmp_path / "generalisation.png").exists()


def test_small_u1_hmc_run_against_exact_torus(tmp_path: Path) -> None:
    src = tmp_path / "u1.phys"
    src.write_text("""
import U1
run small {
    model U1(L = 4, beta = 2.0)
    sampler hmc(step_size = 0.2, n_steps = 5, chains = 16, sweeps = 400, burn_in = 50)
    measure plaquette, Q2 = topological_charge^2
}
""")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out",
                           str(out), "--quiet"], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": ""}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert {"run", "params", "device", "seed", "rows", "complete"} <= set(s)
    assert s["complete"] and s["params"] == {"L": 4, "beta": 2.0}
    row = s["rows"][0]
    p, q2 = row["plaquette"], row["Q2"]
    assert abs(p["mean"] - exact.u1_plaquette_torus(2.0, 4)) < 4 * p["stderr"]
    assert abs(q2["mean"] - exact.u1_topological_susceptibility_torus(2.0, 4)) < 4 * q2["stderr"]
    assert math.isfinite(row["Q2"]["tau_int"])
    assert (out / "results.csv").exists()


def test_gauge_sampler_errors_are_located() -> None:
    src = """
import Z2
run r {
    model Z2(L = 4)
    sampler hmc(sweeps = 10)
}
"""
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(src).check()
    assert info.value.diagnostics[0].code == "P502"
    bad_opt = src.replace("hmc(sweeps = 10)", "heatbath(trajectories = 10)")
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(bad_opt).check()
    assert info.value.diagnostics[0].code == "P401"


@pytest.mark.parametrize("path", ["examples/u1_2d_hmc.phys", "examples/lcnn_wilson_loops.phys",
                                  "examples/su2_or_z2.phys", "stdlib/gauge.phys"])  # fmt: skip
def test_physml_check_examples_and_stdlib(path: str) -> None:
    done = physml_lang.load(ROOT / path).check()
    assert done
