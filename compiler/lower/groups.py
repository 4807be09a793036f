"""Gauge groups Z2, U(1), SU(2): storage, group law, Haar sampling and projection.

Storage conventions (fixed; the compiler relies on them):

- ``z2``: float tensor of +-1, group_shape ().
- ``u1``: float angle theta in (-pi, pi], group_shape (); the element is exp(i theta).
- ``su2``: complex 2x2 matrices, group_shape (2, 2).

Besides the storage form each group has a *linear* form in which sums of group elements (staples)
make sense: z2 -> the float itself, u1 -> the complex phase exp(i theta), su2 -> the matrix. The
lattice code (plaquettes, staples, Wilson loops) works in the linear form through ``lin_mul``,
``lin_dag`` and ``lin_retr`` (Re tr / N). ``as_matrix`` gives every group as (..., N, N) complex
matrices for the gauge-equivariant layers.

SU(2) elements are also handled as real quaternions a = (a0, a1, a2, a3), |a| = 1, with
U = a0 I + i (a1 sigma1 + a2 sigma2 + a3 sigma3).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from pydantic import BaseModel, ConfigDict

Tensor = torch.Tensor


class RandomDraws(Protocol):
    """Counter-based random streams (``runtime/random.py``'s RandomStreams): every draw has
    shape (B, *rest) with the stream (a chain, a sample) on the leading axis."""

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype = ...) -> Tensor: ...

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype = ...) -> Tensor: ...

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> Tensor: ...


# Where a group's random elements come from: streams (samplers: chain b draws the same numbers
# in any batch and on any device) or a torch generator (one-off host draws: the random gauge
# transformations of invariance checks).
Randomness = RandomDraws | torch.Generator | None


def _host(source: Randomness) -> bool:
    return source is None or isinstance(source, torch.Generator)


def _on(t: Tensor, device) -> Tensor:
    return t if device is None else t.to(device)


def random_uniform(shape: tuple[int, ...], source: Randomness, device=None,
                   dtype: torch.dtype = torch.float64) -> Tensor:  # fmt: skip
    """Uniform on [0, 1) (shape), from streams (stream on the leading axis) or a generator."""
    if _host(source):
        return torch.rand(shape, generator=source, device=device, dtype=dtype)
    return _on(source.uniform(shape, dtype), device)


def random_normal(shape: tuple[int, ...], source: Randomness, device=None,
                  dtype: torch.dtype = torch.float64) -> Tensor:  # fmt: skip
    """Standard normal (shape), from streams (stream on the leading axis) or a generator."""
    if _host(source):
        return torch.randn(shape, generator=source, device=device, dtype=dtype)
    return _on(source.normal(shape, dtype), device)


def random_integers(low: int, high: int, shape: tuple[int, ...], source: Randomness,
                    device=None) -> Tensor:  # fmt: skip
    """Uniform int64 in [low, high) (shape), from streams or a generator."""
    if _host(source):
        return torch.randint(low, high, shape, generator=source, device=device)
    return _on(source.integers(low, high, shape), device)


def random_unit3(shape: tuple[int, ...], source: Randomness, device=None,
                 dtype: torch.dtype = torch.float64) -> Tensor:  # fmt: skip
    """Unit 3-vectors uniform on the sphere, (*shape, 3): by Archimedes' theorem the height
    z is uniform on [-1, 1], the azimuth on [0, 2 pi) (two uniforms; three normals cost more)."""
    z = 2 * random_uniform(shape, source, device, dtype) - 1
    phi = (2 * math.pi) * random_uniform(shape, source, device, dtype)
    r = torch.sqrt((1 - z * z).clamp_min(0))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def wrap_angle(theta: Tensor) -> Tensor:
    """Wrap angles into (-pi, pi]."""
    return math.pi - torch.remainder(math.pi - theta, 2 * math.pi)


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


def su2_from_quaternion(a: Tensor) -> Tensor:
    """(..., 4) real -> (..., 2, 2) complex a0 I + i a.sigma (SU(2) when |a| = 1)."""
    a0, a1, a2, a3 = a.unbind(-1)
    m00 = torch.complex(a0, a3)
    m01 = torch.complex(a2, a1)
    m10 = torch.complex(-a2, a1)
    m11 = torch.complex(a0, -a3)
    return torch.stack([torch.stack([m00, m01], -1), torch.stack([m10, m11], -1)], -2)


def su2_to_quaternion(m: Tensor) -> Tensor:
    """(..., 2, 2) complex -> (..., 4) real: the quaternion part of any 2x2 matrix.

    For M = a0 I + i a.sigma + (rest) this extracts (a0, a1, a2, a3), i.e. a0 = Re tr M / 2 and
    a_k = Im tr(sigma_k M) / 2.
    """
    m00, m01 = m[..., 0, 0], m[..., 0, 1]
    m10, m11 = m[..., 1, 0], m[..., 1, 1]
    a0 = (m00.real + m11.real) / 2
    a1 = (m01.imag + m10.imag) / 2
    a2 = (m01.real - m10.real) / 2
    a3 = (m00.imag - m11.imag) / 2
    return torch.stack([a0, a1, a2, a3], -1)


class NoOptions(BaseModel):
    """Groups take no options; the schema exists so every registry entry has one."""

    model_config = ConfigDict(extra="forbid")


class GaugeGroup:
    """Interface of a compact gauge group in the conventions above."""

    name: str = ""
    N: int = 1  # trace normalisation: Re tr / N
    group_shape: tuple[int, ...] = ()

    # --- storage form -------------------------------------------------------------------
    def identity(self, shape: tuple[int, ...], device=None, dtype=None) -> Tensor:
        raise NotImplementedError

    def random(self, shape: tuple[int, ...], streams: Randomness, device=None,
               dtype=None) -> Tensor:  # fmt: skip
        """Haar-random elements with batch shape ``shape`` (the chain on its leading axis when
        drawn from streams)."""
        raise NotImplementedError

    def multiply(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def dagger(self, a: Tensor) -> Tensor:
        return self.inverse(a)

    def retr(self, a: Tensor) -> Tensor:
        """Re tr(a) / N, shape without the group dims."""
        return self.lin_retr(self.to_lin(a))

    def project(self, a: Tensor) -> Tensor:
        """Project (nearly-)group storage back onto the group (reunitarise)."""
        raise NotImplementedError

    def distance_from_group(self, a: Tensor) -> Tensor:
        """Max deviation from the group constraints (0 for exact elements)."""
        raise NotImplementedError

    # --- linear form ----------------------------------------------------------------------
    def to_lin(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def from_lin(self, m: Tensor) -> Tensor:
        """Linear form (of a group element, possibly slightly off) -> storage form."""
        raise NotImplementedError

    def lin_mul(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def lin_dag(self, a: Tensor) -> Tensor:
        return a.conj() if a.is_complex() else a

    def lin_retr(self, a: Tensor) -> Tensor:
        return a.real if a.is_complex() else a

    def lin_tr(self, a: Tensor) -> Tensor:
        """tr(a) / N as a complex (or real for z2) tensor."""
        return a

    def lin_zeros_like(self, a: Tensor) -> Tensor:
        return torch.zeros_like(a)

    def lin_identity_like(self, a: Tensor) -> Tensor:
        return torch.ones_like(a)

    def as_matrix(self, a: Tensor) -> Tensor:
        """Storage -> (..., N, N) complex matrices (for the equivariant layers)."""
        lin = self.to_lin(a)
        if not lin.is_complex():
            lin = torch.complex(lin, torch.zeros_like(lin))
        return lin[..., None, None]

    def __repr__(self) -> str:
        return f"GaugeGroup({self.name})"


class Z2(GaugeGroup):
    """Z2 = {+1, -1} stored as float."""

    name = "z2"
    N = 1

    def identity(self, shape, device=None, dtype=None):
        return torch.ones(shape, device=device, dtype=dtype or torch.float64)

    def random(self, shape, streams, device=None, dtype=None):
        bits = random_integers(0, 2, shape, streams, device)
        return (2 * bits - 1).to(dtype or torch.float64)

    def multiply(self, a, b):
        return a * b

    def inverse(self, a):
        return a

    def project(self, a):
        return torch.where(a >= 0, torch.ones_like(a), -torch.ones_like(a))

    def distance_from_group(self, a):
        return (a.abs() - 1).abs().amax()

    def to_lin(self, a):
        return a

    def from_lin(self, m):
        return self.project(m.real if m.is_complex() else m)


class U1(GaugeGroup):
    """U(1) stored as the angle theta in (-pi, pi]; linear form exp(i theta)."""

    name = "u1"
    N = 1

    def identity(self, shape, device=None, dtype=None):
        return torch.zeros(shape, device=device, dtype=dtype or torch.float64)

    def random(self, shape, streams, device=None, dtype=None):
        u = random_uniform(shape, streams, device, dtype or torch.float64)
        return wrap_angle(math.pi * (2 * u - 1))

    def multiply(self, a, b):
        return wrap_angle(a + b)

    def inverse(self, a):
        return wrap_angle(-a)

    def project(self, a):
        return wrap_angle(a)

    def distance_from_group(self, a):
        # Stored angles are always group elements; report range violations.
        return torch.relu(a.abs() - math.pi).amax()

    def retr(self, a):
        return torch.cos(a)

    def to_lin(self, a):
        return torch.polar(torch.ones_like(a), a)

    def from_lin(self, m):
        return torch.angle(m)


class SU2(GaugeGroup):
    """SU(2) stored as complex 2x2 matrices."""

    name = "su2"
    N = 2
    group_shape = (2, 2)

    def identity(self, shape, device=None, dtype=None):
        dtype = _complex_dtype(dtype or torch.complex128)
        eye = torch.eye(2, device=device, dtype=dtype)
        return eye.expand(*shape, 2, 2).clone()

    def random(self, shape, streams, device=None, dtype=None):
        rdtype = _real_dtype(dtype or torch.complex128)
        a = random_normal((*shape, 4), streams, device, rdtype)
        return su2_from_quaternion(a / a.norm(dim=-1, keepdim=True))

    def random_near_identity(self, shape, eps: float, streams: Randomness, device=None,
                             dtype=None) -> Tensor:  # fmt: skip
        """exp(i alpha n.sigma) with n uniform on S^2 and alpha uniform in (-eps, eps).

        The distribution is invariant under R -> R^dagger (n -> -n), as Metropolis needs.
        """
        rdtype = _real_dtype(dtype or torch.complex128)
        n = random_unit3(shape, streams, device, rdtype)
        alpha = eps * (2 * random_uniform(shape, streams, device, rdtype) - 1)
        a = torch.cat([torch.cos(alpha)[..., None], torch.sin(alpha)[..., None] * n], -1)
        return su2_from_quaternion(a)

    def multiply(self, a, b):
        return a @ b

    def inverse(self, a):
        return a.conj().transpose(-1, -2)

    def project(self, a):
        q = su2_to_quaternion(a)
        return su2_from_quaternion(q / q.norm(dim=-1, keepdim=True))

    def distance_from_group(self, a):
        eye = torch.eye(2, dtype=a.dtype, device=a.device)
        unit = (a @ a.conj().transpose(-1, -2) - eye).abs().amax()
        det = (torch.linalg.det(a) - 1).abs().amax()
        return torch.maximum(unit, det)

    def retr(self, a):
        return (a[..., 0, 0].real + a[..., 1, 1].real) / 2

    def to_lin(self, a):
        return a

    def from_lin(self, m):
        return self.project(m)

    def lin_mul(self, a, b):
        return a @ b

    def lin_dag(self, a):
        return a.conj().transpose(-1, -2)

    def lin_retr(self, a):
        return (a[..., 0, 0].real + a[..., 1, 1].real) / 2

    def lin_tr(self, a):
        return (a[..., 0, 0] + a[..., 1, 1]) / 2

    def lin_identity_like(self, a):
        eye = torch.eye(2, dtype=a.dtype, device=a.device)
        return eye.expand_as(a).clone()

    def as_matrix(self, a):
        return a


GROUPS: dict[str, tuple[type[BaseModel], type[GaugeGroup]]] = {
    "z2": (NoOptions, Z2),
    "u1": (NoOptions, U1),
    "su2": (NoOptions, SU2),
}


def get_group(group: str | GaugeGroup, **options) -> GaugeGroup:
    """Resolve a group by name (validating options against its schema) or pass one through."""
    if isinstance(group, GaugeGroup):
        return group
    if group not in GROUPS:
        raise KeyError(f"unknown gauge group {group!r}; known: {sorted(GROUPS)}")
    schema, factory = GROUPS[group]
    schema(**options)
    return factory()
