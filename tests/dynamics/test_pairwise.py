"""Structured lowering of sums over particles and pairs (any N) vs the unrolled symbolic path."""

import pytest
import torch

from physml_lang.api import load
from physml_lang.compiler.lower.hamiltonian import StructuredHamiltonian
from physml_lang.runtime.dynamics.integrators import evolve

from .conftest import assert_equals_unrolled

F64 = torch.float64

MODELS = {
    "NBody": "import NBody\n",
    "LJ": """
model LJ(N: int = 5, D: int = 3, eps: real = 1.0, sigma: real = 1.0, m: real = 1.0) {
    phase_space (q, p): real[N, D]
    let r2[i, j] = sum((q[i, a] - q[j, a])^2 for a in dims)
    kinetic T = sum(p[i, a]^2 / (2 * m) for i in particles for a in dims)
    potential V = sum(4 * eps * ((sigma^2 / r2[i, j])^6 - (sigma^2 / r2[i, j])^3) for (i, j) in pairs)
                  + sum(0.5 * q[i, a]^2 for i in particles for a in dims) + 0.1 * q[0, 0] * q[1, 1]
}""",
    "Asym": """
model Asym(N: int = 5, k: real = 0.3) {
    phase_space (q, p): real[N, 2]
    hamiltonian H = sum(p[i, a]^2 / 2 for i in particles for a in dims)
        + sum(k * (q[i, 0] - q[j, 0])^3 + cos(q[i, 1] - q[j, 1]) for (i, j) in pairs)
}""",
}


@pytest.mark.parametrize("name", list(MODELS))
def test_pair_lowering_equals_unrolled(name):
    """N = 5 (LJ: 4 in 2D, to keep the unrolled reference cheap), float64: H, dH/dq, dH/dp of
    the structured system equal the unrolled ones to 1e-10."""
    size = {"N": 4, "D": 2} if name == "LJ" else {"N": 5}
    cm = load(MODELS[name]).model(name, **size)
    assert isinstance(cm.system, StructuredHamiltonian) and cm.separable
    gen = torch.Generator().manual_seed(0)
    q = 2 * torch.randn(7, cm.n, generator=gen, dtype=F64)
    p = torch.randn(7, cm.n, generator=gen, dtype=F64)
    ref = assert_equals_unrolled(cm, q, p)
    # chunked blocks (one target row at a time) give the same force
    cm.system.chunk_elements = 1
    torch.testing.assert_close(cm.system.dH_dq(q, p), ref.dH_dq(q, p), rtol=1e-10, atol=1e-12)
    assert cm.system.pairs.symmetric == (name != "Asym")
    # gravity and LJ are radial, V(d) = f(r2): lowered in r2 (no d-programs)
    assert (cm.system.profile is not None) == (name != "Asym")
    assert "def pair_force" in cm.emit_torch() and "dV/d" in cm.emit_sympy()


def test_pair_force_autograd_and_leapfrog_energy():
    cm = load(MODELS["NBody"]).model("NBody", N=6, D=2, eps=0.1)
    gen = torch.Generator().manual_seed(1)
    q = 3 * torch.randn(3, cm.n, generator=gen, dtype=F64)
    p = 0.3 * torch.randn(3, cm.n, generator=gen, dtype=F64)
    qq = q.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(cm.system.hamiltonian(qq, p).sum(), qq)
    torch.testing.assert_close(cm.system.dH_dq(q, p), g, rtol=1e-10, atol=1e-12)
    tr = evolve(cm.system, q, p, 1e-3, 2000, "leapfrog", save_every=100)
    E = tr.energy
    rel = ((E - E[0]) / E[0].abs()).abs().max()
    assert float(rel) < 1e-4, float(rel)


def test_large_n_compiles_without_unrolling():
    """N = 2000 bodies in 3D (6000 pairs of coordinates > the unrolled cap) compile in seconds."""
    cm = load(MODELS["NBody"]).model("NBody", N=2000, D=3)
    assert cm.n == 6000 and cm.builder is None and cm.default_integrator == "leapfrog"
    q = torch.randn(1, cm.n, generator=torch.Generator().manual_seed(2), dtype=F64)
    f = cm.system.dH_dq(q, torch.zeros_like(q)).reshape(2000, 3)
    assert torch.isfinite(f).all()
    torch.testing.assert_close(f.sum(0), torch.zeros(3, dtype=F64), atol=1e-9, rtol=0)  # Newton 3
