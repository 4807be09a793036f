"""Configurations of a lattice model at every scanned temperature, from physml's own samplers:
every temperature's chains in one batch (each chain carries its own beta)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physml_lang.catalogue import CATALOGUE

from ..random import RandomStreams


@dataclass
class Configurations:
    """``x`` (n_T, n, *shape) float32 of s = +-1 at ``temperatures``; ``basis`` sites per cell;
    chain-major: the n configurations of a temperature are ``n / per_chain`` chains of
    ``per_chain`` successive configurations each (the blocks of the error bars)."""

    x: torch.Tensor
    temperatures: torch.Tensor
    basis: int
    per_chain: int = 1

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[2:])


def sample(cm, sampler: str, options, temperatures: list[float], field: str, flip: bool,
           streams: RandomStreams, device) -> Configurations:  # fmt: skip
    """``options.chains`` chains per temperature, ``burn_in`` sweeps, then one configuration per
    chain every ``thin`` sweeps for ``sweeps`` sweeps. ``flip``: the model is spin-flip
    symmetric, and each configuration is flipped with probability 1/2 (the same distribution;
    both signs of m in every phase, whatever the start)."""
    cls = CATALOGUE.samplers.implementation(sampler, "lattice")
    ts = torch.tensor(temperatures, dtype=torch.float64, device=device)
    chains = options.chains
    beta = (1.0 / ts).repeat_interleave(chains)
    s = cls(cm, options, beta, streams, field)
    s.track_acceptance = False
    state = s.initial_state()
    kept = []
    with torch.no_grad():
        for _ in range(options.burn_in):
            state = s.sweep(state)
        for _ in range(max(1, options.sweeps // options.thin)):
            for _ in range(options.thin):
                state = s.sweep(state)
            kept.append(state[s.field].to(torch.float32))
    shape = tuple(cm.lattice.shape)
    x = torch.stack(kept, 1).reshape(len(temperatures), -1, *shape)
    if flip:
        sign = torch.where(streams.uniform(x.shape[:2]).to(x.device) < 0.5, -1.0, 1.0)
        x = x * sign.reshape(*sign.shape, *([1] * len(shape)))
    return Configurations(x, ts, int(cm.lattice.basis), len(kept))


def block_spins(conf: Configurations, blocks: int, streams: RandomStreams) -> Configurations:
    """Majority-rule block spins (a real-space renormalisation step): each of the ``blocks``
    ^d blocks of (L / blocks)^d sites becomes the sign of its sum, a tie a random sign. At the
    critical point the distribution of these ``blocks``^d spins tends to a fixed point as L
    grows, so a classifier that reads them is a function of L^(1/nu) (T - T_c) (up to
    corrections that shrink with L), whatever feature it thresholds; one site per cell."""
    x = conf.x
    cells = conf.shape
    split = []
    for n in cells:
        split += [blocks, n // blocks]
    y = x.reshape(*x.shape[:2], *split).sum(tuple(range(3, 3 + 2 * len(cells), 2)))
    tie = torch.where(streams.uniform(y.shape).to(y.device) < 0.5, -1.0, 1.0)
    y = torch.where(y == 0, tie.to(y.dtype), torch.sign(y))
    return Configurations(y, conf.temperatures, conf.basis, conf.per_chain)


__all__ = ["Configurations", "block_spins", "sample"]
