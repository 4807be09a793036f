"""Structural and numeric parameters: a scan over a coupling rebinds tensors (one compile), a
scan over a size or a symmetry's condition compiles again, and both give the same numbers."""

from __future__ import annotations

import pytest
import torch

import physml_lang
from physml_lang.compiler.models.lattice import LatticeModel
from physml_lang.runtime.plans.parameters import numeric_parameters

MODEL = """model I(L: int = 6, J: real = 1.0, h: real = 0.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds) - h * sum(s[i] for i in sites) + 2 * J
    symmetry spin_flip if h == 0
}
"""


def _run(scans: str, measure: str = "m = magnetization / sites, e = energy / sites") -> str:
    return MODEL + ("run r {\n model I()\n sampler metropolis(chains = 4, sweeps = 60, "
                    f"burn_in = 10)\n scan T in [2.5]\n {scans}\n measure {measure}\n}}\n")  # fmt: skip


@pytest.fixture
def compiles(monkeypatch):
    """Counts the compiled models a run makes."""
    count = {"n": 0}
    original = physml_lang.api.Program.compile_ir

    def counted(self, ir, **options):
        count["n"] += 1
        return original(self, ir, **options)

    monkeypatch.setattr(physml_lang.api.Program, "compile_ir", counted)
    return count


def test_a_coupling_scan_rebinds_instead_of_compiling(compiles, monkeypatch) -> None:
    source = _run("scan h in [0.1, 0.3, 0.6]\n scan J in [1.0, 0.5]")
    rebound = physml_lang.load(source).run().rows
    assert compiles["n"] == 1
    monkeypatch.setattr(LatticeModel, "rebind", lambda self, ir: False)
    fresh = physml_lang.load(source).run().rows
    assert compiles["n"] == 1 + 6
    for a, b in zip(rebound, fresh, strict=True):
        assert (a["h"], a["J"]) == (b["h"], b["J"])
        assert a["m"]["mean"] == pytest.approx(b["m"]["mean"], abs=1e-12)
        assert a["e"]["mean"] == pytest.approx(b["e"]["mean"], abs=1e-9)


def test_sizes_and_symmetry_conditions_compile_again(compiles) -> None:
    physml_lang.load(_run("scan L in [4, 6]")).run()
    assert compiles["n"] == 2
    compiles["n"] = 0
    # h = 0 declares spin_flip, h = 0.2 does not: a structural change; 0.2 -> 0.4 is numeric
    physml_lang.load(_run("scan h in [0.0, 0.2, 0.4]")).run()
    assert compiles["n"] == 2


def test_a_parameter_read_by_a_measure_is_compiled_again(compiles) -> None:
    physml_lang.load(_run("scan h in [0.1, 0.3]", "mh = h * magnetization")).run()
    assert compiles["n"] == 2
    assert numeric_parameters(
        physml_lang.load(MODEL).models["I"], ["h", "L"], []) == frozenset({"h"})


def test_a_rebound_model_computes_what_a_compiled_one_does() -> None:
    program = physml_lang.load(MODEL)
    first = program.instantiate("I", {"h": 0.3})
    other = program.instantiate("I", {"h": -0.7, "J": 0.5})
    model = program.compile_ir(first, numeric=frozenset({"J", "h"}))
    assert model.numeric == {"J", "h"} and model.rebind(other)
    fresh = program.compile_ir(other)
    # seeded; float32 sums of different association differ by rounding near zero: atol
    g = torch.Generator().manual_seed(0)
    state = {"s": (torch.randint(0, 2, (64, 6, 6), generator=g) * 2 - 1).float()}
    assert torch.allclose(model.energy(state), fresh.energy(state), atol=1e-5)
    a, b = model.fields["s"], fresh.fields["s"]
    assert torch.allclose(a.flip_delta(state), b.flip_delta(state), atol=1e-5)
    v = torch.tensor(-1.0)
    assert torch.allclose(a.local_energy(state, v), b.local_energy(state, v), atol=1e-5)
    # a value that removes a term changes what is derived: not rebound
    assert not model.rebind(program.instantiate("I", {"h": 0.0}))


PHI4 = """import Phi4
run r {
    model Phi4(L = 6, lam = 1.145)
    sampler hmc(chains = 4, sweeps = 30, burn_in = 5, step_size = 0.1, n_steps = 5)
    scan kappa in [0.2, 0.25, 0.3]
    measure action_density, abs_magnetization
}
"""


def test_a_field_coupling_scan_rebinds(compiles, monkeypatch) -> None:
    """phi^4: kappa enters the linear hopping split of the force; rebinding gives the numbers
    a compile for each value gives."""
    from physml_lang.compiler.models.field import FieldModel

    rebound = physml_lang.load(PHI4).run().rows
    assert compiles["n"] == 1
    monkeypatch.setattr(FieldModel, "rebind", lambda self, ir: False)
    fresh = physml_lang.load(PHI4).run().rows
    assert compiles["n"] == 1 + 3  # the plan compiles the first point, then one per point
    for a, b in zip(rebound, fresh, strict=True):
        assert a["kappa"] == b["kappa"]
        for name in ("action_density", "abs_magnetization"):
            assert a[name]["mean"] == pytest.approx(b[name]["mean"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name,values", [("Phi4", {"kappa": 0.31}), ("XY", {"J": 0.7})])
def test_a_rebound_field_model_computes_what_a_compiled_one_does(name, values) -> None:
    program = physml_lang.load(f"import {name}")
    model = program.compile_ir(program.instantiate(name, {"L": 4}),
                               numeric=frozenset(values))  # fmt: skip
    other = program.instantiate(name, {"L": 4, **values})
    assert model.numeric == set(values) and model.rebind(other)
    fresh = program.compile_ir(other)
    x = torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(model.action(x), fresh.action(x))
    assert torch.allclose(model.grad(x), fresh.grad(x))
    assert not model.rebind(program.instantiate(name, {"L": 6, **values}))  # a size: structural
