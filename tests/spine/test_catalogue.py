"""The catalogue: every entry is documented, strict and bound to an implementation (and nothing is
bound without an entry); ``physml list`` prints it without torch; and a wrong option of any entry
-- one generated per entry that has options -- gets a located error from ``physml check``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from physml_lang.api import bind_runtime
from physml_lang.catalogue import CATALOGUE, declare_catalogue
from physml_lang.catalogue.registry import Entry, NoOptions, Registry
from physml_lang.cli import main

ROOT = Path(__file__).resolve().parents[2]
BOGUS = "bogus_option"


def _entries() -> list[tuple[str, Entry]]:
    return [(reg.kind, e) for reg in CATALOGUE for e in reg]


def test_every_entry_is_bound_after_the_top_layer_binds_the_runtime():
    bind_runtime()
    unbound = [f"{reg.kind}: {e.title}" for reg in CATALOGUE for e in reg.unbound()]
    assert not unbound, unbound


def test_every_entry_is_documented_with_a_strict_schema():
    for kind, entry in _entries():
        assert entry.doc.strip(), f"{kind} {entry.title} has no doc"
        assert issubclass(entry.schema, BaseModel)
        assert entry.schema.model_config.get("extra") == "forbid", f"{kind} {entry.title}"


def test_an_implementation_needs_an_entry():
    fresh = declare_catalogue()
    with pytest.raises(KeyError, match="declare it"):
        fresh.samplers.bind("telepathy", object(), family="lattice")
    reg: Registry[object] = Registry("things", "thing")
    reg.declare("a", NoOptions, "the thing a")
    reg.bind("a", 1)
    with pytest.raises(ValueError, match="bound twice"):
        reg.bind("a", 2)
    with pytest.raises(ValueError, match="declared twice"):
        reg.declare("a", NoOptions, "again")


def test_a_name_of_another_kind_is_explained():
    with pytest.raises(Exception) as info:
        CATALOGUE.samplers.lookup("gibbs", "lattice")
    assert "boltzmann models" in info.value.diagnostics[0].hint


def _physml(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "physml_lang.cli", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_physml_list_shows_entries_options_defaults_and_docs():
    proc = _physml("list")
    assert proc.returncode == 0, proc.stderr
    for reg in CATALOGUE:
        assert f"{reg.kind}:" in proc.stdout
    assert "  wolff [lattice]: Wolff single-cluster updates" in proc.stdout
    assert "      chains: int = 64  -- independent chains per point" in proc.stdout
    assert not [line for line in proc.stderr.splitlines()
                if line.startswith("import time:") and line.endswith("| torch")]  # fmt: skip
    one = _physml("list", "learners", "rbm")
    assert one.returncode == 0 and one.stdout.startswith("learners:\n  rbm [quantum]")
    assert "symmetries translation, spin_flip" in one.stdout
    bad = _physml("list", "learnerz")
    assert bad.returncode == 1 and "did you mean 'learners'" in bad.stderr
    assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------- a wrong option of every entry

RBM_DATA = "import RBM\ndata X: binary = random(p = 0.3, seed = 1)\nlearner rbm = RBM(Nv = 4, Nh = 2)\n"
TRAIN = "train rbm via pcd(k = 1, chains = 10), data = X, epochs = 1, batch = 10"
VMC = ("import TFIM\nlearner psi = {learner}\nrun r {{\n    model TFIM(L = 4)\n    learner psi\n"
       "    optimize psi via {optimiser}\n    sampler {sampler}\n    iterations 2\n}}\n")
DYNAMICS = ("import MassSpring\nlearner net = {learner}\nrun r {{\n    model MassSpring\n"
            "    trajectories count = 2, points = 3, t_span = 1.0\n    train net via {objective}\n}}\n")
GAUGE_REGRESS = ("import U1\nlearner f = {learner}\nrun r {{\n    model U1(L = 4)\n"
                 "    regress f, target = wilson_loop(1, 1), samples = 16, test_samples = 8, "
                 "test_L = [6], epochs = 1, sweeps = 2{extra}\n}}\n")
SIZES = {"chain": "L", "square": "L, L", "triangular": "L, L", "cubic": "L, L, L",
         "honeycomb": "L, L", "kagome": "L, L",
         "hypercubic": "L, L, L, L"}  # fmt: skip
B = f"{BOGUS} = 1"


TABLE = 'model Sol {\n    data planets: table(a = AU, P = yr) = load("planets.csv")\n}\n'
ORBITS = ("import Kepler\nrun r {\n    model Kepler\n"
          "    trajectories count = 2, points = 100, start = kepler\n    discover ")
CLASSIFY = ("import Ising\nlearner f = classifier(hidden = [4])\nrun r {\n    model Ising(L = 4)\n"
            "    scan T in linspace(1.5, 3.5, 5)\n    classify phases via ")
# a program per analysis method, its options at OPTS
ANALYSES = {
    "power_law": TABLE + "run r {\n    model Sol\n    discover P via power_law(a, OPTS)\n}\n",
    "monomial": TABLE + "run r {\n    model Sol\n    discover P via monomial(a, OPTS)\n}\n",
    "equations": ORBITS + "equations(OPTS)\n}\n",
    "conserved": ORBITS + "conserved(OPTS)\n}\n",
    "supervised": CLASSIFY + "supervised(OPTS), learners = [f]\n}\n",
    "confusion": CLASSIFY + "confusion(OPTS), learners = [f]\n}\n",
    "pca": CLASSIFY + "pca(OPTS)\n}\n",
    "winding": "run r {\n    invariant winding(OPTS)\n}\n",
    "chern": "run r {\n    invariant chern(OPTS)\n}\n",
    "impurities": "run r {\n    locate impurities(OPTS)\n}\n",
}


def _program(kind: str, e: Entry) -> str:
    """A program that gives entry ``e`` the option ``bogus_option``."""
    n, fam = e.name, e.family
    if kind == "lattices":
        return (f"model M(L: int = 4) {{\n    lattice {n}({SIZES[n]}, {B})\n    field s: spin on "
                "sites\n    energy E = -sum(s[i] * s[j] for (i, j) in bonds)\n}\n")
    if kind == "domains":
        return ("model M(L: int = 4) {\n    lattice square(L, L)\n    field s: potts(q = 3, "
                f"{B}) on sites\n    energy E = -sum(delta(s[i], s[j]) for (i, j) in bonds)\n}}\n")
    if kind == "samplers":
        if fam == "quantum":
            learner = "rnn(hidden = 4)" if n == "autoregressive" else "rbm(alpha = 1)"
            return VMC.format(learner=learner, optimiser="sr(lr = 0.05)", sampler=f"{n}({B})")
        model = {"lattice": "import Ising\n/Ising(L = 4)", "gauge": "import U1\n/U1(L = 4)",
                 "field": "import Phi4\n/Phi4(L = 4)",
                 "boltzmann": "import RBM\n/RBM(Nv = 4, Nh = 2)"}[fam]  # fmt: skip
        imp, call = model.split("/")
        return f"{imp}run r {{\n    model {call}\n    sampler {n}({B})\n}}\n"
    if kind == "updates" and fam == "hopfield":  # the dynamics of the Hopfield phases task
        return ("import Hopfield\nrun r {\n    model Hopfield(N = 16)\n"
                f"    phases xi via {n}(T = [1.0], {B}), alpha = [0.1]\n}}\n")
    if kind == "updates":  # Hopfield recall dynamics
        return ("import Hopfield\nrun r {\n    model Hopfield(N = 16, P = 2)\n"
                f"    recall xi via {n}({B})\n}}\n")
    if kind == "learners":
        if fam == "table":  # the invariant and locate tasks (model-free runs)
            return (f"learner f = {n}({B}) respecting translation\nrun r {{\n"
                    "    invariant winding(epochs = 1), learners = [f]\n}\n")
        if fam == "landscape":  # the propagation task
            return (f"import HarmonicOscillator\nlearner U = {n}({B})\nrun r {{\n"
                    "    model HarmonicOscillator\n    train U via propagation(steps = 1)\n}\n")
        if fam == "lattice" and n == "classifier":  # classify phases
            return (f"import Ising\nlearner f = {n}({B})\nrun r {{\n    model Ising(L = 4)\n"
                    "    scan T in linspace(1.5, 3.5, 5)\n"
                    "    classify phases via supervised(epochs = 1), learners = [f]\n}\n")
        if fam == "quantum":
            sampler = "autoregressive" if n == "rnn" else "metropolis(chains = 4)"
            return VMC.format(learner=f"{n}({B})", optimiser="sr(lr = 0.05)", sampler=sampler)
        if fam == "phase_space":
            objective = "step_mse(steps = 1)" if n == "sympnet" else "derivative_mse(steps = 1)"
            return DYNAMICS.format(learner=f"{n}({B})", objective=objective)
        if fam == "lattice":  # autoregressive learners of the van task
            return (f"import Ising\nlearner f = {n}({B})\nrun v {{\n    model Ising(L = 4)\n"
                    "    train f via free_energy(beta = 0.4, steps = 1)\n}\n")
        if n in ("score_net", "velocity_net"):  # the diffusion task (score models, flow matching)
            objective = "score_matching" if n == "score_net" else "flow_matching"
            return (f"import Phi4\nlearner f = {n}({B})\nrun d {{\n    model Phi4(L = 4)\n"
                    f"    sampler hmc(chains = 2)\n    train f via {objective}(steps = 1)\n}}\n")
        return GAUGE_REGRESS.format(learner=f"{n}({B})", extra="")
    if kind == "optimisers" and fam == "landscape":  # optimise f via METHOD(...)
        return f"import Sphere\nrun r {{\n    model Sphere\n    optimise f via {n}({B})\n}}\n"
    if kind == "optimisers" and fam == "lattice":  # the annealers of spin models
        return (f"import SK\nrun r {{\n    model SK(N = 8)\n    optimise E via {n}({B})\n"
                "}\n")
    if kind == "optimisers":
        if fam == "quantum":
            return VMC.format(learner="rbm(alpha = 1)", optimiser=f"{n}({B})",
                              sampler="metropolis(chains = 4)")  # fmt: skip
        return f"{RBM_DATA}run fit {{\n    {TRAIN}\n    optimizer {n}({B})\n}}\n"
    if kind == "schedules":
        return f"{RBM_DATA}run fit {{\n    {TRAIN}\n    schedule {n}({B})\n}}\n"
    if kind == "objectives":
        if fam == "landscape":  # learned Schrodinger dynamics
            return ("import HarmonicOscillator\nlearner U = rnn(unitary = true)\nrun r {\n"
                    f"    model HarmonicOscillator\n    train U via {n}({B})\n}}\n")
        if fam == "phase_space":
            learner = "sympnet(layers = 1)" if n == "step_mse" else "hnn(hidden = [4])"
            return DYNAMICS.format(learner=learner, objective=f"{n}({B})")
        if n in ("score_matching", "flow_matching"):  # the diffusion task
            learner = "score_net" if n == "score_matching" else "velocity_net"
            return (f"import Phi4\nlearner f = {learner}(width = 4)\nrun d {{\n    model Phi4(L = 4)\n"
                    f"    sampler hmc(chains = 2)\n    train f via {n}({B})\n}}\n")
        if fam == "gauge":  # reverse_kl of gauge flows (the flow [gauge] task)
            return ("import U1\nlearner f = gauge_flow()\nrun r {\n    model U1(L = 4)\n"
                    f"    train f via {n}({B})\n}}\n")
        if fam == "field":  # reverse_kl of scalar-field flows (the flow [field] task)
            return ("import Phi4\nlearner f = coupling_flow()\nrun r {\n    model Phi4(L = 4)\n"
                    f"    train f via {n}({B})\n}}\n")
        return f"{RBM_DATA}run fit {{\n    train rbm via {n}({B}), data = X, epochs = 1\n}}\n"
    if kind == "integrators" and fam == "landscape":  # evolve METHOD(...) of a landscape
        return f"import DoubleWell\nrun r {{\n    model DoubleWell\n    evolve {n}({B})\n}}\n"
    if kind == "integrators":  # solver settings are options of evolve
        return ("import Pendulum\nrun r {\n    model Pendulum\n    initial q = 1.0, p = 0.0\n"
                f"    evolve integrator = {n}, dt = 0.1, steps = 10, {B}\n}}\n")
    if kind == "analyses":
        return ANALYSES[n].replace("OPTS", B)
    if kind == "sources":
        call = {"random": f"random({B})", "load": f'load("x.npz", {B})',
                "sample": f"sample(Ising(L = 4), n = 10, T = 2.0, {B})",
                "digits": f"digits({B})"}[n]  # fmt: skip
        return (f"import Ising, RBM\ndata X: binary = {call}\nlearner rbm = RBM(Nv = 4, Nh = 2)\n"
                "run fit {\n    train rbm via pcd(k = 1), data = X, epochs = 1\n}\n")
    if kind == "tasks":
        if n == "gauge_regress":
            return GAUGE_REGRESS.format(learner="lcnn(channels = [2])", extra=f", {B}")
        if n == "phases":
            return ("import Hopfield\nrun r {\n    model Hopfield(N = 16)\n"
                    f"    phases xi via tempering(T = [1.0]), alpha = [0.1], {B}\n}}\n")
        if n == "optimise":
            return ("import Sphere\nrun r {\n    model Sphere\n    optimise f via mqhoa, "
                    f"{B}\n}}\n")
        method = {"schrodinger": "imaginary_time", "dmc": "dmc", "langevin": "langevin",
                  "fokker_planck": "fokker_planck",
                  "taylor_diffusion": "taylor_diffusion"}.get(n)  # fmt: skip
        if method is not None:  # evolve METHOD(...): the options are the method's
            return f"import DoubleWell\nrun r {{\n    model DoubleWell\n    evolve {method}({B})\n}}\n"
        if n == "discover":
            return TABLE + f"run r {{\n    model Sol\n    discover P via power_law(a), {B}\n}}\n"
        if n == "classify":
            return CLASSIFY + f"supervised, learners = [f], {B}\n}}\n"
        if n in ("topology", "images"):  # the method's options
            method = "invariant winding" if n == "topology" else "locate impurities"
            return f"run r {{\n    {method}({B})\n}}\n"
        if n == "learn_propagation":
            return ("import HarmonicOscillator\nlearner U = rnn(unitary = true)\nrun r {\n"
                    f"    model HarmonicOscillator\n    train U via propagation({B})\n}}\n")
        if n == "recall":
            return ("import Hopfield\nrun r {\n    model Hopfield(N = 16, P = 2)\n"
                    f"    recall xi via glauber(T = 0), {B}\n}}\n")
        return f"{RBM_DATA}run fit {{\n    {TRAIN}, {B}\n}}\n"
    raise AssertionError(f"no program template for {kind} {e.title}")


WITH_OPTIONS = [(kind, e) for kind, e in _entries() if e.schema.model_fields]


@pytest.mark.parametrize("kind, entry", WITH_OPTIONS,
                         ids=[f"{k}-{e.name}-{e.family or 'any'}" for k, e in WITH_OPTIONS])  # fmt: skip
def test_a_wrong_option_of_every_entry_is_a_located_error(kind, entry, tmp_path, monkeypatch,
                                                          capsys):  # fmt: skip
    src = _program(kind, entry)
    (tmp_path / "wrong.phys").write_text(src)
    monkeypatch.chdir(tmp_path)
    code = main(["check", "wrong.phys"])  # in process: the command as a user runs it
    err = capsys.readouterr().err
    assert code == 1, f"{kind} {entry.title}: accepted\n{src}"
    assert "Traceback" not in err
    # (check reports every independent error: the template's other gaps may come first)
    first = next((line for line in err.splitlines() if "error[" in line and BOGUS in line), "")
    assert "error[P401]" in first and BOGUS in first, f"{kind} {entry.title}:\n{err}"
    line, column = (int(x) for x in first.split(":")[1:3])
    assert src.splitlines()[line - 1][column - 1:].startswith(BOGUS), err


# ---------------------------------------------------------------- learners, checked by the front end

LEARNER_USE = """
import U1, TFIM
learner f = {learner}
run r {{
    model {model}
    regress f, target = wilson_loop(1, 1), samples = 16, test_samples = 8, test_L = [6],
            epochs = 1, sweeps = 2
}}
"""


@pytest.mark.parametrize("learner, model, code, where, words", [
    ("rbmm(alpha = 1)", "U1(L = 4)", "P207", "rbmm", "did you mean 'rbm'"),
    ("hnn(hidden = [4]) respecting gauge", "U1(L = 4)", "P501", "gauge", "hnn respects: symplectic"),
    ("lcnn(channels = [2]) respecting gage", "U1(L = 4)", "P210", "gage", "'gauge'"),
    ("lcnn(chanels = [2])", "U1(L = 4)", "P401", "chanels", "'channels'"),
    ("lcnn([2])", "U1(L = 4)", "P318", "lcnn", "named options"),
    ("rbm(alpha = 1)", "U1(L = 4)", "P503", "f, target", "learner of quantum models"),
])  # fmt: skip
def test_learners_are_checked_statically(learner, model, code, where, words):
    from physml_lang.check.program import check_program
    from physml_lang.syntax import parse

    src = LEARNER_USE.format(learner=learner, model=model)
    with pytest.raises(Exception) as info:
        check_program(parse(src))
    d = info.value.diagnostics[0]
    assert d.code == code, d.render()
    assert src.splitlines()[d.span.line - 1][d.span.column - 1:].startswith(where), d.render()
    assert words in d.message + (d.hint or ""), d.render()


def test_the_front_end_checks_learners_without_torch():
    src = LEARNER_USE.format(learner="lcnn(chanels = [2])", model="U1(L = 4)")
    code = ("import sys\nfrom physml_lang.check.program import check_program\n"
            "from physml_lang.syntax import parse\n"
            f"try:\n    check_program(parse({src!r}))\nexcept Exception as e:\n"
            "    print(e.diagnostics[0].code)\nprint('torch' in sys.modules)\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.stdout.split() == ["P401", "False"], proc.stdout + proc.stderr
