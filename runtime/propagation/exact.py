"""The exact real-time evolution of a 1D grid Hamiltonian and the Gaussian packets it moves.

H = -D d^2/dx^2 + V on G cell-centred points of the periodic box [lower, upper] (spectral
kinetic energy, as the split-operator engine of ``evolve real_time``), a real symmetric G x G
matrix. With H = W diag(E) W^T, psi(t) = W exp(-i E t) W^T psi(0) exactly at every t (no
accumulated step error). Wavefunctions are (..., G) complex128 with sum |psi|^2 h = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..landscape.grid import GridSpec
from ..random import RandomStreams

Tensor = torch.Tensor
F64, C128 = torch.float64, torch.complex128


def kinetic_matrix(grid: GridSpec, D: float, device) -> Tensor:
    """-D d^2/dx^2 of the periodic grid in the Fourier basis: (G, G) real symmetric."""
    G = grid.points[0]
    k2 = grid.wavenumbers_squared(device, F64)
    eye = torch.eye(G, dtype=C128, device=device)
    K = torch.fft.ifft(D * k2[:, None] * torch.fft.fft(eye, dim=0), dim=0).real
    return (K + K.T) / 2


@dataclass
class ExactPropagator:
    """The grid H = W diag(E) W^T of a potential: ``x`` (G,) points, ``V`` (G,) potential,
    ``h`` spacing, ``energies`` E (G,) ascending, ``states`` W (G, G) real orthogonal."""

    x: Tensor
    V: Tensor
    h: float
    energies: Tensor
    states: Tensor

    @classmethod
    def of(cls, grid: GridSpec, V: Tensor, D: float) -> ExactPropagator:
        x = grid.axes(V.device, F64)[0]
        H = kinetic_matrix(grid, D, V.device) + torch.diag(V.to(F64))
        E, W = torch.linalg.eigh(H)
        return cls(x, V.to(F64), grid.spacing[0], E, W)

    @property
    def hamiltonian(self) -> Tensor:
        """H (G, G) real symmetric."""
        return (self.states * self.energies) @ self.states.T

    def step(self, dt: float) -> Tensor:
        """exp(-i H dt): (G, G) complex unitary."""
        W = self.states.to(C128)
        return (W * torch.exp(-1j * self.energies * dt)) @ W.T

    def evolve(self, psi0: Tensor, times: Tensor) -> Tensor:
        """psi(t) for psi0 (B, G) at times (B, T) or (T,): (B, T, G) complex."""
        W = self.states.to(C128)
        c0 = psi0 @ W  # (B, G) amplitudes on the eigenstates (W real: W^T psi = psi W)
        t = times if times.ndim == 2 else times.expand(psi0.shape[0], -1)
        phases = torch.exp(-1j * t[..., None].to(F64) * self.energies)  # (B, T, G)
        return (c0[:, None, :] * phases) @ W.T

    def energy(self, psi: Tensor) -> Tensor:
        """<psi|H|psi> / <psi|psi> (...,)."""
        c = psi @ self.states.to(C128)
        w = c.abs() ** 2
        return (w * self.energies).sum(-1) / w.sum(-1)


def gaussian_packets(x: Tensor, h: float, centres: Tensor, widths: Tensor,
                     momenta: Tensor) -> Tensor:  # fmt: skip
    """Normalised packets exp(-(x - c)^2 / (4 s^2) + i k x) on the grid x (G,), one per row of
    centres, widths, momenta (B,): (B, G) complex, sum |psi|^2 h = 1."""
    dx = x[None, :] - centres[:, None]
    psi = torch.polar(torch.exp(-(dx**2) / (4 * widths[:, None] ** 2)), momenta[:, None] * x)
    return psi / torch.sqrt((psi.abs() ** 2).sum(-1, keepdim=True) * h)


def random_packets(count: int, lower: float, upper: float, width: list[float], momentum: float,
                   spread: float, x: Tensor, h: float, streams: RandomStreams) -> Tensor:  # fmt: skip
    """``count`` packets (count, G): centres uniform in the middle ``spread`` of the box, widths
    uniform in ``width``, momenta uniform in [-momentum, momentum]."""
    u = streams.uniform((3, count), F64).to(x.device)
    mid, half = (lower + upper) / 2, spread * (upper - lower) / 2
    centres = mid + half * (2 * u[0] - 1)
    widths = width[0] + (width[1] - width[0]) * u[1]
    momenta = momentum * (2 * u[2] - 1)
    return gaussian_packets(x, h, centres, widths, momenta)


def inner(a: Tensor, b: Tensor, h: float) -> Tensor:
    """<a|b> = sum conj(a) b h over the last axis."""
    return (a.conj() * b).sum(-1) * h


def fidelity(exact: Tensor, learned: Tensor, h: float) -> Tensor:
    """|<exact|learned>|^2 / (<exact|exact> <learned|learned>): the overlap of the states' rays
    (the norm of the learned state is reported apart, as its drift)."""
    num = inner(exact, learned, h).abs() ** 2
    return num / (inner(exact, exact, h).real * inner(learned, learned, h).real).clamp_min(
        1e-300)


def coherent_centre(x0: float, k0: float, omega: float, t: Tensor) -> Tensor:
    """<x>(t) of any packet in V = omega^2 x^2 / 2 with D = 1/2 (Ehrenfest, exact for a
    harmonic potential): x0 cos(omega t) + (k0 / omega) sin(omega t)."""
    return x0 * torch.cos(omega * t) + (k0 / omega) * torch.sin(omega * t)


__all__ = ["ExactPropagator", "coherent_centre", "fidelity", "gaussian_packets", "inner",
           "kinetic_matrix", "random_packets"]
