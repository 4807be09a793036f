"""Training Boltzmann machines: objectives, optimisers, schedules, checkpoints.

The log-likelihood gradient of an energy-based model is <dF/dtheta>_model - <dF/dtheta>_data,
F the free energy with the block fields (hidden units) summed out (F = E when there are none:
Boltzmann learning / inverse Ising, where it is <s_i s_j>_data - <s_i s_j>_model). The loss
mean F(v_data) - mean F(v_model) has exactly this gradient when the model samples are held
fixed; they come from the compiled Gibbs sampler:

- ``cd(k)``: k Gibbs sweeps started at the minibatch (contrastive divergence, Hinton 2002);
- ``pcd(k, chains)``: k sweeps of persistent chains (Tieleman 2008); also for models with no
  hidden units (Boltzmann learning).

Registries (name -> pydantic schema): OBJECTIVES, OPTIMIZERS, SCHEDULES. Checkpoints are
safetensors files (parameters, optimiser moments, persistent chains, generator state); a run
resumes from one, and a diverging run (NaN, exploding weights) stops with a P700 diagnostic and
keeps its last good checkpoint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from physml_lang.compiler.boltzmann import BoltzmannModel
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from physml_lang.diagnostics import Diagnostic, PhysmlError

from .gibbs import GibbsSampler


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CDOptions(_Strict):
    k: int = Field(1, ge=1, le=10_000, description="Gibbs sweeps from the data")


class PCDOptions(_Strict):
    k: int = Field(1, ge=1, le=10_000, description="Gibbs sweeps of the persistent chains per step")
    chains: int = Field(100, ge=1, le=1_000_000, description="persistent chains")


class SGDOptions(_Strict):
    lr: float = Field(0.01, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")


class AdamOptions(_Strict):
    lr: float = Field(0.001, gt=0, description="learning rate")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")


class ConstantOptions(_Strict):
    pass


class CosineOptions(_Strict):
    min_factor: float = Field(0.0, ge=0, le=1, description="final lr / initial lr")


class ExponentialOptions(_Strict):
    gamma: float = Field(0.95, gt=0, le=1, description="lr factor per epoch")


class StepOptions(_Strict):
    every: int = Field(10, ge=1, description="epochs between steps")
    factor: float = Field(0.5, gt=0, le=1, description="lr factor per step")


@dataclass(frozen=True)
class Entry:
    schema: type[BaseModel]
    doc: str


OBJECTIVES: dict[str, Entry] = {
    "cd": Entry(CDOptions, "contrastive divergence: k Gibbs sweeps from the data"),
    "pcd": Entry(PCDOptions, "persistent contrastive divergence (also Boltzmann learning)"),
}
OPTIMIZERS: dict[str, Entry] = {
    "sgd": Entry(SGDOptions, "stochastic gradient descent with momentum"),
    "adam": Entry(AdamOptions, "Adam"),
}
SCHEDULES: dict[str, Entry] = {
    "constant": Entry(ConstantOptions, "constant learning rate"),
    "cosine": Entry(CosineOptions, "cosine decay over the epochs"),
    "exponential": Entry(ExponentialOptions, "lr * gamma^epoch"),
    "step": Entry(StepOptions, "lr * factor^(epoch // every)"),
}


def lr_factor(name: str, opts: BaseModel, epoch: float, epochs: int) -> float:
    """The learning-rate factor at (fractional) ``epoch``."""
    if name == "cosine":
        t = min(epoch / max(epochs, 1), 1.0)
        return opts.min_factor + (1 - opts.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    if name == "exponential":
        return opts.gamma ** int(epoch)
    if name == "step":
        return opts.factor ** (int(epoch) // opts.every)
    return 1.0


def make_optimizer(name: str, opts: BaseModel, params) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum,
                               weight_decay=opts.weight_decay)  # fmt: skip
    return torch.optim.Adam(params, lr=opts.lr, betas=(opts.beta1, opts.beta2),
                            weight_decay=opts.weight_decay)  # fmt: skip


class Divergence(Exception):
    """Training produced non-finite or exploding parameters."""


class Trainer:
    """Minibatch training of a Boltzmann model on data of its first field.

    ``data``: (n, n_visible) tensor of the data field's values."""

    def __init__(self, model: BoltzmannModel, data: torch.Tensor, objective: str,
                 objective_opts: BaseModel, optimizer: str, optimizer_opts: BaseModel,
                 schedule: str, schedule_opts: BaseModel, epochs: int, batch: int,
                 generator: torch.Generator, max_weight: float = 1e4):  # fmt: skip
        self.model = model
        self.data = data.to(model.dtype)
        self.field = next(iter(model.domains))
        self.hidden = [f for f in model.blocks if f != self.field]
        self.hidden = model.summable(self.hidden) if self.hidden else []
        unsummed = [f for f in model.domains if f != self.field and f not in self.hidden]
        if unsummed:
            raise PhysmlError(Diagnostic(
                "P502", f"field(s) {', '.join(unsummed)} cannot be summed out analytically "
                "(they interact with themselves); this objective needs hidden units that form "
                "a block", model.ir.fields[unsummed[0]].span))  # fmt: skip
        self.objective, self.oopts = objective, objective_opts
        self.schedule, self.sopts = schedule, schedule_opts
        self.epochs, self.batch = epochs, min(batch, len(data))
        self.generator = generator
        self.max_weight = max_weight
        self.params = list(model.params.values())
        if not self.params:
            raise PhysmlError(Diagnostic("P400", f"model {model.ir.name} has no learnable "
                                         "parameters", model.ir.node.name_span,
                                         "mark them: 'learnable param W on edges = ...'"))  # fmt: skip
        self.optimizer = make_optimizer(optimizer, optimizer_opts, self.params)
        self.base_lr = optimizer_opts.lr
        self.sampler = GibbsSampler(model, 1.0, generator)
        self.chains = None
        if objective == "pcd":
            self.chains = model.random_state(objective_opts.chains, generator, data.device)
        self.epoch = 0
        self.step_count = 0

    # ---------------------------------------------------------------- one step
    def negatives(self, batch: torch.Tensor) -> dict:
        self.model.freeze()
        try:
            if self.objective == "cd":
                state = self.model.random_state(len(batch), self.generator, batch.device)
                state[self.field] = batch
                for _ in range(self.oopts.k):
                    state = self.sampler.sweep(state)
                return state
            for _ in range(self.oopts.k):
                self.chains = self.sampler.sweep(self.chains)
            return self.chains
        finally:
            self.model.unfreeze()

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        state = {self.field: v}
        if self.hidden:
            return self.model.free_energy(state, self.hidden)
        return self.model.energy(state)

    def step(self, batch: torch.Tensor) -> tuple[float, float]:
        """One optimiser step on a minibatch; returns (loss, reconstruction error)."""
        neg = self.negatives(batch)
        vneg = neg[self.field].detach()
        loss = self.free_energy(batch).mean() - self.free_energy(vneg).mean()
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
        recon = float((vneg - batch).pow(2).mean()) if self.objective == "cd" else float("nan")
        return float(loss.detach()), recon

    def run_epoch(self, on_step: Callable | None = None) -> dict:
        n = len(self.data)
        perm = torch.randperm(n, generator=self.generator).to(self.data.device)
        losses, recons = [], []
        n_batches = max(1, n // self.batch)
        for b in range(n_batches):
            frac = self.epoch + b / n_batches
            factor = lr_factor(self.schedule, self.sopts, frac, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * factor
            loss, recon = self.step(self.data[perm[b * self.batch:(b + 1) * self.batch]])
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
    def save(self, path: Path, meta: dict) -> None:
        """Parameters, optimiser moments, persistent chains and generator state."""
        tensors = {f"param.{k}": v.detach().contiguous().cpu() for k, v in self.model.params.items()}
        opt = self.optimizer.state_dict()
        names = list(self.model.params)
        for idx, st in opt["state"].items():
            for key, val in st.items():
                t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
                tensors[f"opt.{names[idx]}.{key}"] = t.detach().contiguous().cpu()
        if self.chains is not None:
            for f, x in self.chains.items():
                tensors[f"chain.{f}"] = x.contiguous().cpu()
        tensors["rng"] = self.generator.get_state().cpu()
        metadata = {"epoch": str(self.epoch), "step": str(self.step_count),
                    "groups": json.dumps(opt["param_groups"]), "meta": json.dumps(meta)}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(path)

    def load(self, path: Path) -> dict:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
        tensors = load_file(str(path))
        dev = self.model._device()
        with torch.no_grad():
            for k, p in self.model.params.items():
                p.copy_(tensors[f"param.{k}"].to(dev))
        names = list(self.model.params)
        state = {}
        for key, val in tensors.items():
            if key.startswith("opt."):
                _, pname, what = key.split(".", 2)
                state.setdefault(names.index(pname), {})[what] = val.to(dev) if val.dim() else val
        self.optimizer.load_state_dict({"state": state,
                                        "param_groups": json.loads(metadata["groups"])})  # fmt: skip
        if self.chains is not None:
            self.chains = {f: tensors[f"chain.{f}"].to(dev) for f in self.chains}
        self.generator.set_state(tensors["rng"])
        self.epoch = int(metadata["epoch"])
        self.step_count = int(metadata["step"])
        return json.loads(metadata["meta"])


def save_params(model: BoltzmannModel, path: Path) -> None:
    """The learned arrays, by name, for ``param W on edges = load("params.safetensors")``."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.params.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"model": model.ir.name})
    tmp.replace(path)
