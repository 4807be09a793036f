"""Markov-chain samplers of discrete lattice fields, batched over independent chains.

Every sampler reads only what the compiler derived: the local energy E_loc(x, v), the flip
energy change, the colouring of the interaction graph, or the pair couplings K_ij. Nothing
model-specific lives here. Chains carry their own inverse temperature ``beta`` (shape (B,)), so
a temperature scan runs as one batch.

- ``metropolis``: single-site Metropolis; colour-parallel (checkerboard) updates where a
  colouring exists, random-site updates otherwise. The proposal is the field domain's own (the
  flip of a two-valued domain; a uniformly random other value otherwise).
- ``heatbath`` (``glauber``): draws s_x from exp(-beta E_loc(x, v)) over the domain's values.
- ``wolff``: single-cluster updates for E = -sum K_ij s_i s_j (spin-flip symmetric models);
  one step grows and flips one cluster per chain.
"""

from __future__ import annotations

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.spins import (
    SamplerOptions,
)
from physml_lang.compiler.derive.local import CANDIDATE
from physml_lang.compiler.lower.domains import site_domain
from physml_lang.compiler.models.lattice import LatticeModel

from .local_kernels import GeneratedSweep
from .plans.sample import sampled_field
from .random import RandomStreams


def parallel_acceptance(beta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Metropolis acceptance for colour-parallel updates: min(1, exp(-beta dE)), but 1/2 at dE = 0.

    With zero-energy flips always accepted, colour-parallel Metropolis is not ergodic: on a chain
    the stripes ++--++-- flip deterministically forever. Any a(dE) with
    a(dE) / a(-dE) = exp(-beta dE) keeps detailed balance; a(0) = 1/2 breaks the cycles.
    """
    return torch.where(delta == 0, 0.5, torch.exp(-beta * delta))


class Sampler:
    """Base: holds the compiled model, one field, the chains' beta and their random streams
    (chain b draws from stream b: the same numbers on every device and in every batch size).
    ``name``: the catalogue entry whose static facts say where the sampler applies."""

    name = ""

    def __init__(self, cm: LatticeModel, options: SamplerOptions, beta: torch.Tensor,
                 streams: RandomStreams, field: str | None = None):  # fmt: skip
        self.cm = cm
        self.options = options
        self.streams = streams
        entry = CATALOGUE.samplers.lookup(self.name, "lattice")
        self.field = sampled_field(entry, options, cm.derivation, field)
        self.fk = cm.fields[self.field]
        self.domain = cm.model.fields[self.field].domain
        self.site_domain = site_domain(self.domain, cm.dtype, beta.device)
        self.values = self.site_domain.values
        self.shape = cm.lattice.shape
        self.beta = beta.to(cm.dtype).reshape(-1, *([1] * len(self.shape)))
        self.device = beta.device
        # per-chain counts, kept on the device (no host sync on the hot path); the sample task
        # tracks acceptance on measured sweeps only, to keep burn-in at the bare update cost
        self.track_acceptance = True
        self.accepted = torch.zeros(self.beta.shape[0], dtype=torch.float64, device=beta.device)
        self.proposed = torch.zeros_like(self.accepted)

    @classmethod
    def configurations(cls, cm: LatticeModel, options: SamplerOptions, *, n: int, T: float,
                       seed: int, burn_in: int, thin: int) -> np.ndarray:  # fmt: skip
        """``n`` configurations (n, *lattice.shape) of the chosen field at temperature T (as
        float64 numpy): ``options.chains`` chains on the CPU, ``burn_in`` sweeps, then one
        configuration per chain every ``thin`` sweeps."""
        chains = options.chains
        sampler = cls(cm, options, torch.full((chains,), 1.0 / T, device="cpu"), RandomStreams(seed))
        state = sampler.initial_state()
        out = []
        with torch.no_grad():
            for _ in range(burn_in):
                state = sampler.sweep(state)
            for _ in range(-(-n // chains)):
                for _ in range(thin):
                    state = sampler.sweep(state)
                out.append(state[sampler.field].clone())
        x = torch.stack(out, 1).reshape(-1, *cm.lattice.shape)[:n]
        return x.double().numpy()

    @property
    def chains(self) -> int:
        return self.beta.shape[0]

    def initial_state(self) -> dict[str, torch.Tensor]:
        B = self.chains
        if self.options.start == "ordered":
            s = torch.full((B, *self.shape), float(self.values[-1]), device=self.device)
        else:
            k = self.streams.integers(0, len(self.values), (B, *self.shape))
            s = self.values[k]
        return {self.field: s.to(self.cm.dtype)}

    def uniform(self, shape) -> torch.Tensor:
        return self.streams.uniform(shape, self.cm.dtype)

    def acceptance(self) -> torch.Tensor:
        """(B,) fraction of accepted proposals per chain (changed sites, for heat-bath)."""
        return self.accepted / self.proposed.clamp(min=1)

    def sweep(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class SingleSite(Sampler):
    """Shared machinery of Metropolis and heat-bath: colour-parallel or random-site sweeps."""

    def __init__(self, cm: LatticeModel, *a, **k):
        super().__init__(cm, *a, **k)
        update = self.options.update
        self.parallel = self.fk.colours is not None and update != "random"
        if self.parallel:
            colours = self.fk.colours.reshape(self.shape)
            self.masks = [colours == c for c in range(self.fk.n_colours)]
            self.mask_sizes = [int(m.sum()) for m in self.masks]
            # on a lattice with a basis, a colour inside one sublattice updates that sublattice
            # alone: (b, mask over its cells or None when it covers all of them)
            self.sublattices: list[tuple[int, torch.Tensor | None] | None] = []
            nb = cm.lattice.basis
            for mask in self.masks:
                inside = [b for b in range(nb) if nb > 1 and not self.fk.local_energy.dense
                          and bool(mask[..., b].any())]  # fmt: skip
                if len(inside) == 1:
                    cells = mask[..., inside[0]]
                    self.sublattices.append((inside[0], None if bool(cells.all()) else cells))
                else:
                    self.sublattices.append(None)
            self.cell_beta = self.beta.reshape(-1, *([1] * cm.lattice.dim))
        self.kernel, self.kernel_note = GeneratedSweep.build(
            self, self.rule, "colours" if self.parallel else "random_site",
            getattr(self.options, "kernel", "auto"))

    rule = ""  # the generated kernel's update rule (compiler.lower.kernels.RULES)

    def acceptance_of(self, beta: torch.Tensor, delta: torch.Tensor, schedule: str) -> torch.Tensor:
        """Metropolis acceptance of energy changes ``delta``, as each schedule's torch path
        computes it (the generated kernels tabulate it with this function)."""
        if schedule == "colours":
            return parallel_acceptance(beta, delta)
        return torch.exp(-beta * delta)

    def sweep(self, state):
        if self.kernel is not None:
            return self.kernel.sweep(state)
        if self.parallel:
            # one uniform per site and sweep: every site is updated once, by its colour
            u = self.uniform((self.chains, *self.shape))
            if all(sub is not None for sub in self.sublattices):
                # every colour lies in one sublattice: hold the field as one tensor per
                # sublattice through the sweep, joined once at its end
                s = state[self.field]
                state = {**state, self.field: tuple(s[..., k] for k in range(s.shape[-1]))}
            for mask, size, sub in zip(self.masks, self.mask_sizes, self.sublattices):
                if sub is None:
                    state = self.update_colour(state, mask, u)
                else:
                    state = self.update_sublattice(state, sub[0], sub[1], u[..., sub[0]])
                if self.track_acceptance:
                    self.proposed += size
            if isinstance(state[self.field], tuple):
                state = {**state, self.field: torch.stack(state[self.field], -1)}
        else:
            N = self.cm.lattice.n_sites
            for _ in range(N):
                sites = self.streams.integers(0, N, (self.chains,))
                state = self.update_sites(state, sites)
        return state

    def _beta_flat(self) -> torch.Tensor:
        return self.beta.reshape(-1)

    def _sublattice(self, state, b: int) -> torch.Tensor:
        s = state[self.field]
        return s[b] if isinstance(s, tuple) else s[..., b]

    def _with_sublattice(self, state, b: int, values: torch.Tensor):
        """The state with sublattice b of the sampled field replaced by ``values`` (the field
        held as one tensor per sublattice, or as one tensor)."""
        s = state[self.field]
        if isinstance(s, tuple):
            return {**state, self.field: tuple(values if k == b else x for k, x in enumerate(s))}
        parts = [values if k == b else s[..., k] for k in range(s.shape[-1])]
        return {**state, self.field: torch.stack(parts, -1)}


class Metropolis(SingleSite):
    """Single-site Metropolis: flip (two values) or a uniformly random other value (potts)."""

    name = "metropolis"

    @property
    def rule(self) -> str:
        return "flip" if len(self.values) == 2 else "metropolis"

    def propose(self, s: torch.Tensor) -> torch.Tensor:
        return self.site_domain.propose(s, self.streams)

    def update_colour(self, state, mask, u):
        s = state[self.field]
        if self.fk.flip_delta is not None:
            # two-valued domain: the flip is formed only where it is accepted (one tensor fewer
            # alive at a time; at large L the sweep is memory-bound)
            delta = self.fk.flip_delta(state, like=s)  # a tensor even when dE is constant
            new = None
        else:
            new = self.propose(s)
            le = self.fk.local_energy
            delta = le(state, new) - le(state, s)
        accept = (u < parallel_acceptance(self.beta, delta)) & mask
        del delta
        if self.track_acceptance:
            self.accepted += accept.reshape(self.chains, -1).sum(1)
        return {**state, self.field: torch.where(accept, self.propose(s) if new is None else new, s)}

    def update_sublattice(self, state, b: int, cells: torch.Tensor | None, u: torch.Tensor):
        """Colour-parallel update of the sites of sublattice b (at ``cells``, or all)."""
        mine = self._sublattice(state, b)
        if self.fk.flip_delta is not None:
            delta = self.fk.flip_delta.part(b, state, None, None, mine)
            new = None
        else:
            new = self.propose(mine)
            le = self.fk.local_energy.stencil
            delta = (le.part(b, state, None, {CANDIDATE: new}, mine)
                     - le.part(b, state, None, {CANDIDATE: mine}, mine))  # fmt: skip
        accept = u < parallel_acceptance(self.cell_beta, delta)
        if cells is not None:
            accept &= cells
        del delta
        if self.track_acceptance:
            self.accepted += accept.reshape(self.chains, -1).sum(1)
        proposal = self.propose(mine) if new is None else new
        return self._with_sublattice(state, b, torch.where(accept, proposal, mine))

    def update_sites(self, state, sites):
        s = state[self.field]
        B = self.chains
        flat = s.reshape(B, -1)
        current = flat.gather(1, sites[:, None])[:, 0]
        new = self.propose(current)
        le = self.fk.local_energy
        delta = le(state, new, sites) - le(state, current, sites)
        accept = self.uniform((B,)) < self.acceptance_of(self._beta_flat(), delta, "random_site")
        self.accepted += accept
        self.proposed += 1
        value = torch.where(accept, new, current)
        flat = flat.scatter(1, sites[:, None], value[:, None])
        return {**state, self.field: flat.reshape(s.shape)}


class Heatbath(SingleSite):
    """Heat-bath: each updated site drawn from its local Boltzmann weights."""

    name = "heatbath"
    rule = "heatbath"

    @staticmethod
    def local_cdf(energies: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Unnormalised cumulative Boltzmann weights over the values (q, ...) of local
        energies (q, ...) (the generated kernels tabulate them with this function)."""
        logits = -beta * energies
        # (torch.softmax over a short leading dim takes a slow strided path on CPU)
        weights = torch.exp(logits - logits.amax(dim=0, keepdim=True))
        return torch.cumsum(weights, dim=0)

    def _draw(self, energies: torch.Tensor, beta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """energies: (q, ...) local energies of every value, u (...) uniforms -> sampled
        values (...)."""
        cdf = self.local_cdf(energies, beta)
        u = u * cdf[-1]
        k = (u.unsqueeze(0) > cdf).sum(0).clamp(max=len(self.values) - 1)
        return self.values[k]

    def update_colour(self, state, mask, u):
        s = state[self.field]
        le = self.fk.local_energy
        energies = torch.stack([le(state, v) for v in self.values])
        new = self._draw(energies, self.beta.unsqueeze(0), u)
        if self.track_acceptance:
            self.accepted += (new != s).logical_and(mask).reshape(self.chains, -1).sum(1)
        return {**state, self.field: torch.where(mask, new, s)}

    def update_sublattice(self, state, b: int, cells: torch.Tensor | None, u: torch.Tensor):
        """Heat-bath draws for the sites of sublattice b (at ``cells``, or all)."""
        mine = self._sublattice(state, b)
        le = self.fk.local_energy.stencil
        energies = torch.stack([le.part(b, state, None, {CANDIDATE: v}, mine)
                                for v in self.values])  # fmt: skip
        new = self._draw(energies, self.cell_beta.unsqueeze(0), u)
        if cells is not None:
            new = torch.where(cells, new, mine)
        if self.track_acceptance:
            self.accepted += (new != mine).reshape(self.chains, -1).sum(1)
        return self._with_sublattice(state, b, new)

    def update_sites(self, state, sites):
        s = state[self.field]
        B = self.chains
        le = self.fk.local_energy
        energies = torch.stack([le(state, v.expand(B), sites) for v in self.values])
        new = self._draw(energies, self._beta_flat().unsqueeze(0), self.uniform((B,)))
        flat = s.reshape(B, -1)
        self.accepted += new != flat.gather(1, sites[:, None])[:, 0]
        flat = flat.scatter(1, sites[:, None], new[:, None])
        self.proposed += 1
        return {**state, self.field: flat.reshape(s.shape)}


class Wolff(Sampler):
    """Single-cluster updates; the cluster grows by breadth-first frontier expansion, batched
    over chains (the loop runs over the cluster's diameter, not over sites)."""

    name = "wolff"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        lat = self.cm.lattice
        self.couplings = []
        for where, K in self.cm.cluster_couplings(self.field):
            if where == "edges":  # a graph's listed bonds (i, j) and their couplings
                i, j, Ke = (t.to(self.device) for t in K)
                self.couplings.append(("edges", Ke.to(self.cm.dtype), i, j, None, None))
                continue
            K = K.to(self.device)
            if isinstance(where, str):
                self.couplings.append(("dense", K, None, None, None, None))
            else:  # a bond type: its site tables, both ways
                idx, valid, ridx, rvalid = (
                    torch.as_tensor(t, device=self.device)
                    for t in (*lat.site_table(where), *lat.site_table(lat.reversed(where))))
                self.couplings.append((where, K, idx, valid, ridx, rvalid))
        self.check_every = 8 if self.device.type == "cuda" else 1

    def sweep(self, state):
        s = state[self.field]
        B = self.chains
        flat = s.reshape(B, -1)
        N = flat.shape[1]
        beta = self.beta.reshape(B, 1)
        active = []
        for where, K, idx, valid, _ridx, _rvalid in self.couplings:
            if where == "edges":
                bond = K * flat[:, idx] * flat[:, valid]  # idx, valid hold the ends i, j
                p = 1 - torch.exp(-2 * beta * bond.clamp(min=0))
                active.append(self.uniform(bond.shape) < p)
            elif where == "dense":
                bond = K * flat[:, :, None] * flat[:, None, :]
                p = 1 - torch.exp(-2 * beta[:, :, None] * bond.clamp(min=0))
                a = self.uniform(bond.shape) < p
                a = torch.triu(a, 1)
                active.append(a | a.transpose(1, 2))
            else:
                bond = K * flat * flat[:, idx]
                p = 1 - torch.exp(-2 * beta * bond.clamp(min=0))
                active.append((self.uniform(bond.shape) < p) & valid)
        seed = self.streams.integers(0, N, (B,))
        cluster = torch.zeros(B, N, dtype=torch.bool, device=self.device)
        cluster[torch.arange(B, device=self.device), seed] = True
        # growth is monotone, and a grown cluster is a fixed point: on a GPU, check for it only
        # every few steps (each check waits for the device)
        while True:
            for _ in range(self.check_every):
                before, cluster = cluster, self._grow(cluster, active)
            if torch.equal(before, cluster):
                break
        self.accepted += cluster.sum(1)
        self.proposed += 1
        return {**state, self.field: torch.where(cluster, -flat, flat).reshape(s.shape)}

    def _grow(self, cluster: torch.Tensor, active: list[torch.Tensor]) -> torch.Tensor:
        """One breadth-first step: every site joined to the cluster (B, N) by an active bond."""
        grown = cluster.clone()
        for a, (where, _K, idx, _valid, ridx, rvalid) in zip(active, self.couplings):
            if where == "edges":  # through a listed bond, from either end
                i, j = idx, _valid
                reach = torch.zeros(cluster.shape, dtype=torch.int32, device=self.device)
                reach.index_add_(1, j, (a & cluster[:, i]).to(torch.int32))
                reach.index_add_(1, i, (a & cluster[:, j]).to(torch.int32))
                grown |= reach > 0
            elif where == "dense":
                grown |= (a & cluster[:, None, :]).any(-1)
            else:
                grown |= a & cluster[:, idx]  # x joins through bond (x, x + d)
                grown |= a[:, ridx] & rvalid & cluster[:, ridx]  # through bond (x - d, x)
        return grown

    def acceptance(self) -> torch.Tensor:
        """(B,) mean cluster size divided by the number of sites."""
        return self.accepted / self.proposed.clamp(min=1) / self.cm.lattice.n_sites


def bind(catalogue: Catalogue) -> None:
    """Attach the samplers of discrete lattice fields to their catalogue entries."""
    for name, sampler in (("metropolis", Metropolis), ("heatbath", Heatbath),
                          ("glauber", Heatbath), ("wolff", Wolff)):  # fmt: skip
        catalogue.samplers.bind(name, sampler, family="lattice")
