"""Dynamics through the language: phase-space models, evolve, field sampling, learners."""

import json
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from physml_lang.api import load
from physml_lang.compiler.models.field import FieldModel
from physml_lang.compiler.models.phase_space import PhaseSpaceModel
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.dynamics.integrators import make_integrator
from physml_lang.runtime.dynamics.samplers import Phi4Action, XYAction, hmc
from physml_lang.runtime.dynamics.system import kepler, pendulum
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64

PENDULUM = """
model Pendulum(m: real = 1.3, l: real = 0.7, g: real = 3) {
    phase_space (q, p)
    hamiltonian H = p^2 / (2 * m * l^2) + m * g * l * (1 - cos(q))
    symmetry symplectic
}
"""


def _model(src: str, **params):
    return load(src).model(**params)


def _error(src: str, run: str | None = None, **kw) -> PhysmlError:
    with pytest.raises(PhysmlError) as exc:
        p = load(src)
        p.model() if run is None else p.run(run, **kw)
    return exc.value


def test_pendulum_equations_equal_hand_written():
    cm = _model(PENDULUM)
    assert isinstance(cm, PhaseSpaceModel) and cm.separable and cm.default_integrator == "leapfrog"
    q, p, m, l, g = sympy.symbols("q p m l g", real=True)
    H = p**2 / (2 * m * l**2) + m * g * l * (1 - sympy.cos(q))
    d = cm.derivation
    assert sympy.simplify(d.H - H) == 0
    assert sympy.simplify(d.qdot[0] - p / (m * l**2)) == 0
    assert sympy.simplify(d.pdot[0] + m * g * l * sympy.sin(q)) == 0
    ref = pendulum(1.3, 0.7, 3.0)
    gen = torch.Generator().manual_seed(0)
    qs, ps = torch.randn(64, 1, generator=gen, dtype=F64), torch.randn(64, 1, generator=gen, dtype=F64)  # fmt: skip
    for a, b in ((cm.system.hamiltonian, ref.hamiltonian), (cm.system.dH_dq, ref.dH_dq),
                 (cm.system.dH_dp, ref.dH_dp)):  # fmt: skip
        torch.testing.assert_close(a(qs, ps), b(qs, ps), rtol=1e-13, atol=1e-13)
    assert "dp/dt = -dH/dq" in cm.emit_sympy() and "def dH_dq" in cm.emit_torch()


KEPLER = """
import Kepler
run r { model Kepler(m = 1, G = 1)  initial q = [[1, 0], [-1, 0]], p = [[0, 0.5], [0, -0.5]]
        evolve dt = 0.01, steps = 10 }
"""


def test_kepler_equations_equal_hand_written():
    cm = load(KEPLER).model("Kepler", m=0.8, G=1.3)
    assert cm.shape == (2, 2) and cm.n == 4 and cm.separable
    x1, y1, x2, y2 = (sympy.Symbol(f"q_{i}_{a}", real=True) for i in range(2) for a in range(2))
    px1, py1, px2, py2 = (sympy.Symbol(f"p_{i}_{a}", real=True) for i in range(2) for a in range(2))
    m, G = sympy.symbols("m G", real=True)
    r = sympy.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2)
    H = (px1**2 + py1**2 + px2**2 + py2**2) / (2 * m) - G * m * m / r
    d = cm.derivation
    assert sympy.simplify(d.H - H) == 0
    for k, s in enumerate((x1, y1, x2, y2)):
        assert sympy.simplify(d.pdot[k] + sympy.diff(H, s)) == 0
    ref = kepler(0.8, 0.8, 1.3)
    gen = torch.Generator().manual_seed(1)
    qs, ps = torch.randn(64, 4, generator=gen, dtype=F64), torch.randn(64, 4, generator=gen, dtype=F64)  # fmt: skip
    for a, b in ((cm.system.hamiltonian, ref.hamiltonian), (cm.system.dH_dq, ref.dH_dq),
                 (cm.system.dH_dp, ref.dH_dp)):  # fmt: skip
        torch.testing.assert_close(a(qs, ps), b(qs, ps), rtol=1e-12, atol=1e-12)


NONSEP = """
model Bead(k: real = 1) {
    phase_space (q, p): real[2]
    hamiltonian H = (p[0]^2 + p[1]^2) * (1 + q[0]^2) / 2 + k * (q[0]^2 + q[1]^2) / 2 + p[0] * q[1]
}
"""


@pytest.mark.parametrize("src,model", [(PENDULUM, None), (KEPLER, "Kepler"), (NONSEP, None)])
def test_evolve_integrator_is_symplectic(src, model):
    """J^T Omega J = Omega for one step of the integrator the evolve task picks."""
    cm = load(src).model(model)
    integ = make_integrator(cm.default_integrator)
    n = cm.n
    gen = torch.Generator().manual_seed(2)
    z = 0.5 * torch.randn(2 * n, generator=gen, dtype=F64)
    if model == "Kepler":
        z = torch.tensor([1.0, 0.0, -1.0, 0.0, 0.0, 0.5, 0.0, -0.5], dtype=F64)

    def step(z):
        q, p = integ.step(cm.system, z[None, :n], z[None, n:], 0.05)
        return torch.cat([q[0], p[0]])

    J = torch.autograd.functional.jacobian(step, z)
    O = torch.zeros(2 * n, 2 * n, dtype=F64)
    O[:n, n:], O[n:, :n] = torch.eye(n), -torch.eye(n)
    torch.testing.assert_close(J.T @ O @ J, O, atol=1e-9, rtol=0)
    assert cm.default_integrator == ("implicit_midpoint" if src is NONSEP else "leapfrog")


def test_unused_pair_is_located():
    e = _error("""model M(k: real = 1) {
    phase_space (q, p): real[2]
    hamiltonian H = p[0]^2 / 2 + k * q[0]^2 / 2
}""")
    assert e.diagnostics[0].code == "P419" and "(q[1], p[1])" in e.diagnostics[0].message
    assert e.diagnostics[0].span.line == 3


def test_nondifferentiable_is_located():
    e = _error("""model M(k: real = 1) {
    phase_space (q, p)
    hamiltonian H = abs(p) + k * q^2 / 2
}""")
    assert e.diagnostics[0].code == "P313" and "not differentiable" in e.diagnostics[0].message
    assert (e.diagnostics[0].span.line, e.diagnostics[0].span.column) == (3, 21)


def test_blowup_step_is_located():
    src = PENDULUM + "run r { model Pendulum  initial q = 2.5, p = 0.0\n" \
                     "        evolve integrator = rk4, dt = 3.0, steps = 400 }"  # fmt: skip
    e = _error(src, "r")
    assert e.diagnostics[0].code == "P700" and "dt" in e.diagnostics[0].hint
    assert e.diagnostics[0].span.line == 8


def test_nonseparable_with_leapfrog_is_located():
    src = NONSEP + "run r { initial q = [1, 0], p = [0, 1]  evolve integrator = leapfrog, dt = 0.1 }"  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        load(src).check()
    assert exc.value.diagnostics[0].code == "P413" and "separable" in exc.value.diagnostics[0].message  # fmt: skip


def test_physml_run_evolve_writes_summary_and_npz(tmp_path):
    out = tmp_path / "out"
    from physml_lang.cli import main

    rc = main(["run", str(ROOT / "examples/pendulum_leapfrog_vs_rk4.phys"), "--set", "steps=1000",
               "--out", str(out), "--quiet"])  # the command, in-process (no second torch import) # fmt: skip
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert {"run", "params", "device", "seed", "rows", "complete"} <= set(s) and s["complete"]
    rows = {r["integrator"]: r for r in s["rows"]}
    assert set(rows) == {"leapfrog", "rk4"}
    for r in rows.values():
        assert {"mean", "stderr"} <= set(r["max_rel_energy_error"])
    with np.load(out / "trajectory_leapfrog.npz", allow_pickle=False) as f:
        assert f["q"].shape[1:] == (1, 1) and f["energy_error"].shape[0] == f["t"].shape[0]
    # leapfrog: bounded oscillation, O(dt^2) = 1e-2 here
    assert rows["leapfrog"]["max_rel_energy_error"]["mean"] < 1e-2
    assert (out / "energy_error.png").is_file()


PHI4 = """
import Phi4
run h {
    model Phi4(L = 6, kappa = 0.22, lam = 1.145)
    sampler hmc(chains = 8, sweeps = 250, burn_in = 50, step_size = 0.15, n_steps = 8)
    measure abs_magnetization, action_density
}
"""


def test_field_actions_equal_runtime_references():
    gen = torch.Generator().manual_seed(3)
    cm = load(PHI4).model("Phi4", L=6, kappa=0.22, lam=1.145)
    assert isinstance(cm, FieldModel)
    x = torch.randn(5, 6, 6, generator=gen, dtype=F64)
    ref = Phi4Action(0.22, 1.145)
    torch.testing.assert_close(cm.action(x), ref(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cm.grad(x), ref.grad(x), rtol=1e-12, atol=1e-12)
    xy = load("import XY\n").model("XY", L=5, J=1.1)
    t = torch.randn(4, 5, 5, generator=gen, dtype=F64)
    torch.testing.assert_close(xy.action(t), XYAction(1.1)(t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xy.grad(t), XYAction(1.1).grad(t), rtol=1e-12, atol=1e-12)


def test_hmc_via_language_agrees_with_runtime_sampler():
    res = load(PHI4).run("h", seed=5)
    row = res.rows[0]
    assert res.summary["task"] == "field_sample" and 0.5 < row["acceptance"]["mean"] <= 1
    streams = RandomStreams(11)
    ref = Phi4Action(0.22, 1.145)
    x0 = streams.normal((8, 6, 6), F64)
    r = hmc(ref, ref.grad, x0, streams, 250, 0.15, 8, burn_in=50,
            measure=lambda x: {"m": x.reshape(8, -1).mean(-1).abs()})  # fmt: skip
    e = binning_analysis(r.observables["m"].numpy())
    a = row["abs_magnetization"]
    assert abs(a["mean"] - e.mean) < 4 * np.hypot(a["stderr"], e.stderr), (a, e)
    assert a["tau_int"] >= 0.5


def test_field_sampler_errors():
    bad = PHI4.replace("sampler hmc(", "sampler hcm(")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    assert exc.value.diagnostics[0].code == "P206" and "hmc" in (exc.value.diagnostics[0].hint or "")  # fmt: skip
    bad = PHI4.replace("abs_magnetization,", "energy_per_spin,")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    assert exc.value.diagnostics[0].code == "P208"


LEARN = """
import MassSpring
learner H_net = hnn(hidden = [16]) respecting symplectic
learner baseline = mlp(hidden = [16])
learner S_net = sympnet(layers = 2, width = 8)
run fit {
    model MassSpring
    trajectories count = 6, points = 16, t_span = 3.0, noise = 0.0
    train H_net, baseline via derivative_mse(steps = 30, lr = 1e-2)
    train S_net via step_mse(steps = 30, lr = 1e-2)
    rollout count = 3, horizon = 5, steps = 25
}
"""


def test_learn_dynamics_runs_and_writes(tmp_path):
    res = load(LEARN).run("fit", out=tmp_path, seed=0)
    rows = {r["learner"]: r for r in res.rows}
    assert set(rows) == {"H_net", "baseline", "S_net"}
    assert rows["H_net"]["integrator"] == "implicit_midpoint"
    assert rows["baseline"]["integrator"] == "rk4" and rows["S_net"]["integrator"] == "sympnet"
    for r in rows.values():
        assert np.isfinite(r["rollout_energy_mse"]["mean"])
    assert (tmp_path / "rollout.png").is_file() and (tmp_path / "H_net.safetensors").is_file()


def test_learner_errors_are_located():
    bad = LEARN.replace("mlp(hidden = [16])", "mlp(hidden = [16]) respecting symplectic")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    assert exc.value.diagnostics[0].code == "P501"
    bad = LEARN.replace("train S_net via step_mse", "train S_net via derivative_mse")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    assert exc.value.diagnostics[0].code == "P413" and "step_mse" in exc.value.diagnostics[0].hint
    bad = LEARN.replace("hnn(hidden = [16])", "hnn(hiden = [16])")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    assert exc.value.diagnostics[0].code == "P401"


def test_learn_from_loaded_npz(tmp_path):
    t = np.linspace(0, 3, 20)
    q0 = np.linspace(0.2, 1.0, 5)[:, None]
    q = q0 * np.cos(t)[None, :]
    p = -q0 * np.sin(t)[None, :]
    np.savez(tmp_path / "orbits.npz", t=t, q=q[..., None], p=p[..., None])
    src = LEARN.replace("trajectories count = 6, points = 16, t_span = 3.0, noise = 0.0",
                        'trajectories load("orbits.npz")').replace(
        "    train S_net via step_mse(steps = 30, lr = 1e-2)\n", "")  # fmt: skip
    (tmp_path / "l.phys").write_text(src)
    res = load(tmp_path / "l.phys").run("fit", seed=0)
    assert res.summary["data"]["trajectories"] == 5 and len(res.rows) == 2


@pytest.mark.parametrize("name", ["pendulum_leapfrog_vs_rk4", "hnn_mass_spring", "kepler_hnn", "pendulum_hnn",
                                  "phi4_hmc", "xy_helicity"])  # fmt: skip
def test_examples_check(name):
    done = load(ROOT / "examples" / f"{name}.phys").check()
    assert any(line.startswith("run ") for line in done)


def test_stdlib_models_check():
    src = "import MassSpring, Pendulum, Kepler, NBody, Phi4, XY\n"
    p = load(src)
    for name in ("MassSpring", "Pendulum", "Kepler", "NBody", "Phi4", "XY"):
        cm = p.model(name)
        assert cm.describe()
    assert p.model("NBody", N=4).n == 8


# ---------------------------------------------------------------- check without torch

EXAMPLES = ("pendulum_leapfrog_vs_rk4", "hnn_mass_spring", "kepler_hnn", "pendulum_hnn", "phi4_hmc",
            "xy_helicity")

def test_compiled_models_build_on_their_derivations():
    """PhaseSpaceModel and FieldModel hold the torch-free derivation and say what it says."""
    from physml_lang.compiler.derive.field import FieldDerivation
    from physml_lang.compiler.derive.phase_space import PhaseSpaceDerivation

    p = load("import Pendulum, Kepler, NBody, Phi4, XY\n")
    for name in ("Pendulum", "Kepler", "NBody", "Phi4", "XY"):
        ir = p.instantiate(name)
        derived, cm = p.derive(ir), p.compile_ir(ir)
        assert isinstance(derived, FieldDerivation | PhaseSpaceDerivation)
        assert isinstance(cm.derived, type(derived))
        assert derived.describe() == cm.describe() and derived.emit_sympy() == cm.emit_sympy()
    cm = p.model("Pendulum")
    assert cm.derivation is cm.derived.equations and cm.derived.lattice is None
    assert p.derive(p.instantiate("Phi4")).lattice.shape == (16, 16)


@pytest.mark.parametrize("src,code,line", [
    ("phase_space (q, p): real[2]\n    hamiltonian H = p[0]^2 / 2 + k * q[0]^2 / 2", "P419", 3),
    ("phase_space (q, p)\n    hamiltonian H = abs(p) + k * q^2 / 2", "P313", 3),
    ("phase_space (q, p)\n    hamiltonian H = p^2 / 2 + k * q^2 / 2\n    symmetry translation",
     "P501", 4),
])  # fmt: skip
def test_model_errors_are_found_by_check(src, code, line):
    """Unused canonical pairs, non-differentiable pieces and unsupported symmetries: static."""
    with pytest.raises(PhysmlError) as exc:
        load(f"model M(k: real = 1) {{\n    {src}\n}}\n").check()
    assert exc.value.diagnostics[0].code == code and exc.value.diagnostics[0].span.line == line


def test_hnn_rollout_integrator_needs_a_separable_learner_at_check():
    """A rollout integrator that needs H = T(p) + V(q) with a (non-separable) hnn: located at
    the rollout's integrator by check, before any training."""
    bad = LEARN.replace("rollout count = 3,", "rollout integrator = leapfrog, count = 3,")
    with pytest.raises(PhysmlError) as exc:
        load(bad).check()
    d = exc.value.diagnostics[0]
    assert d.code == "P413" and "H_net is not separable" in d.message and d.span.line == 11
    separable = bad.replace("hnn(hidden = [16])", "hnn(hidden = [16], separable = true)")
    with pytest.raises(PhysmlError) as exc:  # the mlp baseline has no Hamiltonian at all
        load(separable).check()
    d = exc.value.diagnostics[0]
    assert "baseline is not separable" in d.message and "rk4" in d.hint
    load(separable.replace("train H_net, baseline via", "train H_net via")).check()
