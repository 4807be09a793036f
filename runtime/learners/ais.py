"""Annealed importance sampling of log Z, and exact log Z by enumeration (small models).

AIS (Neal 2001; Salakhutdinov & Murray 2008) anneals from the uniform distribution (beta = 0,
log Z_0 = sum_fields n log q) to the model (beta = 1) through p_k ~ exp(-F_{beta_k}), with the
block fields summed out analytically (the derived free energy). Each chain carries the weight
log w = sum_k [F_{beta_{k-1}}(x_{k-1}) - F_{beta_k}(x_{k-1})], and moves by one Gibbs sweep at
beta_k. Z = Z_0 <w>; the error of log Z is the delta-method error of the mean weight. Chain b
draws from stream b of the given random streams.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.runtime.plans.learners import check_exactly_enumerable, enumerated_fields

from ..distributed import SINGLE, World
from ..random import RandomStreams
from .gibbs import GibbsSampler, random_state
from .parallel import drawing


def _data_field(model: BoltzmannModel) -> str:
    return next(iter(model.domains))


def _marginal(model: BoltzmannModel, state: dict, summed: list[str], beta) -> torch.Tensor:
    """beta F(rest) with ``summed`` fields summed out, (B,)."""
    if summed:
        return model.free_energy(state, summed, beta)
    b = beta if not isinstance(beta, torch.Tensor) else beta.reshape(-1)
    return b * model.energy(state)


def ais_log_z(model: BoltzmannModel, betas: int = 1000, chains: int = 100,
              streams: RandomStreams | None = None,
              world: World = SINGLE) -> tuple[float, float]:  # fmt: skip
    """(log Z, stderr) of a Boltzmann model at beta = 1 by AIS from the uniform distribution,
    with ``betas`` annealing steps of ``chains`` chains (``streams``: on the model's device;
    seed 0 there by default). On several processes (``world``) each rank anneals its block of
    the chains and the log weights are gathered in chain order."""
    streams = streams or RandomStreams(0, model._device())
    data = _data_field(model)
    summed = [f for f in model.blocks if f != data]
    try:
        summed = model.summable(summed)
    except Exception:  # noqa: BLE001 - fall back to the joint distribution
        summed = []
    log_z0 = sum(model.sets[model.field_sets[f]] * math.log(len(d.values()))
                 for f, d in model.domains.items())  # fmt: skip
    schedule = np.linspace(0.0, 1.0, betas + 1)
    model.freeze()
    try:
        mine = world.shard(chains)
        with torch.no_grad(), drawing(streams, mine.start):
            state = random_state(model, streams, mine.stop - mine.start)
            sampler = GibbsSampler(model, 0.0, streams)
            logw = torch.zeros(mine.stop - mine.start, dtype=torch.float64,
                               device=state[data].device)  # fmt: skip
            for b0, b1 in zip(schedule[:-1], schedule[1:]):
                logw += (_marginal(model, state, summed, float(b0))
                         - _marginal(model, state, summed, float(b1))).double()  # fmt: skip
                sampler.set_beta(float(b1))
                state = sampler.sweep(state)
    finally:
        model.unfreeze()
    logw = world.all_gather(logw, chains)
    m = float(logw.max())
    w = torch.exp(logw - m)
    mean = float(w.mean())
    log_z = log_z0 + m + math.log(mean)
    stderr = float(w.std() / math.sqrt(chains)) / mean if chains > 1 else float("nan")
    return log_z, stderr


def exact_log_z(model: BoltzmannModel) -> float:
    """log Z by enumerating the data field and the fields that cannot be summed analytically
    (block fields summed in closed form): at most MAX_ENUMERATED enumerated units."""
    check_exactly_enumerable(model.derivation, "exact log Z", model.ir.name_span)
    enumerated, summed = enumerated_fields(model.derivation)
    values = []
    for f in enumerated:
        values += [model.domains[f].values()] * model.sets[model.field_sets[f]]
    confs = torch.tensor(list(itertools.product(*values)), dtype=model.dtype,
                         device=model._device())  # fmt: skip
    state, k = {}, 0
    for f in enumerated:
        size = model.sets[model.field_sets[f]]
        state[f] = confs[:, k : k + size]
        k += size
    with torch.no_grad():
        f_values = _marginal(model, state, summed, 1.0)
    return float(torch.logsumexp(-f_values.double(), 0))
