"""Radial pair potentials V(d) = f(r2): detection, the r2 lowering with shared powers, and the
large-block kernels (in-place r2, einsum contraction) against direct formulas in float64."""

import pytest
import sympy
import torch

from physml_lang.api import load
from physml_lang.compiler.derive.hamiltonian import R2, radial_profile
from physml_lang.compiler.lower.hamiltonian import (
    StructuredHamiltonian,
    lower_hamiltonian,
    lower_program,
)
from physml_lang.compiler.lower.torch_backend import TORCH

from .conftest import assert_equals_unrolled

F64 = torch.float64
d0, d1, d2 = sympy.symbols("d0 d1 d2", real=True)
D3 = (d0, d1, d2)
rr = d0**2 + d1**2 + d2**2


@pytest.mark.parametrize(
    "F, f",
    [
        (4 * (rr**-6 - rr**-3), 4 * (R2**-6 - R2**-3)),
        (-1 / sympy.sqrt(rr + sympy.Rational(1, 100)), -1 / sympy.sqrt(R2 + sympy.Rational(1, 100))),
        (sympy.exp(-sympy.sqrt(rr)), sympy.exp(-sympy.sqrt(R2))),
        ((sympy.sqrt(rr) - 1) ** 2, (sympy.sqrt(R2) - 1) ** 2),
    ],
)  # fmt: skip
def test_radial_profile_found(F, f):
    assert sympy.simplify(radial_profile(F, D3) - f) == 0


@pytest.mark.parametrize(
    "F", [d0**2 + 2 * d1**2 + d2**2, sympy.cos(d0) + sympy.cos(d1), d0 * rr, d0**2 * d1**2]
)
def test_radial_profile_rejects_non_radial(F):
    assert radial_profile(F, D3) is None


@pytest.mark.parametrize(
    "e",
    [
        -48 * R2**-7 + 24 * R2**-4,
        (R2 + sympy.Rational(1, 10**4)) ** sympy.Rational(-3, 2),
        R2 ** sympy.Rational(5, 2) + 1 / R2 + R2 ** sympy.Rational(-7, 2) + R2**12,
        sympy.exp(-R2) * R2**5 - R2**-5,
    ],
)
def test_shared_powers_equal_plain_lowering(e):
    shared = lower_program([e], [R2], {R2: "r2"}, None, "f", share_powers=True, backend=TORCH)
    plain = lower_program([e], [R2], {R2: "r2"}, None, "f", backend=TORCH)
    assert not any("**" in line for line in shared.lines + shared.out_srcs)  # no torch.pow
    x = torch.rand(50, dtype=F64, generator=torch.Generator().manual_seed(0)) + 0.3
    ref = plain.run(x)[0]
    # terms of opposite sign nearly cancel near the LJ minimum: compare to the terms' size
    torch.testing.assert_close(shared.run(x)[0], ref, rtol=1e-13, atol=1e-13 * float(
        sum(abs(a) for a in sympy.Add.make_args(e)).subs(R2, 0.3)))  # fmt: skip


LJ3 = """
model LJ(N: int = 5, m: real = 1, eps: real = 0.7, sigma: real = 1.1) {
    phase_space (q, p): real[N, 3]
    let s6[i, j] = (sigma^2 / sum((q[i, a] - q[j, a])^2 for a in dims))^3
    kinetic T = sum(p[i, a]^2 / (2 * m) for i in particles for a in dims)
    potential V = sum(4 * eps * (s6[i, j]^2 - s6[i, j]) for (i, j) in pairs)
}"""

ANISO = """
model Aniso(N: int = 4, k: real = 0.3) {
    phase_space (q, p): real[N, 2]
    kinetic T = sum(p[i, a]^2 / 2 for i in particles for a in dims)
    potential V = sum(k * (q[i, 0] - q[j, 0])^2 + (q[i, 1] - q[j, 1])^4 / 4
                      + exp(-(q[i, 0] - q[j, 0])^2 - 2 * (q[i, 1] - q[j, 1])^2) for (i, j) in pairs)
}"""


def lj_forces(x: torch.Tensor, eps: float, sigma: float) -> torch.Tensor:
    """Direct dV/dx of sum_{i<j} 4 eps ((sigma/r)^12 - (sigma/r)^6), x (B, N, 3)."""
    d = x[:, :, None, :] - x[:, None, :, :]
    r2 = (d * d).sum(-1)
    r2 = r2 + torch.eye(x.shape[1], dtype=x.dtype)  # self pairs: d = 0 anyway
    s6 = (sigma**2 / r2) ** 3
    w = 24 * eps * (s6 - 2 * s6 * s6) / r2
    return (d * w[..., None]).sum(2)


def test_radial_path_equals_direct():
    """N = 5 LJ in 3D (float64): the r2 lowering's energy and forces equal direct formulas."""
    cm = load(LJ3).model("LJ", N=5)
    sys = cm.system
    assert isinstance(sys, StructuredHamiltonian) and sys.profile is not None
    assert "r2_inv" in cm.emit_torch() and "**" not in cm.emit_torch().split("def pair(")[1]
    gen = torch.Generator().manual_seed(3)
    q = 1.6 * torch.randn(4, cm.n, generator=gen, dtype=F64)
    p = torch.randn(4, cm.n, generator=gen, dtype=F64)
    x = q.reshape(4, 5, 3)
    direct = lj_forces(x, 0.7, 1.1).reshape(4, -1)
    torch.testing.assert_close(sys.dH_dq(q, p), direct, rtol=1e-10, atol=1e-12)
    d = x[:, :, None, :] - x[:, None, :, :]
    iu = torch.triu_indices(5, 5, 1)
    s6 = (1.1**2 / (d * d).sum(-1)[:, iu[0], iu[1]]) ** 3
    E = 4 * 0.7 * (s6 * s6 - s6).sum(-1) + 0.5 * (p * p).sum(-1)
    torch.testing.assert_close(sys.hamiltonian(q, p), E, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sys.dH_dp(q, p), p, rtol=0, atol=0)


@pytest.mark.slow
def test_radial_path_equals_unrolled():
    """N = 3 LJ in 3D (float64; the unrolled reference is slow to derive): the r2 lowering
    equals the unrolled symbolic H and its gradients to 1e-10."""
    cm = load(LJ3).model("LJ", N=3)
    gen = torch.Generator().manual_seed(3)
    q = 1.6 * torch.randn(4, cm.n, generator=gen, dtype=F64)
    p = torch.randn(4, cm.n, generator=gen, dtype=F64)
    assert_equals_unrolled(cm, q, p)


def test_radial_large_blocks_and_chunks():
    """N = 150 (the in-place r2 / einsum kernels), one block and many, vs direct forces and
    autograd of the (radial) energy."""
    cm = load(LJ3).model("LJ", N=150)
    sys = cm.system
    side = torch.arange(6, dtype=F64)
    grid = torch.stack(torch.meshgrid(side, side, side, indexing="ij"), -1).reshape(-1, 3)[:150]
    gen = torch.Generator().manual_seed(4)
    x = 1.3 * grid + 0.1 * torch.randn(2, 150, 3, generator=gen, dtype=F64)
    q = x.reshape(2, -1)
    p = torch.zeros_like(q)
    direct = lj_forces(x, 0.7, 1.1).reshape(2, -1)
    scale = float(direct.abs().max())
    assert float((sys.dH_dq(q, p) - direct).abs().max()) <= 1e-10 * scale
    sys.chunk_elements = 3 * 150 * 2 * 7  # 7 rows per block
    assert float((sys.dH_dq(q, p) - direct).abs().max()) <= 1e-10 * scale
    qq = q.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(sys.hamiltonian(qq, p).sum(), qq)
    assert float((g - direct).abs().max()) <= 1e-10 * scale


def test_non_radial_pair_keeps_general_path():
    """An even but anisotropic pair potential uses the per-component gradients and still equals
    the unrolled reference."""
    cm = load(ANISO).model("Aniso", N=4)
    sys = cm.system
    assert sys.pairs.symmetric and sys.profile is None and not sys.radial
    params = {sympy.Symbol(k, real=True): float(v) for k, v in cm.builder.params.items()}
    ref = lower_hamiltonian(cm.derivation, params)
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(6, cm.n, generator=gen, dtype=F64)
    p = torch.randn(6, cm.n, generator=gen, dtype=F64)
    for f in ("hamiltonian", "dH_dq", "dH_dp"):
        a, b = getattr(sys, f)(q, p), getattr(ref, f)(q, p)
        assert float((a - b).abs().max()) <= 1e-10 * float(b.abs().max().clamp_min(1.0)), f
