"""The train task of deep learners: deep belief networks and autoencoders built from them.

::

    data digits: binary = digits(threshold = 8)
    learner ae = autoencoder(layers = [64, 64, 32, 4], finetune = 50)
    run fit {
        train ae via cd(k = 1), data = digits, epochs = 20, batch = 32, test = 0.2
        optimizer adam(lr = 0.01)
        scan code in [2, 4, 8]
        measure reconstruction, pca_reconstruction, reconstruction_gain
    }

A ``train`` statement whose learner is a ``dbn`` or ``autoencoder`` of the catalogue runs
here (:func:`run_deep`, called by the train task of :mod:`.tasks`): the plan
(:func:`~physml_lang.runtime.plans.learners.plan_deep`, what ``physml check`` runs) gives
the options of every scan point; each point is a :class:`StackPoint` of the driver's
``run_scan``: ``epochs`` epochs of CD-k / PCD per layer, bottom up, each layer trained on the
hidden activations of the one below (``runtime/learners/dbn.py``), then, for an autoencoder,
``finetune`` epochs of backpropagation (``runtime/learners/autoencoder.py``). Each finished
point's row goes to disk at once; a point is checkpointed after every epoch, and ``--resume``
continues a killed run where it stopped (bit-identically on the CPU).

Random numbers: point k draws from ``ctx.streams.fork(k)``, forked per purpose (layer l's
training, its activations, fine-tuning, AIS, generation); the train/test split is the run's,
the same at every point (as in the train task of Boltzmann machines).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue.boltzmann import AISOptions
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR
from physml_lang.runtime.plans.learners import (
    DeepPlan,
    DeepPoint,
    deep_options,
    deep_sizes,
    plan_deep,
    plan_deep_point,
    statements,
)

from .. import outputs
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..random import RandomStreams
from ..tasks import RunState
from .autoencoder import DeepAutoencoder, FineTuner
from .dbn import DBN, LayerTrainer, Units, pca_reconstruction, units_of
from .plots import sample_grid
from .train import Divergence

# families of a point's random streams by purpose
TRAIN_STREAMS, UP_STREAMS, FINETUNE_STREAMS, AIS_STREAMS, GENERATION_STREAMS = 1, 2, 3, 4, 5
# the Gaussian top layer of an autoencoder learns at this fraction of the optimiser's rate
# (Hinton & Salakhutdinov: linear units need a smaller rate)
GAUSSIAN_LR = 0.1


def _estimate(x: torch.Tensor) -> dict:
    """Mean and standard error over independent examples."""
    x = x.double().cpu()
    n = len(x)
    return {"mean": float(x.mean()),
            "stderr": float(x.std(unbiased=True) / math.sqrt(n)) if n > 1 else None}  # fmt: skip


class StackPoint(ScanPoint):
    """One point: greedy layer-wise training of the stack (one epoch of one layer per step),
    then fine-tuning of the unrolled autoencoder (one epoch per step); ``rows`` the measures.
    Saved after every epoch: the stack's parameters, the current layer's data, optimiser
    state, persistent chains and draw counter (or the autoencoder's), the histories and the
    data's hash, so that ``--resume`` continues bit-identically on the CPU."""

    save_every = 1  # after every epoch (the tensors of one layer's training are small)

    def __init__(self, run: RunState, plan: DeepPlan, checked: DeepPoint, train: torch.Tensor,
                 test: torch.Tensor, point: dict, streams: RandomStreams):  # fmt: skip
        self.run, self.plan, self.point, self.streams = run, plan, point, streams
        self.opts, self.sizes = checked.options, checked.sizes
        self.data = checked.data
        self.units: Units = units_of(checked.domain.kind, checked.domain.q)
        self.autoencoder = plan.kind == "autoencoder"
        self.dbn = DBN(self.units, self.sizes, self.opts.sigma,
                       streams.fork(TRAIN_STREAMS).host_generator(),
                       gaussian_top=self.autoencoder and self.opts.linear_code).to(train.device)  # fmt: skip
        self.train, self.test = train, test
        self.digest = hashlib.sha256(np.ascontiguousarray(checked.values).tobytes()).digest()
        self.epochs = plan.options.epochs
        self.finetune = self.opts.finetune if self.autoencoder else 0
        self.total = self.epochs * len(self.dbn.layers) + self.finetune
        self.histories: list[list[dict]] = [[] for _ in self.dbn.layers]
        self.finetune_history: list[dict] = []
        self.layer = 0
        self.net: DeepAutoencoder | None = None
        self.tuner: FineTuner | None = None
        self.trainer = self._trainer(0, train)

    def _trainer(self, l: int, data: torch.Tensor) -> LayerTrainer:
        layer = self.dbn.layers[l]
        name, opts = self.plan.optimizer
        if layer.gaussian:
            opts = opts.model_copy(update={"lr": opts.lr * GAUSSIAN_LR})
        return LayerTrainer(layer, data, self.plan.objective, (name, opts), self.plan.schedule,
                            self.epochs, self.plan.options.batch,
                            self.streams.fork(TRAIN_STREAMS, l), self.plan.options.max_weight)  # fmt: skip

    def step(self) -> None:
        if self.layer < len(self.dbn.layers):
            self.histories[self.layer].append(self.trainer.run_epoch())
            if self.trainer.epoch == self.epochs:
                self._next_layer()
        else:
            if self.tuner is None:
                self.net = DeepAutoencoder(self.dbn)
                self.tuner = FineTuner(self.net, self.train, self.opts.finetune_lr,
                                       self.plan.options.batch,
                                       self.streams.fork(FINETUNE_STREAMS))  # fmt: skip
            self.finetune_history.append(self.tuner.run_epoch())
        self.done += 1

    @torch.no_grad()
    def _next_layer(self) -> None:
        """The data of the layer above: h ~ p(h | v) of this layer's data (or p itself)."""
        layer = self.dbn.layers[self.layer]
        data = self.trainer.data
        self.layer += 1
        if self.layer < len(self.dbn.layers):
            up = self.streams.fork(UP_STREAMS, self.layer)
            nxt = (layer.sample_hidden(data, up) if self.opts.activations == "sample"
                   else layer.hidden_mean(data))  # fmt: skip
            self.trainer = self._trainer(self.layer, nxt)

    def postfix(self) -> dict[str, str]:
        if self.finetune_history:
            return {"finetune": f"{self.finetune_history[-1]['loss']:.4g}"}
        for l in reversed(range(len(self.histories))):
            if self.histories[l]:
                return {"layer": str(l + 1), "loss": f"{self.histories[l][-1]['loss']:.4g}"}
        return {}

    def history(self) -> dict:
        return {"layers": self.histories, "finetune": self.finetune_history}

    # ---------------------------------------------------------------- checkpoints
    def tensors(self) -> dict[str, torch.Tensor]:
        t = {f"dbn/{k}": v.detach() for k, v in self.dbn.named_parameters()}
        t["stage/layer"] = torch.tensor(self.layer)
        t["data/sha256"] = torch.tensor(list(self.digest), dtype=torch.uint8)
        if self.layer < len(self.dbn.layers):
            tr = self.trainer
            t["trainer/data"] = tr.data
            t["trainer/epoch"] = torch.tensor(tr.epoch)
            t["trainer/draws"] = torch.tensor(tr.streams.draws)
            if tr.chains is not None:
                t["trainer/chains"] = tr.chains
            t.update(_optimizer_state(tr.optimizer, "trainer/opt"))
        elif self.tuner is not None:
            t.update({f"net/{k}": v.detach() for k, v in self.net.named_parameters()})
            t["tuner/epoch"] = torch.tensor(self.tuner.epoch)
            t["tuner/draws"] = torch.tensor(self.tuner.streams.draws)
            t.update(_optimizer_state(self.tuner.optimizer, "tuner/opt"))
        for l, hist in enumerate(self.histories):
            for n in ("loss", "reconstruction"):
                if hist:
                    t[f"history/{l}/{n}"] = torch.tensor([h[n] for h in hist],
                                                         dtype=torch.float64)  # fmt: skip
        if self.finetune_history:
            t["history/finetune/loss"] = torch.tensor([h["loss"] for h in self.finetune_history],
                                                      dtype=torch.float64)  # fmt: skip
        return t

    def restore(self, saved) -> None:
        """Continue from a checkpoint of this point (other data: a located P602)."""
        t = saved.tensors
        digest = t.get("data/sha256")
        if digest is None or bytes(digest.tolist()) != self.digest:
            raise PhysmlError(Diagnostic("P602", "the checkpoint was made with other data",
                                         self.run.span, "resume with the data it was made "
                                         "with, or use another --out"))  # fmt: skip
        dev = self.train.device
        with torch.no_grad():
            for k, p in self.dbn.named_parameters():
                p.copy_(t[f"dbn/{k}"].to(dev))
        self.done = int(saved.state["done"])
        self.layer = int(t["stage/layer"])
        for l in range(len(self.histories)):
            if f"history/{l}/loss" in t:
                loss, rec = t[f"history/{l}/loss"].tolist(), t[f"history/{l}/reconstruction"].tolist()
                self.histories[l] = [{"epoch": i + 1, "loss": a, "reconstruction": b}
                                     for i, (a, b) in enumerate(zip(loss, rec))]  # fmt: skip
        if "history/finetune/loss" in t:
            self.finetune_history = [{"epoch": i + 1, "loss": a} for i, a in
                                     enumerate(t["history/finetune/loss"].tolist())]  # fmt: skip
        if self.layer < len(self.dbn.layers):
            self.trainer = self._trainer(self.layer, t["trainer/data"].to(dev))
            tr = self.trainer
            tr.epoch = int(t["trainer/epoch"])
            tr.streams.draws = int(t["trainer/draws"])
            if "trainer/chains" in t:
                tr.chains = t["trainer/chains"].to(dev)
            _load_optimizer_state(tr.optimizer, t, "trainer/opt")
        elif "tuner/epoch" in t:
            self.net = DeepAutoencoder(self.dbn)
            with torch.no_grad():
                for k, p in self.net.named_parameters():
                    p.copy_(t[f"net/{k}"].to(dev))
            self.tuner = FineTuner(self.net, self.train, self.opts.finetune_lr,
                                   self.plan.options.batch,
                                   self.streams.fork(FINETUNE_STREAMS))  # fmt: skip
            self.tuner.epoch = int(t["tuner/epoch"])
            self.tuner.streams.draws = int(t["tuner/draws"])
            _load_optimizer_state(self.tuner.optimizer, t, "tuner/opt")

    # ---------------------------------------------------------------- measures
    @torch.no_grad()
    def rows(self) -> list[dict]:
        run, names = self.run, [m.name for m in self.run.measures] or ["loss", "reconstruction"]
        row: dict[str, Any] = {**self.point, "epochs": self.epochs, "code": self.sizes[-1]}
        for l, hist in enumerate(self.histories):
            row[f"loss_layer{l + 1}"] = {"mean": hist[-1]["loss"], "stderr": None}
        row["loss"] = row[f"loss_layer{len(self.histories)}"]
        if self.finetune_history:
            row["finetune_loss"] = {"mean": self.finetune_history[-1]["loss"], "stderr": None}
        evald = self.test if len(self.test) else self.train
        units = self.units
        target = units.unit01(evald)
        if self.net is not None:
            rec = self.net.reconstruct(evald)
        else:
            rec = self.dbn.updown(evald)
        err = (rec - target).pow(2).sum(-1)
        self.reconstructed = rec
        if {"reconstruction", "pca_reconstruction", "reconstruction_gain"} & set(names):
            row["reconstruction"] = _estimate(err)
        if {"pca_reconstruction", "reconstruction_gain"} & set(names):
            pca = pca_reconstruction(units.unit01(self.train), target, self.sizes[-1])
            row["pca_reconstruction"] = _estimate(pca)
            row["reconstruction_gain"] = _estimate(pca - err)
        layer = self.dbn.layers[0]
        if "log_likelihood" in names or "log_z" in names:
            ais = statements(run).ais or AISOptions()
            log_z, se = layer.ais_log_z(ais.betas, ais.chains, self.streams.fork(AIS_STREAMS))
            row["log_z"] = {"mean": log_z, "stderr": se}
            if "log_likelihood" in names:
                f = layer.free_energy(evald).double().cpu().numpy()
                var = f.var(ddof=1) / len(f) if len(f) > 1 else 0.0
                row["log_likelihood"] = {"mean": float(-f.mean() - log_z),
                                         "stderr": math.sqrt(se**2 + var)}  # fmt: skip
        if "exact_log_likelihood" in names or "exact_kl" in names:
            lz = layer.exact_log_z()
            f = layer.free_energy(evald).double().cpu().numpy()
            ll = float(-f.mean() - lz)
            se = float(f.std(ddof=1) / math.sqrt(len(f))) if len(f) > 1 else None
            if "exact_log_likelihood" in names:
                row["exact_log_likelihood"] = {"mean": ll, "stderr": se}
            if "exact_kl" in names:
                _, counts = np.unique(evald.cpu().numpy(), axis=0, return_counts=True)
                pd = counts / counts.sum()
                row["exact_kl"] = {"mean": float((pd * np.log(pd)).sum() - ll), "stderr": se,
                                   "data_entropy": float(-(pd * np.log(pd)).sum())}  # fmt: skip
        self.samples = None
        gen = statements(run).generate
        if gen is not None:
            self.samples = self.dbn.generate(gen.chains, gen.burn_in + gen.sweeps,
                                             self.streams.fork(GENERATION_STREAMS))  # fmt: skip
        return [row]


def _optimizer_state(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state as ``{prefix}/{index}/{key}`` tensors."""
    out = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                out[f"{prefix}/{idx}/{key}"] = val
    return out


def _load_optimizer_state(optimizer: torch.optim.Optimizer, t: dict, prefix: str) -> None:
    """Load the state :func:`_optimizer_state` saved."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in t.items():
        if key.startswith(prefix + "/"):
            idx, what = key[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(idx), {})[what] = val
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------- figures


def reconstruction_plot(path: Path, rows: list[dict], x: str) -> Path | None:
    """Held-out reconstruction error of the network and of PCA against ``x`` (the code size
    or another scanned option), one panel, reconstruction.png."""
    pts = [r for r in rows if x in r and "pca_reconstruction" in r]
    if len(pts) < 2:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [r[x] for r in pts]
    for name, label in (("reconstruction", "network"), ("pca_reconstruction", "PCA")):
        ys = [r[name]["mean"] for r in pts]
        es = [r[name]["stderr"] or 0.0 for r in pts]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
    ax.set_xlabel(x)
    ax.set_ylabel("held-out squared error per example")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    outputs._atomic_write(path, buf.getvalue())
    return path


def examples_plot(path: Path, units: Units, data: torch.Tensor, network: torch.Tensor,
                  pca: torch.Tensor, shape: tuple[int, ...]) -> Path | None:  # fmt: skip
    """Held-out examples (top row), the network's reconstructions and PCA's (rows below), as
    images of the data's shape (two-valued units only), reconstructions.png."""
    n = data.shape[1]
    if units.kind == "potts":
        return None
    if len(shape) != 2:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            return None
        shape = (side, side)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = min(10, data.shape[0])
    fig = Figure(figsize=(k * 0.9, 3 * 0.95))
    FigureCanvasAgg(fig)
    for r, (imgs, label) in enumerate(((units.unit01(data), "data"), (network, "network"),
                                       (pca.clamp(0, 1), "PCA"))):  # fmt: skip
        for c in range(k):
            ax = fig.add_subplot(3, k, r * k + c + 1)
            ax.imshow(imgs[c].reshape(shape).cpu().numpy(), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout(pad=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    outputs._atomic_write(path, buf.getvalue())
    return path


def history_plot(path: Path, histories: list[dict], title: str) -> Path | None:
    """The training loss of every layer (and of fine-tuning) against the epoch, for the
    first scan point, training.png."""
    if not histories:
        return None
    h = histories[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = [(f"layer {l + 1} (CD/PCD loss)", hist) for l, hist in enumerate(h["layers"])]
    if h["finetune"]:
        curves.append(("fine-tuning (cross-entropy)", h["finetune"]))
    fig = Figure(figsize=(4.2 * len(curves), 3.3))
    FigureCanvasAgg(fig)
    for i, (label, hist) in enumerate(curves):
        ax = fig.add_subplot(1, len(curves), i + 1)
        ax.plot([e["epoch"] for e in hist], [e["loss"] for e in hist], marker=".")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    outputs._atomic_write(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- the run


def run_deep(task: TaskIR, program, ctx: RunContext, summarise, split: int) -> RunResult:
    """Train a deep learner at every scan point (greedy layer-wise, then fine-tuning for an
    autoencoder) and measure it; each point's row is written at once. ``summarise``: the train
    task's summary starter (run, program, ctx, task, extra) -> summary; ``split``: the family
    of random streams of the train/test split (the train task's)."""
    run = RunState.of(task)
    plan = plan_deep(run, program, ctx.sets)
    device, out, opts = ctx.device, ctx.out, plan.options
    decl = plan.learner
    summary = summarise(run, program, ctx, "train",
                        {"learner": plan.kind, "objective": plan.objective[0],
                         **plan.objective[1].model_dump(), "optimizer": plan.optimizer[0],
                         **plan.optimizer[1].model_dump(), "schedule": plan.schedule[0],
                         **opts.model_dump(exclude={"resume", "visible"})})  # fmt: skip
    summary["model"] = f"{decl.name} = {plan.kind}"
    summary["history"] = []
    files: list[Path] = []
    current: dict[int, StackPoint] = {}

    def start(k: int, streams: RandomStreams) -> StackPoint:
        if summary.get("resumed") and len(summary["history"]) < k and out is not None:
            try:  # the histories of the points a resumed run finished before
                saved = json.loads((out / "summary.json").read_text())["history"]
            except (OSError, ValueError, KeyError):
                saved = []
            summary["history"] = (list(saved) + [{}] * k)[:k]
        point = plan.points[k]
        checked = plan_deep_point(run, program, plan, program.data_loader, point)
        n, width = checked.values.shape
        params = sum(a * b for a, b in zip(checked.sizes[:-1], checked.sizes[1:])) * \
            (checked.domain.q if checked.domain.kind == "potts" else 1)  # fmt: skip
        check_memory(8 * (2 * n * width * (checked.domain.q or 2) + 8 * params
                          + 6 * n * max(checked.sizes)), device,
                     f"run {run.name} ({n} examples, layers {checked.sizes})", run.span,
                     "use fewer examples or smaller layers")  # fmt: skip
        summary["params"] = {"layers": checked.sizes, **checked.options.model_dump()}
        x = torch.as_tensor(checked.values, dtype=torch.float64, device=device)
        perm = ctx.streams.fork(split).permutation(len(x)).to(device)
        n_test = int(round(opts.test * len(x)))
        current[k] = StackPoint(run, plan, checked, x[perm[n_test:]], x[perm[:n_test]],
                                point, streams)  # fmt: skip
        return current[k]

    def finish(k: int, rows: list[dict]) -> None:
        p = current.pop(k)
        summary["rows"].extend(rows)
        summary["history"].append(p.history())
        if out is None:
            return
        suffix = f"_{k}" if len(plan.points) > 1 else ""
        shape = tuple(p.data.values.shape[1:])
        evald = p.test if len(p.test) else p.train
        mean = p.units.unit01(p.train).mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(p.units.unit01(p.train) - mean, full_matrices=False)
        V = vh[: p.sizes[-1]].T
        pca = mean + (p.units.unit01(evald[:10]) - mean) @ V @ V.T
        f = examples_plot(out / f"reconstructions{suffix}.png", p.units, evald[:10],
                          p.reconstructed[:10], pca, shape)  # fmt: skip
        if f:
            files.append(f)
        if p.samples is not None:
            f = sample_grid(out / f"samples{suffix}.png", p.units.unit01(p.samples)
                            if p.units.kind == "spin" else p.samples, p.data)  # fmt: skip
            if f:
                files.append(f)

    def diverged(exc: Divergence) -> PhysmlError:
        return PhysmlError(Diagnostic(
            "P700", f"training of learner {decl.name} diverged: {exc}",
            statements(run).train["span"], "lower the learning rate or add weight_decay"))  # fmt: skip

    first = deep_options(plan, plan.points[0])
    per_point = opts.epochs * (len(deep_sizes(plan, first)) - 1) + (
        first.finetune if plan.kind == "autoencoder" else 0)  # fmt: skip
    settings = {"run": run.name, "points": plan.points, "learner": plan.kind,
                "options": {k: v for k, (v, _) in plan.values.items()},
                "train": opts.model_dump(exclude={"resume"}), "seed": ctx.seed}  # fmt: skip
    try:
        run_scan(ctx, run.span, len(plan.points), settings, start, finish, per_point, run.name,
                 "epoch")  # fmt: skip
    except Divergence as exc:
        raise diverged(exc) from None
    if out is not None:
        x = run.scans[0].name if run.scans else "code"
        f = reconstruction_plot(out / "reconstruction.png", summary["rows"], x)
        if f:
            files.append(f)
        f = history_plot(out / "training.png", summary["history"],
                         f"{summary['model']}: greedy layer-wise training")  # fmt: skip
        if f:
            files.append(f)
    return RunResult(summary, out, files)


__all__ = ["StackPoint", "run_deep"]
