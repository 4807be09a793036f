"""Local Metropolis / heat-bath updates for gauge models whose action is not the bare Wilson
action: matter fields coupled through links (Z2 Higgs, U(1) Higgs) and other local gauge
actions (e.g. improved actions). Batched over chains and sites; loops run over variable kinds,
colours and hits only.

Local action change. Every additive term of the declared action is a sum over sites of a local
density: S = sum_x rho(x). The compiler's evaluator in *density mode* returns rho (B, L...) and
records its stencil (the derivation's ``local_stencils``): the offsets o at which each variable
kind k (a matter field, or the links of direction mu) enters rho(x), i.e. rho(x) depends on
k(x + o), o in S_k. If a set C of variables of kind k is updated simultaneously and no density
location contains two of them, then every changed rho(x) contains exactly one updated variable,
and the action change of the variable at y alone is

    dS(y) = sum_{o in S_k} [rho_new - rho_old](y - o),

which is exactly its conditional (single-variable) action difference: the parallel update equals
a sequential one and detailed balance holds variable by variable.

Colouring (chosen by ``local_colouring`` of runtime/plans/gauge.py, torch-free; its masks by
``colouring_masks``). Variables k(y1), k(y2) share a density location iff y2 - y1 = o2 - o1
(mod L) for o1, o2 in S_k. We choose the cheapest colouring whose classes contain no such pair:
a two-colour parity (w . y) mod 2 with w in {0,1}^d if every nonzero difference has odd
w . delta, else the product colouring y mod p (p = 2, 3, 4; p^d colours) if no nonzero
difference is 0 mod p in every component. Stencil offsets must be distinct mod L (otherwise a
density location holds the same variable twice: the lattice is too small). Stencils are unions
over the terms (and over the directions summed in a term), so the colouring is conservative:
e.g. the Z2 Higgs matter field gets 2^d colours, not 2.

Updates: Metropolis (z2: random sign, i.e. Haar proposal -- a deterministic flip with a fixed
schedule is not ergodic; u1: angle shift of half-width ``step``; su2: left multiplication by a
random element near 1), and heat-bath for z2 variables (Glauber: the variable takes the flipped
value with probability 1 / (1 + exp(dS)), which is exact conditional sampling of a two-state
variable).

Random numbers come from counter-based streams (``runtime/random.py``), the chain on the leading
axis of every draw: chain b evolves identically in any batch and on any device. A sweep draws a
fixed number of times: per variable kind and hit one proposal and one uniform on the whole
lattice, shared by the kind's colour classes (each variable is in one, so each number is used
once).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from physml_lang.compiler.derive.gauge import Kind, Offset
from physml_lang.compiler.lower.gauge import Env
from physml_lang.compiler.lower.gauge_transforms import translate
from physml_lang.compiler.lower.groups import get_group

from ..plans.gauge import Colouring, local_colouring, local_colourings
from ..random import RandomStreams
from .sampling import link_domain

if TYPE_CHECKING:
    from physml_lang.compiler.models.gauge import GaugeModel

Tensor = torch.Tensor


def colouring_masks(colouring: Colouring, shape: tuple[int, ...]) -> list[Tensor]:
    """Boolean masks (L...) of the colour classes of a colouring (the geometry derives it)."""
    return [torch.as_tensor(m, device="cpu") for m in colouring.masks(shape)]  # host; .to


def kind_colouring(offsets: set[Offset], shape: tuple[int, ...]) -> list[Tensor]:
    """Boolean masks (L...) partitioning the sites so that no two sites of one mask share a
    density location, given the stencil offsets of one variable kind (see module docstring).
    Raises ValueError when the lattice is too small or no colouring is found."""
    return colouring_masks(local_colouring(offsets, shape), shape)


class LocalAction:
    """The declared action of a compiled gauge model as local densities with stencils (the
    derivation's ``local_stencils``). State: U (B, L..., d, *group_shape) and matter
    {name: (B, L...)} in storage form."""

    def __init__(self, model: GaugeModel):
        self.m = model
        self.d, self.shape = model.d, tuple(model.shape)
        self.link = model.link_field
        local = model.derivation.local_stencils()
        self.kinds: list[Kind] = local.kinds
        self.term_stencils: list[dict[Kind, set[Offset]]] = local.term_stencils
        self.stencil: dict[Kind, set[Offset]] = local.stencil
        self.terms_of: dict[Kind, list[int]] = local.terms_of

    def group_of(self, kind: Kind):
        name, mu = kind
        return self.m.group if mu is not None else get_group(self.m.matter_domains[name])

    def density(self, U: Tensor, matter: dict[str, Tensor], terms: list[int]) -> Tensor:
        """Sum of the chosen terms' densities: (B, L...) float64."""
        total: Tensor | None = None
        for i in terms:
            t = self.m.terms[i]
            ev = self.m.evaluator(U, matter)
            ev.keep_sites = True
            v = ev.evaluate(t.expr, Env()).t
            v = t.sign * (v.real if v.is_complex() else v)
            total = v if total is None else total + v
        assert total is not None
        return total

    def get(self, U: Tensor, matter: dict[str, Tensor], kind: Kind) -> Tensor:
        name, mu = kind
        return U.select(1 + self.d, mu) if mu is not None else matter[name]

    def put(self, U: Tensor, matter: dict[str, Tensor], kind: Kind, value: Tensor):
        name, mu = kind
        if mu is None:
            return U, {**matter, name: value}
        parts = list(U.unbind(1 + self.d))
        parts[mu] = value
        return torch.stack(parts, dim=1 + self.d), matter

    def local_delta(self, drho: Tensor, kind: Kind) -> Tensor:
        """dS(y) = sum_{o in S_k} drho(y - o): (B, L...)."""
        return sum(translate(drho, tuple(-c for c in o)) for o in self.stencil[kind])


class LocalSampler:
    """Checkerboard-coloured local updates of every link and matter variable of a gauge model.

    ``step(U, streams) -> U`` does one sweep (chain b drawing from stream b); the matter fields
    live in ``self.matter`` (set by ``start``). Weight exp(-scale * S). kind: 'metropolis'
    (``hits`` proposals per variable, ``step`` the u1 half-width / su2 angle) or 'heatbath'
    (z2 variables only).
    """

    def __init__(self, model: GaugeModel, kind: str, scale: float = 1.0, step: float = 1.0,
                 hits: int = 1):  # fmt: skip
        self.local = LocalAction(model)
        self.kind, self.scale, self.step_size, self.hits = kind, scale, step, hits
        # the plan's colourings (ValueError when the lattice has none, or heat-bath meets a
        # variable that is not z2)
        colourings = local_colourings(model.derivation, kind)
        self.colours = {k: colouring_masks(c, self.local.shape) for k, c in colourings.items()}
        self.matter: dict[str, Tensor] = {}
        self.acceptance: Tensor | None = None

    def start(self, U: Tensor, hot: bool, streams: RandomStreams) -> None:
        """Initial matter fields (B, L...): Haar random (hot) or the identity (cold)."""
        B, shape = U.shape[0], tuple(U.shape[1 : 1 + self.local.d])
        real = U.real.dtype if U.is_complex() else U.dtype
        self.matter = {}
        for name, dom in self.local.m.matter_domains.items():
            grp = get_group(dom)
            self.matter[name] = (grp.random((B, *shape), streams, device=U.device, dtype=real)
                                 if hot else grp.identity((B, *shape), device=U.device,
                                                          dtype=real))  # fmt: skip

    def sweep(self, U: Tensor, matter: dict[str, Tensor], streams: RandomStreams):
        """One sweep over every kind and colour; returns (U, matter, acceptance (B,))."""
        la = self.local
        acc = torch.zeros(U.shape[0], device=U.device, dtype=torch.float64)
        n_var = 0
        hits = 1 if self.kind == "heatbath" else self.hits
        for kind in la.kinds:
            grp, terms = la.group_of(kind), la.terms_of[kind]
            n_var += math.prod(la.shape)
            var = la.get(U, matter, kind)
            if not terms:  # the action does not depend on it: Haar-random draw is exact
                new = grp.random(tuple(var.shape), streams, device=U.device, dtype=var.dtype)
                U, matter = la.put(U, matter, kind, new)
                acc += math.prod(la.shape) * hits
                continue
            # per variable and hit (chain first): a move (Metropolis) and a uniform on (0, 1]
            sites = (U.shape[0], *la.shape)
            moves = [None if self.kind == "heatbath"
                     else link_domain(grp).moves(sites, self.step_size, streams, var)
                     for _ in range(hits)]  # fmt: skip
            uniforms = [1 - streams.uniform(sites, torch.float64).to(U.device)
                        for _ in range(hits)]  # fmt: skip
            for mask in self.colours[kind]:
                msk = mask.to(U.device)[None]
                for h in range(hits):
                    cur = la.get(U, matter, kind)
                    prop = -cur if moves[h] is None else link_domain(grp).propose(cur, moves[h])
                    mg = msk.reshape(*msk.shape, *([1] * (cur.dim() - msk.dim())))
                    rho0 = la.density(U, matter, terms)
                    U1, m1 = la.put(U, matter, kind, torch.where(mg, prop, cur))
                    dS = self.scale * la.local_delta(la.density(U1, m1, terms) - rho0, kind)
                    u = uniforms[h]
                    if self.kind == "heatbath":
                        ok = u <= torch.sigmoid(-dS)
                    else:
                        ok = u <= torch.exp(-dS)
                    ok = ok & msk
                    okg = ok.reshape(*ok.shape, *([1] * (cur.dim() - ok.dim())))
                    U, matter = la.put(U, matter, kind, torch.where(okg, prop, cur))
                    acc += ok.flatten(1).sum(1)
        return U, matter, acc / (hits * n_var)

    def step(self, U: Tensor, streams: RandomStreams) -> Tensor:
        U, self.matter, self.acceptance = self.sweep(U, self.matter, streams)
        if self.kind == "heatbath":
            self.acceptance = torch.ones_like(self.acceptance)
        return U


__all__ = ["LocalAction", "LocalSampler", "colouring_masks", "kind_colouring"]
