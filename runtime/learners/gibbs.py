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

Random numbers come from :class:`~physml_lang.runtime.random.RandomStreams` with the chain on
the leading axis (one uniform per site and update), so chain b runs the same whatever the batch
size or device. A sequential sweep visits the sites in one random order shared by all chains.

:class:`GibbsSampler` implements the catalogue's ``gibbs`` sampler of Boltzmann sample runs and
the ``glauber`` dynamics of Hopfield recall (options: ``physml_lang/catalogue/boltzmann.py``).
"""

from __future__ import annotations

import math

import torch

from physml_lang.catalogue.boltzmann import GenerateOptions
from physml_lang.compiler.models.boltzmann import BoltzmannModel

from ..distributed import SINGLE, World
from ..random import RandomStreams
from .parallel import drawing


def random_state(model: BoltzmannModel, streams: RandomStreams,
                 chains: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """Uniformly random values of every field, {field: (chains, sites)} on the streams'
    device: one draw per field, chain b from stream b."""
    out = {}
    for f, dom in model.domains.items():
        vals = torch.tensor(dom.values(), dtype=model.dtype, device=streams.device)
        k = streams.integers(0, len(vals), (chains, model.sets[model.field_sets[f]]))
        out[f] = vals[k]
    return out


def host_permutation(streams: RandomStreams, n: int) -> list[int]:
    """``streams.permutation(n)`` as a Python list, computed on the host from the same key (the
    bits are the same on every device), so that a device run does not wait for a transfer.
    The order is shared by all chains: stream 0's, whichever block of chains ``streams``
    draws for (a rank's block on several processes)."""
    twin = RandomStreams(streams.seed, "cpu", path=streams.path, first=0,
                         draws=streams.draws)  # fmt: skip
    order = twin.permutation(n).tolist()
    streams.draws = twin.draws
    return order


def draw(energies: torch.Tensor, beta, current: torch.Tensor, values: torch.Tensor,
         streams: RandomStreams) -> torch.Tensor:  # fmt: skip
    """Sample values from exp(-beta E) over the leading (value) axis of ``energies`` (q, B, ...):
    one uniform per chain and site, (B, ...). ``beta``: a number (inf for T = 0) or a tensor
    broadcasting against energies[0]."""
    if not isinstance(beta, torch.Tensor) and math.isinf(beta):
        return choose(energies, beta, current, values, None)
    return choose(energies, beta, current, values,
                  streams.uniform(energies.shape[1:], energies.dtype))  # fmt: skip


def choose(energies: torch.Tensor, beta, current: torch.Tensor, values: torch.Tensor,
           u: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The value of each unit given its energies (q, ...) and uniforms ``u`` (...) (unused at
    T = 0: the lowest energy, the current value on ties): the heat-bath draw by inversion."""
    if not isinstance(beta, torch.Tensor) and math.isinf(beta):
        best = energies.min(0).values
        keep = torch.zeros_like(current, dtype=torch.bool)
        for k in range(len(values)):  # keep the current value where it is a minimiser
            keep |= (current == values[k]) & (energies[k] <= best)
        return torch.where(keep, current, values[energies.argmin(0)])
    if len(values) == 2:
        p1 = torch.sigmoid(-beta * (energies[1] - energies[0]))
        return torch.where(u < p1, values[1], values[0])
    logits = -beta * energies
    w = torch.exp(logits - logits.amax(0, keepdim=True))
    cdf = torch.cumsum(w, 0)
    k = (u.unsqueeze(0) * cdf[-1:] > cdf).sum(0).clamp(max=len(values) - 1)
    return values[k]


class GibbsSampler:
    """Sweeps of a Boltzmann model. ``beta``: a number or a (B,) tensor (one per chain);
    ``clamped``: fields kept fixed (the data in a positive phase); ``streams``: the chains'
    random numbers (chain b from stream b)."""

    def __init__(self, model: BoltzmannModel, beta, streams: RandomStreams,
                 update: str = "sequential", clamped: tuple[str, ...] = (),
                 clamped_sites: dict[str, int] | None = None, mean: bool = False):  # fmt: skip
        self.model = model
        # mean field: each update sets a two-valued unit to its conditional mean instead of a
        # draw (naive mean field; exact expectations of multilinear energies, e.g. binary and
        # spin Boltzmann machines, under the factorised distribution)
        self.mean = mean
        self.streams = streams
        self.update = update
        self.clamped = set(clamped)
        # field -> n: its first n sites are held fixed (the visible units of a general
        # Boltzmann machine whose data field also holds hidden units)
        self.clamped_sites = {f: n for f, n in (clamped_sites or {}).items() if n > 0}
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
        lo = self.clamped_sites.get(field, 0)
        if field in m.blocks or self.update == "parallel":
            e = m.local_energies(field, state)
            if self.mean:
                p = torch.softmax(-self.beta * e, 0)
                new = (p * self.values[field].reshape(-1, *[1] * (p.dim() - 1))).sum(0)
            else:
                new = draw(e, self.beta, x, self.values[field], self.streams)
            if lo:
                new = torch.cat([x[:, :lo], new[:, lo:]], 1)
            return {**state, field: new}
        return self._sequential(state, field, lo)

    def _sequential(self, state: dict, field: str, lo: int = 0) -> dict:
        """Heat-bath (T = 0: greedy) updates of the sites lo..n-1 of a self-interacting field
        in a random order, each in every chain at once.

        The loop over sites is inherent to sequential Gibbs on a fully connected field: each
        conditional depends on the values just drawn. Everything that does not change within
        the sweep is computed once (:meth:`BoltzmannModel.local_decomposition`: set terms,
        couplings to other fields, value factors, random numbers: (B, sites), one per chain and
        site); one step is a row-dot product X @ R[k] per self-coupling, a comparison and a
        column write."""
        m = self.model
        x = state[field].clone()
        state = {**state, field: x}
        B, n = x.shape
        static, dynamic = m.local_decomposition(field, state)
        order = [k + lo for k in host_permutation(self.streams, n - lo)]
        vals = self.values[field]
        beta = self._beta_rows()
        zero_t = not isinstance(beta, torch.Tensor) and math.isinf(beta)
        xs = []  # the other ends X_d: the state itself (identity) or kept up to date per site
        for _, kernel, _, identity in dynamic:
            xs.append(x if identity else m._site(kernel, state, x))
        if len(vals) == 2:
            # ΔE_k = E_loc(k, v1) - E_loc(k, v0); (n, B) so that row k is contiguous
            d0 = (static[1] - static[0]).T.contiguous()
            dcs = [(c[1] - c[0]).T.contiguous() for c, _, _, _ in dynamic]
            if not zero_t and not self.mean:
                u = self.streams.uniform((B, len(order)), x.dtype)
                # u < sigmoid(-beta ΔE)  <=>  logit(u) < -beta ΔE; (steps, B): row t contiguous
                logit = (torch.log(u) - torch.log1p(-u)).T.contiguous()
            v0, v1 = vals[0], vals[1]
            for t, k in enumerate(order):  # a loop over update steps (one site in every chain)
                de = d0[k]
                for X, dc, (_, _, R, _) in zip(xs, dcs, dynamic):
                    de = de + dc[k] * (X @ R[k])
                if zero_t:
                    new = torch.where(de < 0, v1, torch.where(de > 0, v0, x[:, k]))
                elif self.mean:
                    new = v0 + (v1 - v0) * torch.sigmoid(-beta * de)
                else:
                    new = torch.where(logit[t] < -beta * de, v1, v0)
                x[:, k] = new
                self._refresh(xs, dynamic, state, k)
            return state
        if self.mean:
            raise ValueError("mean-field updates need two-valued units")
        static_t = static.permute(2, 0, 1).contiguous()  # (n, q, B)
        coefs = [c.permute(2, 0, 1).contiguous() for c, _, _, _ in dynamic]
        u = None if zero_t else self.streams.uniform((B, len(order)), x.dtype).T.contiguous()
        for t, k in enumerate(order):
            e = static_t[k]
            for X, c, (_, _, R, _) in zip(xs, coefs, dynamic):
                e = e + c[k] * (X @ R[k])
            x[:, k] = choose(e, beta, x[:, k], vals, None if u is None else u[t])
            self._refresh(xs, dynamic, state, k)
        return state

    def _refresh(self, xs: list, dynamic: list, state: dict, k: int) -> None:
        """Recompute column k of the other ends that are not the state itself."""
        for X, (_, kernel, _, identity) in zip(xs, dynamic):
            if not identity:
                B = X.shape[0]
                X[:, k] = self.model._site(kernel, state, ((B,), X.device), k)

    @torch.no_grad()
    def sweep(self, state: dict) -> dict:
        for f in self.order:
            state = self.update_field(state, f)
        return state


@torch.no_grad()
def generate(model: BoltzmannModel, field: str, opts: GenerateOptions,
             streams: RandomStreams, world: World = SINGLE) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of a trained model at beta = 1: ``opts.chains`` chains from random states,
    ``burn_in`` sweeps, then ``field`` every ``thin`` sweeps; the last configurations
    (chains, n) and the series (T, chains, n). On several processes (``world``) each rank
    runs its block of the chains (streams of their global indices) and the results are
    gathered in chain order on every rank."""
    mine = world.shard(opts.chains)
    model.freeze()
    try:
        sampler = GibbsSampler(model, 1.0, streams)
        with drawing(streams, mine.start):
            state = random_state(model, streams, mine.stop - mine.start)
            for _ in range(opts.burn_in):
                state = sampler.sweep(state)
            series = []
            for _ in range(opts.sweeps // opts.thin):
                for _ in range(opts.thin):
                    state = sampler.sweep(state)
                series.append(state[field].clone())
    finally:
        model.unfreeze()
    if world.size > 1:
        return (world.all_gather(state[field], opts.chains),
                world.all_gather(torch.stack(series), opts.chains, 1))  # fmt: skip
    return state[field], torch.stack(series)


def overlap(s: torch.Tensor, patterns: torch.Tensor, binary: bool = False) -> torch.Tensor:
    """m = (1/N) sum_i xi_i s_i over the last axis (binary units mapped to 2 s - 1)."""
    if binary:
        s, patterns = 2 * s - 1, 2 * patterns - 1
    return (s * patterns).mean(-1)
