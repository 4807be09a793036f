"""The quantum capability through the language: compiled Pauli sums, ED, checks, a tiny VMC run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from physml_lang.api import load
from physml_lang.compiler.derive.pauli import heisenberg, j1j2, tfim
from physml_lang.compiler.geometry import make_lattice
from physml_lang.compiler.models.quantum import QuantumModel
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.quantum.exact import exact_expectation, exact_spectrum
from physml_lang.runtime.quantum.operator import LocalOperator

ROOT = Path(__file__).resolve().parents[2]


def lattice_bonds(kind, sizes, boundary="periodic", shell=1):
    lat = make_lattice(kind, sizes, boundary)
    out = []
    for o in lat.shells[shell]:
        idx, valid = lat.neighbour_table(o)
        out += [(i, int(idx[i])) for i in range(lat.n_sites) if valid[i]]
    return np.array(out)


MODEL = """
model M(L: int = 4, g: real = 0.7, J: real = 1.0, D: real = 0.5) {{
    lattice {lattice}
    field s: qubit on sites
    hamiltonian H = {h}
    {extra}
}}
"""
TFIM_H = "-J * sum(Z[i] * Z[j] for (i, j) in bonds) - g * sum(X[i] for i in sites)"
HEIS_H = "J * sum(X[i] * X[j] + Y[i] * Y[j] + Z[i] * Z[j] for (i, j) in bonds)"


def compile_model(lattice, h, extra="", **params) -> QuantumModel:
    qm = load(MODEL.format(lattice=lattice, h=h, extra=extra)).model("M", **params)
    assert isinstance(qm, QuantumModel)
    return qm


CASES = [
    ("chain(L, boundary = periodic)", "chain", [5], "periodic"),
    ("chain(L, boundary = open)", "chain", [5], "open"),
    ("square(L, L, boundary = periodic)", "square", [3, 3], "periodic"),
    ("square(3, 4, boundary = open)", "square", [3, 4], "open"),
    ("triangular(L, L)", "triangular", [3, 3], "periodic"),
    ("cubic(L, L, L)", "cubic", [3, 3, 3], "periodic"),
]


@pytest.mark.parametrize("decl,kind,sizes,boundary", CASES)
def test_compiled_pauli_sum_equals_builders(decl, kind, sizes, boundary):
    L = 5 if kind == "chain" else 3
    bonds = lattice_bonds(kind, sizes, boundary)
    n = int(np.prod(sizes))
    qm = compile_model(decl, TFIM_H, L=L)
    assert (qm.hamiltonian - tfim(n, bonds, 0.7)).is_zero()
    qm = compile_model(decl, HEIS_H, L=L)
    assert (qm.hamiltonian - heisenberg(n, bonds)).is_zero()


def test_xxz_ladder_operators_and_j1j2():
    bonds = lattice_bonds("chain", [6])
    h = "J * sum(2 * (Sp[i] * Sm[j] + Sm[i] * Sp[j]) + 4 * D * Sz[i] * Sz[j] for (i, j) in bonds)"
    qm = compile_model("chain(L)", h, L=6)
    from physml_lang.compiler.derive.pauli import xxz

    assert (qm.hamiltonian - xxz(6, bonds, 0.5)).is_zero()
    h2 = "sum(SS[i, j] for (i, j) in bonds) + D * sum(SS[i, j] for (i, j) in bonds(2))"
    extra = "let SS[i, j] = X[i] * X[j] + Y[i] * Y[j] + Z[i] * Z[j]"
    qm = compile_model("square(L, L)", h2, extra, L=4)
    ref = j1j2(16, lattice_bonds("square", [4, 4]), lattice_bonds("square", [4, 4], shell=2), 0.5)
    assert (qm.hamiltonian - ref).is_zero()


def test_shifted_indices_and_complex_coefficients():
    # Z[i] Z[i + e0] over sites equals the bond sum; a complex, Hermitian DM-like term compiles.
    a = compile_model(
        "square(L, L)", "sum(Z[i] * Z[i + e0] + Z[i] * Z[i + e1] for i in sites)", L=3
    )
    b = compile_model("square(L, L)", "sum(Z[i] * Z[j] for (i, j) in bonds)", L=3)
    assert (a.hamiltonian - b.hamiltonian).is_zero()
    dm = "sum(2j * (Sp[i] * Sm[j] - Sm[i] * Sp[j]) for (i, j) in bonds)"
    qm = compile_model("chain(L)", dm, L=4)
    assert qm.hamiltonian.is_hermitian() and not qm.hamiltonian.is_real()


@pytest.mark.parametrize(
    "h", [TFIM_H, HEIS_H, "sum(X[i] * Y[j] - Y[i] * X[j] for (i, j) in bonds)"]
)
def test_local_energies_match_dense_matrix(h):
    qm = compile_model("chain(L, boundary = open)", h, L=6)
    dense = qm.hamiltonian.to_dense()
    op = LocalOperator(qm.hamiltonian, dtype=torch.float64)
    n = 6
    s = LocalOperator.codes_to_configs(torch.arange(2**n), n)
    rng = np.random.default_rng(0)
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    table = torch.as_tensor(np.log(psi))

    def log_psi(x):
        return table[LocalOperator.configs_to_codes(x)]

    e_loc = op.local_energy(log_psi, s).numpy()
    np.testing.assert_allclose(e_loc, (dense @ psi) / psi, atol=1e-10)


def test_exact_diagonalisation_against_references():
    p = load("import TFIM, Heisenberg\nimport J1J2")
    tf = exact_spectrum(p.model("TFIM", L=10), 2, [None])
    assert abs(tf.energies[0] - -12.7849064430) < 1e-8
    he = p.model("Heisenberg", L=10)
    sp = exact_spectrum(he, 1, list(range(10, -11, -2)))
    assert abs(sp.energies[0] - -18.0617854180) < 1e-8
    assert sp.sectors[0] == 0
    # an operator expectation on a sector state: <H> = E0
    assert abs(exact_expectation(he.hamiltonian, sp.codes, sp.ground).real - sp.energies[0]) < 1e-8


def test_exact_run_writes_summary(tmp_path):
    src = """
import TFIM
run spec {
    model TFIM(L = 8)
    exact levels = 3
    scan g in [0.5, 1.0]
    measure energy, magnetization, mx = sum(X[i] for i in sites) / sites
}
"""
    res = load(src).run(out=tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["complete"] and len(s["rows"]) == 2 and set(s) >= {"run", "params", "device", "seed"}
    # Hellmann-Feynman: dE0/dg = -<sum X>, checked by a finite difference on the language model
    p = load("import TFIM")
    e = [
        exact_spectrum(p.model("TFIM", L=8, g=1.0 + d), 1, [None]).energies[0]
        for d in (-1e-4, 1e-4)
    ]
    mx = res.rows[1]["mx"]["mean"]
    assert abs((e[1] - e[0]) / 2e-4 + 8 * mx) < 1e-5
    assert res.rows[0]["gap"]["mean"] >= 0


BAD = [
    # H breaks the declared conservation law
    (MODEL.format(lattice="chain(L)", h=TFIM_H, extra="conserve sum(Z[i] for i in sites)"),
     "P500", "does not conserve", 6),
    # translation on an open chain; spin flip broken by a longitudinal field
    (MODEL.format(lattice="chain(L, boundary = open)", h=TFIM_H, extra="symmetry translation"),
     "P500", "periodic", 6),
    (MODEL.format(lattice="chain(L)", h=TFIM_H + " - g * sum(Z[i] for i in sites)",
                  extra="symmetry spin_flip"), "P500", "spin_flip", 6),
    (MODEL.format(lattice="chain(L)", h="sum(Sp[i] * Sm[j] for (i, j) in bonds)", extra=""),
     "P312", "not Hermitian", 5),
    (MODEL.format(lattice="chain(L)", h="sum(Q[i] for i in sites)", extra=""), "P200", "Q", 5),
]  # fmt: skip


@pytest.mark.parametrize("src,code,text,line", BAD)
def test_model_errors_are_located(src, code, text, line):
    with pytest.raises(PhysmlError) as err:
        load(src).model("M")
    d = err.value.diagnostics[0]
    assert d.code == code and text in d.message + (d.hint or "") and d.span.line == line


RUN = """
import TFIM, Heisenberg
learner psi = {learner}
run g {{
    model {model}
    learner psi
    {sampler}
    iterations 2
}}
"""


@pytest.mark.parametrize(
    "learner,model,sampler,code,where",
    [
        ("rbm(alpha = 1) respecting translation, point_group", "TFIM(L = 4)", "", "P501",
         "point_group"),
        ("rbm(alpha = 1) respecting spin_flip", "TFIM(L = 4, g = 1.0)", "", None, None),
        ("rbm(alpha = 1) respecting gauge", "TFIM(L = 4)", "", "P501", "gauge"),
        ("rbm(alpha = 1) respecting translaton", "TFIM(L = 4)", "", "P210", "translaton"),
        ("rbm(alpha = 1, sign_rule = marshall)", "TFIM(L = 5)", "", "P501", "sign_rule"),
        ("rbm(alpha = 1)", "TFIM(L = 4)", "sampler metropolis(move = exchange)", "P502", "move"),
        ("rbm(alpha = 1)", "TFIM(L = 4)", "sampler autoregressive", "P502", "autoregressive"),
        ("rbm(alpha = 1, beta = 2)", "TFIM(L = 4)", "", "P401", "beta"),
    ],
)  # fmt: skip
def test_learner_and_sampler_errors_located(learner, model, sampler, code, where):
    src = RUN.format(learner=learner, model=model, sampler=sampler)
    if code is None:
        load(src).check()
        return
    with pytest.raises(PhysmlError) as err:  # the front end finds learner errors when loading
        load(src).check()
    d = err.value.diagnostics[0]
    assert d.code == code, d.render()
    line = src.splitlines()[d.span.line - 1]
    assert where in line[d.span.column - 1 :], d.render()


def test_symmetry_the_hamiltonian_lacks_is_an_error():
    src = """
model M(L: int = 4, h: real = 0.3) {
    lattice chain(L)
    field s: qubit on sites
    hamiltonian H = -sum(Z[i] * Z[j] for (i, j) in bonds) - sum(X[i] + h * Z[i] for i in sites)
    symmetry translation
}
learner psi = rbm(alpha = 1) respecting translation, spin_flip
run v { learner psi
        iterations 1 }
"""
    with pytest.raises(PhysmlError) as err:
        load(src).check()
    d = err.value.diagnostics[0]
    assert d.code == "P505" and "spin_flip" in d.message and d.span.line == 8


def test_tiny_vmc_run_via_cli_converges(tmp_path):
    from physml_lang.cli import main

    src = tmp_path / "tfim6.phys"
    src.write_text("""
import TFIM
learner psi = rbm(alpha = 1) respecting translation, spin_flip
run gs {
    model TFIM(L = 6)
    learner psi
    sampler metropolis(chains = 16)
    optimize psi via sr(lr = 0.05, diag_shift = 0.01)
    iterations 30
    samples 320, final = 3200
    measure energy, variance, magnetization, structure_factor
}
""")
    out = tmp_path / "out"
    cmd = ["run", str(src), "--out", str(out), "--quiet"]
    assert main(cmd) == 0
    s = json.loads((out / "summary.json").read_text())
    assert {"run", "params", "device", "seed", "rows", "complete"} <= set(s) and s["complete"]
    row = s["rows"][0]
    e, err, e0 = row["energy"]["mean"], row["energy"]["stderr"], row["exact_energy"]
    assert abs(e0 - -7.727406610312546) < 1e-8
    assert e >= e0 - 4 * err and abs(e - e0) < max(4 * err, 2e-3 * abs(e0)), row
    assert row["relative_error"] < 2e-3
    assert {"variance", "r_hat", "structure_factor_qpi"} <= set(row)
    assert (out / "history.csv").exists() and not (out / "checkpoint.safetensors").exists()
    # a complete run keeps no checkpoint: --resume with more iterations runs afresh
    assert main(cmd + ["--resume", "--set", "iterations=32", "--set", "final_samples=320"]) == 0
    assert len((out / "history.csv").read_text().strip().splitlines()) == 1 + 32
    assert "resumed" not in json.loads((out / "summary.json").read_text())
    # a bad --set is a located diagnostic, not a traceback
    assert main(cmd + ["--set", "iteratons=3"]) == 1


def test_diverging_vmc_is_a_located_error_that_keeps_its_history(tmp_path, capsys):
    """A learning rate far too large: P700 at the run block with a hint, no traceback, and the
    iterations before the failure stay in history.csv."""
    from physml_lang.cli import main

    src = tmp_path / "bad.phys"
    src.write_text("""import TFIM
learner psi = rbm(alpha = 1)
run gs {
    model TFIM(L = 6)
    learner psi
    sampler metropolis(chains = 16)
    optimize psi via sgd(lr = 1000)
    iterations 50
    samples 160
}
""")
    out = tmp_path / "out"
    assert main(["run", str(src), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error[P700]" in err and "bad.phys:3:1" in err and "Traceback" not in err
    assert "hint: lower the learning rate" in err
    lines = (out / "history.csv").read_text().strip().splitlines()
    assert lines[0].startswith("iteration,energy") and len(lines) >= 2


@pytest.mark.slow
@pytest.mark.long
def test_complex_rbm_learns_the_sign_structure_of_a_frustrated_chain(tmp_path, record_property):
    """examples/j1j2_chain_phase.phys (J1-J2 chain, J2 = 0.8, L = 8, no sign rule): the complex
    RBM reaches E0 (seed 0; it does on 3 of seeds 0-5 only, so this pins one trajectory and is
    not run in CI); real RBMs, with or without the Marshall sign, stay >= 10% above it."""
    prog = load(ROOT / "examples" / "j1j2_chain_phase.phys")
    rows = {r: prog.run(r, out=tmp_path / r, seed=0).rows[0]
            for r in ("complex", "marshall", "positive")}  # fmt: skip
    for r, row in rows.items():
        record_property(f"{r} relative error", row["relative_error"])
    assert abs(rows["complex"]["exact_energy"] - -13.6429017449) < 1e-8
    assert rows["complex"]["relative_error"] < 1e-4, rows["complex"]
    for r in ("marshall", "positive"):
        assert rows[r]["relative_error"] > 0.1, rows[r]


@pytest.mark.parametrize(
    "name", ["tfim.phys", "heisenberg_2d.phys", "heisenberg_chain_rnn.phys",
             "j1j2_chain_phase.phys"]
)  # fmt: skip
def test_examples_check(name):
    lines = load(ROOT / "examples" / name).check()
    assert any(line.startswith("run ") for line in lines)


def test_compiled_quantum_model_builds_on_its_derivation():
    p = load("import Heisenberg")
    ir = p.instantiate("Heisenberg", {"L": 6})
    derived, compiled = p.derive(ir), p.compile_ir(ir)
    assert not isinstance(derived, QuantumModel) and isinstance(compiled, QuantumModel)
    assert derived.describe() == compiled.describe()
    assert derived.hamiltonian.terms == compiled.hamiltonian.terms
    assert compiled.conserves_magnetization and compiled.symmetries == derived.symmetries
    assert torch.equal(compiled.sublattice(), torch.as_tensor(derived.a_sublattice()))
    assert torch.equal(compiled.translation_table(), torch.as_tensor(derived.translations()))


@pytest.mark.parametrize(
    "learner,measure,code,where",
    [
        ("rnn(magnetization = 2) respecting spin_flip", "energy", "P501", "rnn"),
        ("rbm(alpha = 1)", "energy, gap", "P208", "gap"),
    ],
)
def test_check_finds_what_a_vmc_run_would_reject(learner, measure, code, where):
    src = RUN.format(learner=learner, model="TFIM(L = 4)", sampler=f"measure {measure}")
    with pytest.raises(PhysmlError) as err:
        load(src).check()
    d = err.value.diagnostics[0]
    assert d.code == code, d.render()
    assert src.splitlines()[d.span.line - 1][d.span.column - 1 :].startswith(where), d.render()


def test_a_learner_only_building_rejects_is_located_when_the_run_starts():
    """An even CNN kernel is found by building the network: check passes, the run stops with a
    located P413 at the learner before any work."""
    src = RUN.format(learner="cnn(kernel_size = 2)", model="TFIM(L = 4)", sampler="")
    program = load(src)
    program.check()
    with pytest.raises(PhysmlError) as err:
        program.run()
    d = err.value.diagnostics[0]
    assert d.code == "P413" and "kernel_size must be odd" in d.message, d.render()
    assert src.splitlines()[d.span.line - 1][d.span.column - 1 :].startswith("cnn"), d.render()


def test_emit_sympy_lists_pauli_strings(capsys):
    from physml_lang.cli import main

    assert main(["compile", str(ROOT / "examples" / "tfim.phys"), "--emit", "sympy",
                 "--set", "L=4"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "-1 Z0 Z1" in text and "flip 0:" in text and "8 Pauli strings" in text


@pytest.mark.parametrize(
    ("example", "params"),
    [("tfim.phys", {"L": 6, "g": 0.7}), ("heisenberg_2d.phys", {"L": 2}),
     ("heisenberg_2d.phys", {"L": 4})],
)  # fmt: skip
def test_emit_torch_source_runs_and_matches_runtime(tmp_path, example, params):
    """`physml compile --emit torch`: the emitted matrix elements and local energy agree with
    the runtime's batched LocalOperator on random states."""
    import importlib.util

    from physml_lang.api import compile as compile_program
    from physml_lang.runtime.quantum.learners import RBM

    cp = compile_program(ROOT / "examples" / example, **params)
    path = tmp_path / "emitted.py"
    path.write_text(cp.emit("torch"))
    spec = importlib.util.spec_from_file_location("emitted", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # our own generated source, not user text
    op = LocalOperator(cp.compiled.hamiltonian)
    n = op.n_sites
    g = torch.Generator().manual_seed(0)
    s = (1 - 2 * torch.randint(0, 2, (300, n), generator=g)).double()
    mels = mod.matrix_elements(s)
    sp_ = mod.connected(s)
    # same connected states, same elements (pattern order may differ: match by flip mask)
    emitted = {tuple(f): k for k, f in enumerate(mod.FLIPS)}
    for k in range(op.n_groups):
        sites = tuple(int(i) for i in torch.nonzero(op.flip_masks[k]).flatten())
        j = emitted[sites]
        torch.testing.assert_close(mels[:, j], op.matrix_elements(s)[:, k])
        torch.testing.assert_close(sp_[:, j], s * op.flip_sign[k])
    model = RBM(n, alpha=1, init_std=0.3, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(mod.local_energy(model, s), op.local_energy(model, s))
