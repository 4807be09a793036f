"""Field domains on sites lowered to tensors: the behaviour bound to their catalogue entries
(the gauge groups' link behaviour is bound by the gauge runtime).

A :class:`SiteDomain` knows a discrete domain's values, its Metropolis proposal (the flip of a
two-valued domain; a uniformly random other value otherwise), the global flip that the
``spin_flip`` symmetry acts by, and what ``magnetization`` means for it. Heat-bath draws need
only the values (each site drawn from its local Boltzmann weights over them). Configurations
hold the values themselves as floats, shape (B, *lattice.shape). ``real`` and ``angle`` fields
(:class:`RealLine`, :class:`Circle`) have proposals, flips and magnetizations too.
"""

from __future__ import annotations

from typing import Protocol

import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.ir.model import DomainIR


class Streams(Protocol):
    """The random streams a proposal draws from (the runtime's counter-based streams)."""

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor: ...

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype = ...) -> torch.Tensor: ...

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype = ...) -> torch.Tensor: ...


class SiteDomain:
    """A discrete domain of values v_0 < v_1 < ... < v_{q-1} (evenly spaced)."""

    def __init__(self, domain: DomainIR, dtype: torch.dtype, device: torch.device | str):
        self.domain = domain
        self.values = torch.tensor(domain.values(), dtype=dtype, device=device)
        self.q = len(self.values)
        self.lowest = float(self.values[0])
        self.step = float(self.values[1] - self.values[0])

    def index(self, s: torch.Tensor) -> torch.Tensor:
        """k with s = v_k, as int64."""
        return torch.round((s - self.lowest) / self.step).long()

    def propose(self, s: torch.Tensor, streams: Streams) -> torch.Tensor:
        """Metropolis proposal at every entry of s: the other value of a two-valued domain,
        else a uniformly random other value (symmetric, so the acceptance is min(1, e^-bdE))."""
        if self.q == 2:
            if self.lowest == -float(self.values[1]):
                return -s  # +-m: one operation fewer on the hot path
            return self.values[0] + self.values[1] - s
        shift = streams.integers(1, self.q, s.shape)
        return self.values[torch.remainder(self.index(s) + shift, self.q)]

    def flip(self, s: torch.Tensor) -> torch.Tensor:
        """The global flip: m -> -m on values symmetric about zero."""
        return -s

    def magnetization(self, flat: torch.Tensor) -> torch.Tensor:
        """M of configurations (B, N) -> (B,): the sum of the values."""
        return flat.sum(-1)


class Binary(SiteDomain):
    """0/1 units: flip s -> 1 - s; magnetization sum of 2 s - 1."""

    def flip(self, s: torch.Tensor) -> torch.Tensor:
        return 1 - s

    def magnetization(self, flat: torch.Tensor) -> torch.Tensor:
        return (2 * flat - 1).sum(-1)


class Potts(SiteDomain):
    """q states 0..q-1: the flip is the cyclic shift s -> s + 1 mod q; magnetization is the
    order parameter N (q max_k n_k / N - 1) / (q - 1), zero when all states are equally common."""

    def propose(self, s: torch.Tensor, streams: Streams) -> torch.Tensor:
        shift = streams.integers(1, self.q, s.shape)
        return torch.remainder(s + shift.to(s.dtype), self.q)

    def flip(self, s: torch.Tensor) -> torch.Tensor:
        return torch.remainder(s + 1, self.q)

    def magnetization(self, flat: torch.Tensor) -> torch.Tensor:
        N = flat.shape[1]
        counts = torch.nn.functional.one_hot(flat.long(), self.q).sum(1).to(flat.dtype)
        return N * (self.q * counts.max(-1).values / N - 1) / (self.q - 1)


class RealLine:
    """A real field: a Metropolis proposal x + step N(0, 1); magnetization the sum of x;
    the flip x -> -x. (Continuous fields are sampled by HMC or Langevin dynamics, which need
    the action's gradient rather than a proposal.)"""

    def __init__(self, domain: DomainIR, dtype: torch.dtype, device: torch.device | str):
        self.domain = domain
        self.dtype = dtype

    def propose(self, x: torch.Tensor, streams: Streams, step: float = 1.0) -> torch.Tensor:
        return x + step * streams.normal(tuple(x.shape), x.dtype)

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        return -x

    def magnetization(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.sum(-1)


class Circle(RealLine):
    """An angle in (-pi, pi]: a Metropolis proposal theta + step U(-1, 1), wrapped;
    magnetization |sum exp(i theta)|; the flip theta -> -theta."""

    def propose(self, x: torch.Tensor, streams: Streams, step: float = 1.0) -> torch.Tensor:
        move = step * (2 * streams.uniform(tuple(x.shape), x.dtype) - 1)
        return torch.remainder(x + move + torch.pi, 2 * torch.pi) - torch.pi

    def magnetization(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.cos(flat).sum(-1) ** 2 + torch.sin(flat).sum(-1) ** 2)


BEHAVIOURS: dict[str, type] = {
    "spin": SiteDomain, "z2": SiteDomain, "qubit": SiteDomain, "integer": SiteDomain,
    "binary": Binary, "potts": Potts, "real": RealLine, "angle": Circle,
}  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach the tensor behaviour of every discrete domain to its catalogue entry."""
    for name, behaviour in BEHAVIOURS.items():
        catalogue.domains.bind(name, behaviour)


def site_domain(domain: DomainIR, dtype: torch.dtype,
                device: torch.device | str = "cpu") -> SiteDomain:  # fmt: skip
    """The bound behaviour of a domain on sites (bound here on first use)."""
    entry = CATALOGUE.domains.lookup(domain.kind)
    if entry.implementation is None:
        bind(CATALOGUE)
    return entry.implementation(domain, dtype, device)
