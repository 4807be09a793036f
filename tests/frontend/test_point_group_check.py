"""``symmetry point_group`` of a classical lattice model is verified against the energy: the
rotations and reflections that map the periodic lattice onto itself must leave E unchanged.
Accepted cases are cross-checked numerically on the compiled energy (random configurations and
their images), and broken ones must change it, so the static check cannot pass vacuously."""

from __future__ import annotations

import pytest
import torch

import physml_lang as pl
from physml_lang.diagnostics import PhysmlError

NN = "-sum(s[i] * s[j] for (i, j) in bonds)"
CASES = {  # name: (lattice, energy, holds)
    "square_bonds": ("square(L, L, boundary = periodic)", NN, True),
    "square_axes_equal": ("square(L, L, boundary = periodic)",
                          "-sum(s[x] * s[x + e0] + s[x] * s[x + e1] for x in sites)", True),
    "square_plaquette": ("square(L, L, boundary = periodic)",
                         "-sum(s[x] * s[x + e0] * s[x + e0 + e1] * s[x + e1] for x in sites)",
                         True),
    "square_with_field": ("square(L, L, boundary = periodic)",
                          NN + " - 0.3 * sum(s[i] for i in sites)", True),
    "triangular": ("triangular(L, L, boundary = periodic)", NN, True),
    "honeycomb": ("honeycomb(L, L, boundary = periodic)", NN, True),
    "square_anisotropic": ("square(L, L, boundary = periodic)",
                           "-sum(s[x] * s[x + e0] + 0.5 * s[x] * s[x + e1] for x in sites)",
                           False),
    "square_chiral_triple": ("square(L, L, boundary = periodic)",
                             "-sum(s[x] * s[x + e0] * s[x + e0 + e1] for x in sites)", False),
}


def _source(lattice: str, energy: str) -> str:
    return (f"model M(L: int = 4) {{\n    lattice {lattice}\n    field s: spin on sites\n"
            f"    energy E = {energy}\n    symmetry point_group\n}}\n")  # fmt: skip


def _images(model, state: torch.Tensor) -> list[torch.Tensor]:
    """The configuration moved by each point-group generator of the geometry."""
    lat = model.derivation.lattice
    flat = state.reshape(state.shape[0], -1)
    return [flat[:, torch.as_tensor(perm)].reshape(state.shape)
            for perm in lat.point_group_generators()]  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_point_group_is_verified_against_the_energy(name):
    lattice, energy, holds = CASES[name]
    program = pl.load(_source(lattice, energy))
    if not holds:
        with pytest.raises(PhysmlError, match=r"P500.*point_group' does not hold"):
            program.model("M")
        return
    model = program.model("M")
    g = torch.Generator().manual_seed(1)
    state = 2.0 * torch.randint(0, 2, (32, *model.lattice.shape), generator=g).double() - 1.0
    e0 = model.energy({"s": state.to(model.dtype)})
    for image in _images(model, state):
        assert torch.allclose(model.energy({"s": image.to(model.dtype)}), e0, atol=1e-4)


@pytest.mark.parametrize("name", ["square_anisotropic", "square_chiral_triple"])
def test_a_broken_point_group_changes_the_compiled_energy(name):
    lattice, energy, _ = CASES[name]
    src = _source(lattice, energy).replace("    symmetry point_group\n", "")
    model = pl.load(src).model("M")
    lat = pl.load(_source(*CASES["square_bonds"][:2])).model("M").derivation.lattice
    g = torch.Generator().manual_seed(2)
    state = 2.0 * torch.randint(0, 2, (32, *model.lattice.shape), generator=g).double() - 1.0
    e0 = model.energy({"s": state.to(model.dtype)})
    flat = state.reshape(32, -1)
    changed = [not torch.allclose(model.energy({"s": flat[:, torch.as_tensor(p)].reshape(
        state.shape).to(model.dtype)}), e0) for p in lat.point_group_generators()]  # fmt: skip
    assert any(changed)


def test_point_group_needs_a_periodic_lattice():
    with pytest.raises(PhysmlError, match=r"P500.*needs a periodic"):
        pl.load(_source("square(L, L, boundary = open)", NN)).model("M")
