"""Gibbs and Glauber dynamics of a compiled :class:`BoltzmannModel`, batched over chains.

Everything comes from the compiler: the local energies E_loc(x_k = v | rest) of every value and
the blocks (fields with no self-interaction). One sweep updates each field in turn:

- a block field (the hidden or visible layer of an RBM) draws all its sites at once from the
  factorised conditional P(x_k = v | rest) ~ exp(-beta E_loc(k, v));
- a self-interacting field (Hopfield, SK, inverse Ising) is updated site by site in a random
  order (``sequential``, heat-bath = Glauber), or all sites at once from the current local
  fields (``parallel``: synchronous Little dynamics; not detailed balance, the classic
  Hopfield retrieval dynamics).

T = 0 is zero-temperature dynamics: each update takes the value of lowest local energy,
keeping the current one on ties (s_k = sign(h_k), unchanged where h_k = 0).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from physml_lang.compiler.boltzmann import BoltzmannModel
from pydantic import BaseModel, ConfigDict, Field


class GibbsOptions(BaseModel):
    """Options of Glauber / Gibbs dynamics."""

    model_config = ConfigDict(extra="forbid")
    T: float = Field(1.0, ge=0.0, description="temperature; 0: zero-temperature dynamics")
    update: Literal["sequential", "parallel"] = Field(
        "sequential", description="self-interacting fields: site by site or all at once"
    )
    sweeps: int = Field(20, ge=1, le=1_000_000, description="sweeps (at most, at T = 0)")


def draw(energies: torch.Tensor, beta, current: torch.Tensor, values: torch.Tensor,
         generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Sample values from exp(-beta E) over the leading (value) axis of ``energies`` (q, ...).

    ``beta``: a number (inf for T = 0) or a tensor broadcasting against energies[0]."""
    if not isinstance(beta, torch.Tensor) and math.isinf(beta):
        best = energies.min(0).values
        keep = torch.zeros_like(current, dtype=torch.bool)
        for k in range(len(values)):  # keep the current value where it is a minimiser
            keep |= (current == values[k]) & (energies[k] <= best)
        return torch.where(keep, current, values[energies.argmin(0)])
    if len(values) == 2:
        p1 = torch.sigmoid(-beta * (energies[1] - energies[0]))
        u = torch.rand(p1.shape, generator=generator, device=p1.device, dtype=p1.dtype)
        return torch.where(u < p1, values[1], values[0])
    logits = -beta * energies
    w = torch.exp(logits - logits.amax(0, keepdim=True))
    cdf = torch.cumsum(w, 0)
    u = torch.rand(cdf.shape[1:], generator=generator, device=cdf.device, dtype=cdf.dtype)
    k = (u.unsqueeze(0) * cdf[-1:] > cdf).sum(0).clamp(max=len(values) - 1)
    return values[k]


class GibbsSampler:
    """Sweeps of a Boltzmann model. ``beta``: a number or a (B,) tensor (one per chain);
    ``clamped``: fields kept fixed (the data in a positive phase)."""

    def __init__(self, model: BoltzmannModel, beta, generator: torch.Generator,
                 update: str = "sequential", clamped: tuple[str, ...] = ()):  # fmt: skip
        self.model = model
        self.generator = generator
        self.update = update
        self.clamped = set(clamped)
        self.set_beta(beta)
        dev = model._device()
        self.values = {f: torch.tensor(d.values(), dtype=model.dtype, device=dev)
                       for f, d in model.domains.items()}  # fmt: skip
        # update order: the fields that are not the data first (h | v, then v | h)
        fields = list(model.domains)
        self.order = [f for f in fields[1:] if f not in self.clamped] + (
            [fields[0]] if fields[0] not in self.clamped else [])  # fmt: skip

    def set_beta(self, beta) -> None:
        if isinstance(beta, torch.Tensor):
            self.beta = beta.reshape(-1, 1).to(self.model.dtype)
        else:
            self.beta = float("inf") if beta == float("inf") else float(beta)

    def _beta_rows(self):
        return self.beta[:, 0] if isinstance(self.beta, torch.Tensor) else self.beta

    @torch.no_grad()
    def update_field(self, state: dict, field: str) -> dict:
        m = self.model
        x = state[field]
        if field in m.blocks or self.update == "parallel":
            e = m.local_energies(field, state)
            return {**state, field: draw(e, self.beta, x, self.values[field], self.generator)}
        n = x.shape[1]
        x = x.clone()
        state = {**state, field: x}
        perm = torch.randperm(n, generator=self.generator, device="cpu").to(x.device)
        beta = self._beta_rows()
        for k in perm.tolist():  # a loop over update steps (one site in every chain)
            e = m.local_energies(field, state, k)
            x[:, k] = draw(e, beta, x[:, k], self.values[field], self.generator)
        return state

    @torch.no_grad()
    def sweep(self, state: dict) -> dict:
        for f in self.order:
            state = self.update_field(state, f)
        return state


def overlap(s: torch.Tensor, patterns: torch.Tensor, binary: bool = False) -> torch.Tensor:
    """m = (1/N) sum_i xi_i s_i over the last axis (binary units mapped to 2 s - 1)."""
    if binary:
        s, patterns = 2 * s - 1, 2 * patterns - 1
    return (s * patterns).mean(-1)
