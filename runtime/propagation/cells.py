"""Recurrent cells psi_t -> psi_(t + dt) of a wavefunction on G grid points (the ``rnn``
learner of the landscape family); psi is (B, G) complex128, normalised as sum |psi|^2 h = 1.

- :class:`UnitaryCell`: psi' = exp(-i Theta) psi, Theta = S + i A with S real symmetric and A
  real antisymmetric (so Theta is Hermitian and exp(-i Theta) unitary: the norm is kept to
  round-off at every step, whatever the weights). Theta is dt H_learned; it starts at 0 (the
  identity step).
- :class:`PlainCell`: a residual Elman cell on x = (Re psi, Im psi) sqrt(h) (2G reals),
  x' = x + L x + W2 act(W1 x + b1) + b2: it can represent the exact (linear) step, but nothing
  keeps |psi| fixed.

``steps(psi, k)`` applies k recurrent steps and returns the (B, k, G) states after each.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from physml_lang.catalogue.propagation import RNNOptions

from ..device import HOST
from ..dynamics.learners import _ACTIVATIONS

Tensor = torch.Tensor
F64, C128 = torch.float64, torch.complex128


class UnitaryCell(nn.Module):
    """psi' = exp(-i Theta) psi with a learned Hermitian generator Theta (G x G)."""

    def __init__(self, G: int):
        super().__init__()
        self.S = nn.Parameter(torch.zeros(G, G, dtype=F64, device=HOST))
        self.A = nn.Parameter(torch.zeros(G, G, dtype=F64, device=HOST))

    def generator(self) -> Tensor:
        """Theta = (S + S^T) / 2 + i (A - A^T) / 2: (G, G) complex Hermitian."""
        return torch.complex((self.S + self.S.T) / 2, (self.A - self.A.T) / 2)

    def propagator(self) -> Tensor:
        """exp(-i Theta): (G, G) complex unitary."""
        return torch.linalg.matrix_exp(-1j * self.generator())

    def steps(self, psi: Tensor, k: int) -> Tensor:
        U = self.propagator().T  # rows of psi: psi' = psi U^T
        out = []
        for _ in range(k):
            psi = psi @ U
            out.append(psi)
        return torch.stack(out, 1)


class PlainCell(nn.Module):
    """x' = x + L x + W2 act(W1 x + b1) + b2 on x = (Re psi, Im psi) sqrt(h)."""

    def __init__(self, G: int, h: float, hidden: int, activation: str = "tanh",
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.G, self.scale = G, math.sqrt(h)
        self.L = nn.Linear(2 * G, 2 * G, bias=False, dtype=F64, device=HOST)
        self.W1 = nn.Linear(2 * G, hidden, dtype=F64, device=HOST)
        self.W2 = nn.Linear(hidden, 2 * G, dtype=F64, device=HOST)
        self.act = _ACTIVATIONS[activation]()
        with torch.no_grad():  # start near the identity step; weights from the run's streams
            self.L.weight.zero_()
            self.W1.weight.copy_(torch.randn(hidden, 2 * G, generator=generator, dtype=F64,
                                             device=HOST) / math.sqrt(2 * G))  # fmt: skip
            self.W1.bias.zero_()
            self.W2.weight.copy_(0.01 * torch.randn(2 * G, hidden, generator=generator,
                                                    dtype=F64, device=HOST) / math.sqrt(hidden))
            self.W2.bias.zero_()

    def cell(self, x: Tensor) -> Tensor:
        return x + self.L(x) + self.W2(self.act(self.W1(x)))

    def steps(self, psi: Tensor, k: int) -> Tensor:
        x = torch.cat([psi.real, psi.imag], -1) * self.scale
        out = []
        for _ in range(k):
            x = self.cell(x)
            out.append(x)
        y = torch.stack(out, 1) / self.scale
        return torch.complex(y[..., : self.G], y[..., self.G :])


def build_cell(o: RNNOptions, G: int, h: float,
               generator: torch.Generator | None = None) -> UnitaryCell | PlainCell:  # fmt: skip
    """The ``rnn`` learner's cell for a grid of G points of spacing h."""
    if o.unitary:
        return UnitaryCell(G)
    return PlainCell(G, h, o.hidden, o.activation, generator)


__all__ = ["PlainCell", "UnitaryCell", "build_cell"]
