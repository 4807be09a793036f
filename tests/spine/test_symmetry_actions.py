"""The symmetry actions a compiled lattice model hands the runtime: a declared, verified symmetry
leaves the compiled energy invariant under random translations and global flips (and breaking
it changes the energy, so the test can fail)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import physml_lang as pl

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "golden" / "good"
CASES = [  # (file, model, parameters): lattice models that declare translation or spin_flip
    (ROOT / "examples" / "ising2d.phys", "Ising", {"L": 6}),
    (GOOD / "ising2d_periodic.phys", None, {}),
    (GOOD / "triangular.phys", None, {}),
    (GOOD / "j1j2.phys", None, {}),
    (GOOD / "potts3.phys", None, {}),
    (GOOD / "ising2d_open.phys", None, {"h": 0.0}),
    (GOOD / "sk.phys", None, {}),
    (GOOD / "honeycomb.phys", None, {}),
    (GOOD / "blume_capel.phys", None, {}),
    (ROOT / "examples" / "kagome_afm.phys", "KagomeIsing", {"L": 4}),
]


def _random_state(model, batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    state = {}
    for name, f in model.model.fields.items():
        values = torch.tensor(f.domain.values(), dtype=model.dtype)
        idx = torch.randint(0, len(values), (batch, *model.lattice.shape), generator=g)
        state[name] = values[idx]
    return state


@pytest.mark.parametrize("path, name, params", CASES, ids=lambda c: getattr(c, "stem", None))
def test_declared_symmetries_leave_the_energy_invariant(path, name, params):
    model = pl.load(path).model(name, **params)
    assert model.symmetries, "the case declares a symmetry"
    g = torch.Generator().manual_seed(7)
    state = _random_state(model, 16, g)
    e0 = model.energy(state)
    tol = 1e-4 * (1 + float(e0.abs().max()))
    if "spin_flip" in model.symmetries:
        assert torch.allclose(model.energy(model.spin_flip(state)), e0, atol=tol)
    if "translation" in model.symmetries:
        for _ in range(4):
            shift = tuple(int(k) for k in torch.randint(-5, 6, (model.lattice.dim,),
                                                       generator=g))  # fmt: skip
            assert torch.allclose(model.energy(model.translate(state, shift)), e0, atol=tol)


def test_a_symmetry_that_does_not_hold_is_not_claimed_and_its_action_changes_the_energy():
    model = pl.load(ROOT / "examples" / "ising2d.phys").model("Ising", L=6, h=0.5)
    assert model.symmetries == ("translation",)  # spin_flip only if h == 0
    g = torch.Generator().manual_seed(3)
    state = _random_state(model, 16, g)
    assert not torch.allclose(model.energy(model.spin_flip(state)), model.energy(state))


def test_translations_need_a_periodic_lattice():
    model = pl.load(GOOD / "ising2d_open.phys").model(None, h=0.0)
    state = _random_state(model, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="periodic"):
        model.translate(state, (1, 0))
    periodic = pl.load(GOOD / "ising2d_periodic.phys").model()
    with pytest.raises(ValueError, match="2 components"):
        periodic.translate(state, (1,))
