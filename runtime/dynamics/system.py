"""Hamiltonian systems as torch callables: the contract between compiler, integrators and samplers.

A system is three batched callables over canonical coordinates ``q, p`` of shape ``(..., n)``
(n canonical pairs: several particles in d dimensions flattened, or a flattened lattice field):

    hamiltonian(q, p) -> (...),   dH_dq(q, p) -> (..., n),   dH_dp(q, p) -> (..., n),

plus ``separable`` (H = T(p) + V(q): dH_dq depends on q only and dH_dp on p only, which is what
leapfrog needs to be symplectic). The compiler's ``CompiledHamiltonian`` satisfies this protocol;
:func:`autograd_system` builds one from any differentiable H (a learned H_theta).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

Tensor = torch.Tensor
PhaseFn = Callable[[Tensor, Tensor], Tensor]


@runtime_checkable
class HamiltonianLike(Protocol):
    """Anything with the three callables and the separability flag."""

    hamiltonian: PhaseFn
    dH_dq: PhaseFn
    dH_dp: PhaseFn

    @property
    def separable(self) -> bool: ...


@dataclass
class HamiltonianSystem:
    """H(q, p) and its gradients as batched torch callables (shapes in the module docstring)."""

    hamiltonian: PhaseFn
    dH_dq: PhaseFn
    dH_dp: PhaseFn
    separable: bool = False
    name: str = "H"
    # Optional fused (dH_dq, dH_dp) in one pass (autograd systems: one backward, not two).
    gradients_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None

    def gradients(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """(dH/dq, dH/dp) at the same point."""
        if self.gradients_fn is not None:
            return self.gradients_fn(q, p)
        return self.dH_dq(q, p), self.dH_dp(q, p)

    def vector_field(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """Hamilton's equations: (qdot, pdot) = (dH/dp, -dH/dq)."""
        gq, gp = self.gradients(q, p)
        return gp, -gq


def as_system(obj: HamiltonianLike) -> HamiltonianSystem:
    """Wrap a compiled Hamiltonian (or anything with the protocol) as a HamiltonianSystem."""
    if isinstance(obj, HamiltonianSystem):
        return obj
    for attr in ("hamiltonian", "dH_dq", "dH_dp"):
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"{type(obj).__name__} has no callable '{attr}'")
    return HamiltonianSystem(
        obj.hamiltonian, obj.dH_dq, obj.dH_dp, bool(getattr(obj, "separable", False)),
        str(getattr(obj, "name", "H")),
    )  # fmt: skip


def _grads(fn: PhaseFn, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """(dH/dq, dH/dp) of sum(H) by autograd.

    Differentiable (create_graph) iff grad mode is on at the call: training through the vector
    field and Jacobians of a step work, while no_grad rollouts get cheap detached gradients.
    """
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        # Fresh nodes (clone / detached leaf): autograd.grad(H, q) must be the *partial*
        # derivative. Passing q itself would add paths through p when p was computed from q
        # (e.g. p after a leapfrog kick), giving the total derivative instead.
        qq = q.clone() if (differentiable and q.requires_grad) else q.detach().requires_grad_(True)
        pp = p.clone() if (differentiable and p.requires_grad) else p.detach().requires_grad_(True)
        H = fn(qq, pp).sum()
        gq, gp = torch.autograd.grad(H, (qq, pp), create_graph=differentiable, allow_unused=True)
    gq = torch.zeros_like(q) if gq is None else gq
    gp = torch.zeros_like(p) if gp is None else gp
    return gq, gp


def autograd_system(
    hamiltonian: PhaseFn, separable: bool = False, name: str = "H_theta"
) -> HamiltonianSystem:
    """A HamiltonianSystem whose gradients come from autograd of ``hamiltonian(q, p) -> (...)``.

    Declare ``separable=True`` only if H really is T(p) + V(q) (e.g. a separable HNN).
    """
    return HamiltonianSystem(
        hamiltonian,
        lambda q, p: _grads(hamiltonian, q, p)[0],
        lambda q, p: _grads(hamiltonian, q, p)[1],
        separable,
        name,
        lambda q, p: _grads(hamiltonian, q, p),
    )


# ---------------------------------------------------------------------------------------------
# Reference systems, hand-written (tests compare them against the compiler's lowering).
# ---------------------------------------------------------------------------------------------


def mass_spring(k: float = 1.0, m: float = 1.0) -> HamiltonianSystem:
    """H = p^2 / (2m) + k q^2 / 2 (Greydanus et al. 2019 use k = m = 1)."""
    return HamiltonianSystem(
        lambda q, p: (p * p).sum(-1) / (2 * m) + 0.5 * k * (q * q).sum(-1),
        lambda q, p: k * q,
        lambda q, p: p / m,
        True,
        "mass_spring",
    )


def pendulum(m: float = 1.0, length: float = 1.0, g: float = 3.0) -> HamiltonianSystem:
    """H = p^2 / (2 m l^2) + m g l (1 - cos q)."""
    inertia = m * length**2
    return HamiltonianSystem(
        lambda q, p: (p * p).sum(-1) / (2 * inertia) + m * g * length * (1 - torch.cos(q)).sum(-1),
        lambda q, p: m * g * length * torch.sin(q),
        lambda q, p: p / inertia,
        True,
        "pendulum",
    )


def kepler(m1: float = 1.0, m2: float = 1.0, G: float = 1.0, dim: int = 2) -> HamiltonianSystem:
    """Two bodies in ``dim`` dimensions, q = (x1, x2) flattened to (..., 2 dim):
    H = |p1|^2/(2 m1) + |p2|^2/(2 m2) - G m1 m2 / |x1 - x2|."""
    mass = torch.tensor([m1] * dim + [m2] * dim, dtype=torch.float64, device="cpu")  # .to(p)

    def sep(q: Tensor) -> tuple[Tensor, Tensor]:
        d = q[..., :dim] - q[..., dim:]
        return d, torch.sqrt((d * d).sum(-1, keepdim=True))

    def H(q: Tensor, p: Tensor) -> Tensor:
        _, r = sep(q)
        return (p * p / mass.to(p)).sum(-1) / 2 - G * m1 * m2 / r[..., 0]

    def dH_dq(q: Tensor, p: Tensor) -> Tensor:
        d, r = sep(q)
        f = G * m1 * m2 * d / r**3  # dV/dx1; dV/dx2 = -dV/dx1 (Newton's third law)
        return torch.cat([f, -f], dim=-1)

    return HamiltonianSystem(H, dH_dq, lambda q, p: p / mass.to(p), True, "kepler")


def nbody_gravity(
    masses: Tensor, dim: int = 3, G: float = 1.0, softening: float = 1e-2, chunk: int = 1024
) -> HamiltonianSystem:
    """N gravitating bodies, q, p of shape (..., N * dim) (particle-major):

        H = sum_i |p_i|^2 / (2 m_i) - G sum_{i<j} m_i m_j / sqrt(|x_i - x_j|^2 + eps^2).

    Pairwise terms are batched as matrix products: |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i.x_j
    and F_i = G m_i (x_i sum_j w_ij - sum_j w_ij x_j) with w_ij = m_j / r_ij^3, so no (N, N, dim)
    tensor is formed; ``chunk`` target rows at a time bound memory to O(chunk * N).
    """
    masses = masses.reshape(-1)
    N = masses.numel()
    eps2 = softening**2

    def split(x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-1], N, dim)

    def r2(x: Tensor, s: int) -> Tensor:
        """r_ij^2 + eps^2 for targets i in [s, s + chunk); self pairs set to +inf so that every
        inverse power of them is exactly 0: (..., c, N)."""
        xs = x[..., s : s + chunk, :]
        sq = (x * x).sum(-1)
        d2 = sq[..., s : s + chunk, None] + sq[..., None, :] - 2 * xs @ x.transpose(-1, -2)
        d2 = d2.clamp_min(0.0) + eps2
        rows = torch.arange(xs.shape[-2], device=x.device)
        d2[..., rows, rows + s] = float("inf")
        return d2

    def H(q: Tensor, p: Tensor) -> Tensor:
        x, m = split(q), masses.to(q)
        V = torch.zeros(x.shape[:-2], dtype=x.dtype, device=x.device)
        for s in range(0, N, chunk):
            pair = r2(x, s).rsqrt() @ m  # (..., c): sum_j m_j / r_ij
            V = V - 0.5 * G * (m[s : s + chunk] * pair).sum(-1)  # each pair counted twice
        return (split(p) ** 2).sum(-1).div(2 * m).sum(-1) + V

    def dH_dq(q: Tensor, p: Tensor) -> Tensor:
        x, m = split(q), masses.to(q)
        out = torch.empty_like(x)
        for s in range(0, N, chunk):
            d2 = r2(x, s)
            w = d2.rsqrt() / d2 * m  # m_j / r_ij^3, (..., c, N)
            xs = x[..., s : s + chunk, :]
            f = xs * w.sum(-1, keepdim=True) - w @ x  # sum_j w_ij (x_i - x_j)
            out[..., s : s + chunk, :] = G * m[s : s + chunk, None] * f
        return out.reshape(q.shape)

    def dH_dp(q: Tensor, p: Tensor) -> Tensor:
        m = masses.to(p)
        return (split(p) / m[:, None]).reshape(p.shape)

    return HamiltonianSystem(H, dH_dq, dH_dp, True, f"nbody{N}")
