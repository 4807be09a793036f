"""Structural and numeric parameters: a scan over a coupling rebinds tensors (one compile), a
scan over a size or a symmetry's condition compiles again, and both give the same numbers."""

from __future__ import annotations

import pytest
import torch

import physml_lang
from physml_lang.compiler.models.lattice import LatticeModel
from physml_lang.runtime import sample_task

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
    assert sample_task.numeric_parameters(
        physml_lang.load(MODEL).models["I"], ["h", "L"], []) == frozenset({"h"})


def test_a_rebound_model_computes_what_a_compiled_one_does() -> None:
    program = physml_lang.load(MODEL)
    first = program.instantiate("I", {"h": 0.3})
    other = program.instantiate("I", {"h": -0.7, "J": 0.5})
    model = program.compile_ir(first, numeric=frozenset({"J", "h"}))
    assert model.numeric == {"J", "h"} and model.rebind(other)
    fresh = program.compile_ir(other)
    state = {"s": (torch.randint(0, 2, (5, 6, 6)) * 2 - 1).float()}
    assert torch.allclose(model.energy(state), fresh.energy(state))
    a, b = model.fields["s"], fresh.fields["s"]
    assert torch.allclose(a.flip_delta(model.kernels.inputs(a.flip_delta, state)),
                          b.flip_delta(fresh.kernels.inputs(b.flip_delta, state)))  # fmt: skip
    v = torch.tensor(-1.0)
    assert torch.allclose(a.local_energy(state, v), b.local_energy(state, v))
    # a value that removes a term changes what is derived: not rebound
    assert not model.rebind(program.instantiate("I", {"h": 0.0}))
