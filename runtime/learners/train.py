"""Training Boltzmann machines: objectives, optimisers, schedules, checkpoints.

The log-likelihood gradient of an energy-based model is <dF/dtheta>_model - <dF/dtheta>_data,
F the free energy with the block fields (hidden units) summed out (F = E when there are none:
Boltzmann learning / inverse Ising, where it is <s_i s_j>_data - <s_i s_j>_model). The loss
mean F(v_data) - mean F(v_model) has exactly this gradient when the model samples are held
fixed; they come from the compiled Gibbs sampler:

- ``cd(k)``: k Gibbs sweeps started at the minibatch (contrastive divergence, Hinton 2002);
- ``pcd(k, chains)``: k sweeps of persistent chains (Tieleman 2008); also for models with no
  hidden units (Boltzmann learning).

General Boltzmann machines (hidden units that interact with each other or with themselves, or
hidden sites of the data field: ``visible = Nv``) have no closed-form free energy. The gradient
<-dE/dtheta>_{v ~ data, h ~ P(h|v)} - <-dE/dtheta>_model then takes both phases from samples
(Ackley, Hinton & Sejnowski 1985; Salakhutdinov & Hinton 2009): the positive phase from
persistent chains of the latent units, one per data example, advanced by ``positive_sweeps``
Gibbs sweeps (or mean-field updates, ``positive = meanfield``) with the data clamped; the
negative phase from the persistent (pcd) or data-started (cd) chains of every unit. The loss is
mean E(positive) - mean E(negative).

The objectives (cd, pcd), optimisers (sgd, adam) and learning-rate schedules are catalogue entries
(options schemas in ``physml_lang/catalogue/boltzmann.py``); :func:`bind` attaches their
implementations here, and a :class:`Trainer` finds them by name. Every random number of training
(initial chains, Gibbs sweeps, minibatch order) comes from the trainer's
:class:`~physml_lang.runtime.random.RandomStreams`, chain or example on the leading axis. A
trainer's state (:meth:`Trainer.tensors`: parameters, optimiser state, persistent chains) and
its streams' draw counter (saved by the owner of the streams: the run driver, for a train
point) are what a train point checkpoints, so that a resumed training continues
bit-identically on the CPU; a diverging step (NaN, exploding weights) raises
:class:`Divergence`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors.torch import save_file

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.boltzmann import FAMILY
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.runtime.plans.learners import check_enumerable, training_layout

from ..distributed import SINGLE, World
from ..random import RandomStreams
from .gibbs import GibbsSampler, random_state
from .parallel import drawing, reduce_gradients

# ---------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """The negative phase of a training objective: ``negatives(trainer, batch)`` returns the
    model samples of one step; ``persistent`` chains are kept across steps (started by the
    trainer) instead of starting at the data of the step."""

    persistent: bool
    negatives: Callable[[Trainer, Any], dict]


def _cd_negatives(trainer: Trainer, batch) -> dict:
    """k sweeps from the data (``batch``: visible values or a positive-phase state)."""
    if isinstance(batch, dict):
        state = dict(batch)
    else:
        state = random_state(trainer.model, trainer.streams, len(batch))
        state[trainer.field] = batch
    for _ in range(trainer.oopts.k):
        state = trainer.sampler.sweep(state)
    return state


def _pcd_negatives(trainer: Trainer, batch) -> dict:
    """k sweeps of the persistent chains."""
    for _ in range(trainer.oopts.k):
        trainer.chains = trainer.sampler.sweep(trainer.chains)
    return trainer.chains


CD = Objective(False, _cd_negatives)
PCD = Objective(True, _pcd_negatives)


# ---------------------------------------------------------------- optimisers and schedules


def _sgd(opts: BaseModel, params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum,
                           weight_decay=opts.weight_decay)  # fmt: skip


def _adam(opts: BaseModel, params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=opts.lr, betas=(opts.beta1, opts.beta2),
                            weight_decay=opts.weight_decay)  # fmt: skip


def _constant(opts: BaseModel, epoch: float, epochs: int) -> float:
    return 1.0


def _cosine(opts: BaseModel, epoch: float, epochs: int) -> float:
    t = min(epoch / max(epochs, 1), 1.0)
    return opts.min_factor + (1 - opts.min_factor) * 0.5 * (1 + math.cos(math.pi * t))


def _exponential(opts: BaseModel, epoch: float, epochs: int) -> float:
    return opts.gamma ** int(epoch)


def _step(opts: BaseModel, epoch: float, epochs: int) -> float:
    return opts.factor ** (int(epoch) // opts.every)


def make_optimizer(name: str, opts: BaseModel, params) -> torch.optim.Optimizer:
    """The torch optimiser of catalogue entry ``name`` over ``params``."""
    return CATALOGUE.optimisers.implementation(name, FAMILY)(opts, params)


def bind(catalogue: Catalogue) -> None:
    """Attach the objectives, optimisers and schedules of Boltzmann training to their entries."""
    for name, objective in (("cd", CD), ("pcd", PCD)):
        catalogue.objectives.bind(name, objective, family=FAMILY)
    for name, optimiser in (("sgd", _sgd), ("adam", _adam)):
        catalogue.optimisers.bind(name, optimiser, family=FAMILY)
    for name, schedule in (("constant", _constant), ("cosine", _cosine),
                           ("exponential", _exponential), ("step", _step)):  # fmt: skip
        catalogue.schedules.bind(name, schedule)


class Divergence(Exception):
    """Training produced non-finite or exploding parameters."""


class Trainer:
    """Minibatch training of a Boltzmann model on data of its first field.

    ``data``: (n, n_visible) tensor of the data field's values; ``objective``, ``optimizer`` and
    ``schedule``: names of catalogue entries (bound), with their validated options; ``streams``:
    the random numbers of training, on the model's device.

    On several processes (``world``) each rank holds its block ``world.shard(chains)`` of the
    persistent chains and takes its block ``world.shard(batch)`` of every minibatch (the
    minibatch order, the data and the positive chains of general BMs are whole on every rank);
    every draw of a chain or example comes from the stream of its global index, each rank's
    loss is its share of the whole minibatch's, and the gradients are summed over the ranks
    before the optimiser step, the same on every rank."""

    def __init__(self, model: BoltzmannModel, data: torch.Tensor, objective: str,
                 objective_opts: BaseModel, optimizer: str, optimizer_opts: BaseModel,
                 schedule: str, schedule_opts: BaseModel, epochs: int, batch: int,
                 streams: RandomStreams, max_weight: float = 1e4,
                 visible: int | None = None, world: World = SINGLE):  # fmt: skip
        self.model = model
        self.world = world
        self.data = data.to(model.dtype)
        layout = training_layout(model.derivation, visible, objective_opts.positive)
        self.field = layout.field
        n_field = layout.n_field
        # the data are the first `visible` sites of the first field; the rest are hidden
        self.visible = layout.visible
        # latent: hidden units that cannot be summed out analytically (general BMs)
        self.latent = layout.latent
        self.hidden: list[str] = layout.hidden
        self.objective, self.oopts = objective, objective_opts
        self.negative_phase: Objective = CATALOGUE.objectives.implementation(objective, FAMILY)
        self.schedule, self.sopts = schedule, schedule_opts
        # (schedule options, fractional epoch, epochs) -> learning-rate factor
        self.lr_factor = CATALOGUE.schedules.implementation(schedule, FAMILY)
        self.epochs, self.batch = epochs, min(batch, len(data))
        self.streams = streams
        self.max_weight = max_weight
        self.params = list(model.params.values())
        self.optimizer_spec = (optimizer, optimizer_opts)
        self.optimizer = make_optimizer(optimizer, optimizer_opts, self.params)
        self.base_lr = optimizer_opts.lr
        self.sampler = GibbsSampler(model, 1.0, streams)
        self.chains = None
        if self.negative_phase.persistent:
            self.n_chains = objective_opts.chains
            self.local_chains = world.shard(self.n_chains)
            with drawing(streams, self.local_chains.start):
                self.chains = random_state(model, streams, _size(self.local_chains))
        self.pos_chains = None
        if self.latent:
            lo = self.visible if self.visible < n_field else 0
            self.pos_sampler = GibbsSampler(
                model, 1.0, streams, clamped=(self.field,) if not lo else (),
                clamped_sites={self.field: lo}, mean=objective_opts.positive == "meanfield")  # fmt: skip
            # one persistent chain of the latent units per data example
            self.pos_chains = random_state(model, streams, len(self.data))
            if objective_opts.positive == "meanfield":  # start the means at the centre
                for f, dom in model.domains.items():
                    self.pos_chains[f].fill_(sum(dom.values()) / 2)
        self.epoch = 0
        self.step_count = 0

    # ---------------------------------------------------------------- one step
    def positives(self, batch: torch.Tensor, index: torch.Tensor | None = None) -> dict:
        """Latent units given the data (general BMs): the persistent chains of the examples
        ``index`` (fresh random ones without an index), ``positive_sweeps`` sweeps with the
        visible units clamped."""
        m = self.model
        if index is not None:
            state = {f: x[index] for f, x in self.pos_chains.items()}
        else:
            state = random_state(m, self.streams, len(batch))
        state[self.field] = torch.cat([batch, state[self.field][:, self.visible :]], 1)
        m.freeze()
        try:
            for _ in range(self.oopts.positive_sweeps):
                state = self.pos_sampler.sweep(state)
        finally:
            m.unfreeze()
        if index is not None and self.world.size > 1:  # every rank's block, on every rank
            for f, x in state.items():
                self.pos_chains[f][self.whole_index] = self.world.all_gather(x, self.n_batch)
        elif index is not None:
            for f, x in state.items():
                self.pos_chains[f][index] = x
        return state

    def negatives(self, batch) -> dict:
        """Model samples: k sweeps from the data (cd; ``batch`` a tensor of visible values or
        a positive-phase state) or of the persistent chains (pcd)."""
        self.model.freeze()
        try:
            return self.negative_phase.negatives(self, batch)
        finally:
            self.model.unfreeze()

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), (B,): hidden blocks summed analytically, latent
        units of a general BM by enumeration (at most MAX_LATENT of them)."""
        if self.latent:
            return latent_free_energy(self.model, v, self.field)
        state = {self.field: v}
        if self.hidden:
            return self.model.free_energy(state, self.hidden)
        return self.model.energy(state)

    def step(self, batch: torch.Tensor, index: torch.Tensor | None = None) -> tuple[float, float]:
        """One optimiser step on a minibatch (``index``: its rows of the data, for the
        persistent positive chains of general BMs); returns (loss, reconstruction error)."""
        if self.world.size > 1:
            return self._parallel_step(batch, index)
        if self.latent:
            pos = self.positives(batch, index)
            neg = self.negatives(pos)
            loss = self.model.energy(pos).mean() - self.model.energy(neg).mean()
        else:
            neg = self.negatives(batch)
            vneg = neg[self.field].detach()
            loss = self.free_energy(batch).mean() - self.free_energy(vneg).mean()
        vneg = neg[self.field][:, : self.visible].detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        with torch.no_grad():
            bad = [n for n, p in self.model.params.items() if not bool(torch.isfinite(p).all())]
            if bad or not math.isfinite(float(loss)):
                raise Divergence(f"non-finite {'parameter ' + bad[0] if bad else 'loss'}")
            big = max(float(p.abs().max()) for p in self.params)
            if big > self.max_weight:
                raise Divergence(f"a parameter reached |{big:.3g}| > max_weight = "
                                 f"{self.max_weight:g}")  # fmt: skip
        # a reconstruction error only where the chains start at the data (cd)
        recon = (float((vneg - batch).pow(2).mean()) if not self.negative_phase.persistent
                 else float("nan"))  # fmt: skip
        return float(loss.detach()), recon

    def _parallel_step(self, batch: torch.Tensor,
                       index: torch.Tensor | None) -> tuple[float, float]:  # fmt: skip
        """:meth:`step` on this rank's block of the minibatch (and of the persistent chains):
        the loss sum(F or E) / n over the block, the gradients and the loss and reconstruction
        sums added up over the ranks, then the same step on every rank."""
        world, n = self.world, len(batch)
        mine = world.shard(n)
        self.n_batch, self.whole_index = n, index
        part = batch[mine]
        persistent = self.negative_phase.persistent
        n_neg = self.n_chains if persistent else n
        with drawing(self.streams, mine.start):
            if self.latent:
                pos = self.positives(part, None if index is None else index[mine])
        if self.latent:
            with drawing(self.streams, self.local_chains.start if persistent else mine.start):
                neg = self.negatives(pos)
            pos_sum, neg_sum = self.model.energy(pos).sum(), self.model.energy(neg).sum()
        else:
            with drawing(self.streams, self.local_chains.start if persistent else mine.start):
                neg = self.negatives(part)
            vneg = neg[self.field].detach()
            pos_sum, neg_sum = self.free_energy(part).sum(), self.free_energy(vneg).sum()
        # sums with integer weights (exact for integer-valued units), divided after the sum
        loss = pos_sum * n_neg - neg_sum * n
        vneg = neg[self.field][:, : self.visible].detach()
        recon = 0.0 if persistent else float((vneg - part).pow(2).sum()) / (n * part.shape[1])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        total, recon = reduce_gradients(self.params, world, [float(loss.detach()), recon],
                                        1.0 / (n * n_neg))  # fmt: skip
        total /= n * n_neg
        self.optimizer.step()
        self.step_count += 1
        self._check(total)
        return total, (recon if not persistent else float("nan"))

    def _check(self, loss: float) -> None:
        """Raise :class:`Divergence` on non-finite or exploding parameters or loss."""
        with torch.no_grad():
            bad = [n for n, p in self.model.params.items() if not bool(torch.isfinite(p).all())]
            if bad or not math.isfinite(loss):
                raise Divergence(f"non-finite {'parameter ' + bad[0] if bad else 'loss'}")
            big = max(float(p.abs().max()) for p in self.params)
            if big > self.max_weight:
                raise Divergence(f"a parameter reached |{big:.3g}| > max_weight = "
                                 f"{self.max_weight:g}")  # fmt: skip

    def run_epoch(self, on_step: Callable | None = None) -> dict:
        """One pass over the data in minibatches of a random order; the epoch's mean loss and
        reconstruction error, and the last learning rate."""
        n = len(self.data)
        perm = self.streams.permutation(n).to(self.data.device)
        losses, recons = [], []
        n_batches = max(1, n // self.batch)
        for b in range(n_batches):
            frac = self.epoch + b / n_batches
            factor = self.lr_factor(self.sopts, frac, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * factor
            index = perm[b * self.batch : (b + 1) * self.batch]
            loss, recon = self.step(self.data[index], index)
            losses.append(loss)
            recons.append(recon)
            if on_step:
                on_step(loss, recon)
        self.epoch += 1
        rec = [r for r in recons if r == r]
        return {"epoch": self.epoch, "loss": sum(losses) / len(losses),
                "reconstruction": sum(rec) / len(rec) if rec else None,
                "lr": self.optimizer.param_groups[0]["lr"]}  # fmt: skip

    # ---------------------------------------------------------------- checkpoints
    def tensors(self) -> dict[str, torch.Tensor]:
        """The training state as named tensors: parameters (``param/W``), optimiser state
        (``opt/W/exp_avg``, ...), persistent chains (``chain/v``: (chains, sites)) and positive
        chains of general BMs (``pos/v``: (examples, sites)); the streams' draw counter is not
        among them (its owner saves it). On several processes the chains are every rank's
        (a collective)."""
        out = self._tensors()
        if self.world.size > 1 and self.chains is not None:
            out.update({f"chain/{f}": self.world.all_gather(x, self.n_chains)
                        for f, x in self.chains.items()})  # fmt: skip
        return out

    def _tensors(self) -> dict[str, torch.Tensor]:
        """:meth:`tensors` with this rank's block of the persistent chains."""
        out = {f"param/{k}": v.detach() for k, v in self.model.params.items()}
        out.update(_optimizer_tensors(self.optimizer, list(self.model.params)))
        for prefix, chains in (("chain", self.chains), ("pos", self.pos_chains)):
            out.update({f"{prefix}/{f}": x for f, x in (chains or {}).items()})
        return out

    def expected(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every tensor a checkpoint of this trainer holds once it
        has taken a step (the optimiser's state as a step of a copy creates it)."""
        out = {k: (tuple(t.shape), t.dtype) for k, t in self._tensors().items()
               if not k.startswith("opt/")}  # fmt: skip
        for f, x in (self.chains or {}).items():  # every rank's chains
            out[f"chain/{f}"] = ((self.n_chains, *x.shape[1:]), x.dtype)
        names = list(self.model.params)
        copies = [p.detach().clone().requires_grad_(True) for p in self.params]
        probe = make_optimizer(*self.optimizer_spec, copies)
        for c in copies:
            c.grad = torch.zeros_like(c)
        probe.step()
        state = _optimizer_tensors(probe, names)
        out.update({k: (tuple(t.shape), t.dtype) for k, t in state.items()})
        return out

    def restore(self, t: dict[str, torch.Tensor], epoch: int, step: int) -> None:
        """Continue from the tensors of :meth:`tensors` (checked against :meth:`expected`):
        parameters, optimiser state, chains; ``epoch`` and ``step`` done."""
        dev, names = self.model._device(), list(self.model.params)
        with torch.no_grad():
            for k, p in self.model.params.items():
                p.copy_(t[f"param/{k}"].to(dev))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, val in t.items():
            if key.startswith("opt/"):
                _, pname, what = key.split("/", 2)
                state.setdefault(names.index(pname), {})[what] = val
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        if self.chains is not None:
            self.chains = {f: t[f"chain/{f}"][self.local_chains].to(dev) for f in self.chains}
        if self.pos_chains is not None:
            self.pos_chains = {f: t[f"pos/{f}"].to(dev) for f in self.pos_chains}
        self.epoch, self.step_count = epoch, step


def _size(block: slice) -> int:
    return block.stop - block.start


def _optimizer_tensors(optimizer: torch.optim.Optimizer,
                       names: list[str]) -> dict[str, torch.Tensor]:  # fmt: skip
    """The optimiser's per-parameter state (moments, step counts) by parameter name."""
    out = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                out[f"opt/{names[idx]}/{key}"] = val
    return out


def save_params(model: BoltzmannModel, path: Path) -> None:
    """The learned arrays, by name, for ``param W on edges = load("params.safetensors")``."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.params.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"model": model.ir.name})
    tmp.replace(path)


@torch.no_grad()
def latent_free_energy(model: BoltzmannModel, v: torch.Tensor, field: str,
                       chunk: int = 1 << 20) -> torch.Tensor:  # fmt: skip
    """F(v) = -log sum_h exp(-E(v, h)) -> (B,) by enumerating the latent units h (the sites of
    ``field`` beyond v's width, then the other fields), in chunks of ``chunk`` energies."""
    n_field = model.sets[model.field_sets[field]]
    visible = v.shape[1]
    others = [f for f in model.domains if f != field]
    layout = [(field, n_field - visible)] + [(f, model.sets[model.field_sets[f]]) for f in others]
    check_enumerable(sum(n for _, n in layout), "the likelihood", model.model.name_span)
    values: list = []
    for f, n in layout:
        values += [model.domains[f].values()] * n
    H = torch.tensor(list(itertools.product(*values)) if values else [[]], dtype=model.dtype,
                     device=v.device)  # fmt: skip
    B, K = v.shape[0], H.shape[0]
    per = max(1, chunk // max(B, 1))
    acc = []
    for k0 in range(0, K, per):
        h = H[k0 : k0 + per]
        c = h.shape[0]
        hh = h.repeat(B, 1)  # (B c, n_lat)
        state, at = {}, 0
        for f, n in layout:
            part = hh[:, at : at + n]
            at += n
            state[f] = torch.cat([v.repeat_interleave(c, 0), part], 1) if f == field else part
        e = model.energy(state).reshape(B, c)
        acc.append(torch.logsumexp(-e.double(), 1))
    return -torch.logsumexp(torch.stack(acc, 1), 1).to(model.dtype)
