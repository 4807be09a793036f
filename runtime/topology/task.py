"""The topology tasks, run through the shared driver: ``invariant winding|chern(...)`` (task
``topology``) and ``locate impurities(...)`` (task ``images``), validated by
``runtime/plans/topology.py``.

The data are generated once from the run's seed (training set and every test set); then each
learner is one unit of the driver's scan: it is built, trained and tested, and its rows are
written at once. ``topology`` rows: one per learner, split and invariant class (and ``all`` per
split): accuracy of the rounded regression output and its mean |error|. ``images`` rows: one per
learner and test condition (``train`` distribution, ``shifted`` lattices, ``noisy`` images,
``size``: another image size, n/a for a fully connected net), with the mean confidence and the
expected calibration error of the located impurity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..device import check_memory
from ..driver import Computation, RunContext, RunResult, run_scan
from ..plans.topology import LearnerSpec, TopologyPlan, plan_topology
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import plots
from .datasets import SampleShortfall, chern_data, torus_symmetries, winding_data
from .images import ImageSpec, located, microscope_images
from .networks import ConvNet, DenseNet
from .training import (
    TrainingDiverged,
    expected_calibration_error,
    pixel_loss,
    predict,
    regression_loss,
    reliability,
    train,
)

DATA_STREAM = 1_000_000  # the data's random stream, apart from the learners' (0, 1, ...)


def build(spec: LearnerSpec, dim: int, in_channels: int, grid: int, outputs: int, pool: str,
          gen: torch.Generator, device) -> torch.nn.Module:  # fmt: skip
    """The learner's net, initial weights drawn from ``gen`` (built on the CPU, then moved)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        o = spec.options
        if spec.conv:
            net = ConvNet(dim, in_channels, o.channels, o.kernel, 1, pool,
                          pointwise=o.pointwise, order=o.order, device="cpu")  # fmt: skip
        else:
            net = DenseNet(in_channels * grid**dim, o.hidden, outputs, device="cpu")
    return net.to(device)


def memory_need(plan: TopologyPlan) -> int:
    """Bytes of the data sets (float32; the generators' float64 draws take twice as much
    again) and of the largest activations of one batch."""
    o = plan.options
    if plan.task == "images":
        pixels = o.size**2
        images = o.samples * pixels + 4 * o.tests * max(pixels, o.test_size**2)
        width = max(max(s.options.channels) for s in plan.learners)
        return 4 * (3 * images + 4 * o.batch * width * max(pixels, o.test_size**2))
    per = 2 * o.k_points if plan.method == "winding" else 3 * o.points**2
    fine = 16 if plan.method == "winding" else 1  # the labels' finer grid
    models = 2 * (len(o.train) * o.samples + len(o.test) * o.tests)  # drawn twice over
    return 4 * (3 * fine * models * per + 4 * o.batch * 64 * per)


def _located_failure(plan: TopologyPlan, code: str, msg: str, hint: str, ctx: RunContext):
    ctx.recorder.write()
    raise PhysmlError(Diagnostic(code, msg, plan.method_span, hint)) from None


# ---------------------------------------------------------------- invariants


def _invariant_data(plan: TopologyPlan, streams: RandomStreams, device):
    o = plan.options
    gen = streams.host_generator()
    if plan.method == "winding":
        make = lambda ws, n: winding_data(ws, n, o.k_points, o.harmonics, o.disorder, gen)  # noqa: E731
    else:
        make = lambda ws, n: chern_data(ws, n, o.points, o.perturbation, gen)  # noqa: E731
    x, y = make(list(o.train), o.samples)
    xt, yt = make(list(o.test), o.tests)
    return x.to(device), y.to(device), xt.to(device), yt.to(device)


def _invariant_rows(plan: TopologyPlan, spec: LearnerSpec, net, data) -> list[dict]:
    x, y, xt, yt = data
    rows = []
    for split, xs, ys, labels in (("train", x, y, plan.options.train),
                                  ("test", xt, yt, plan.options.test)):  # fmt: skip
        out = predict(net, xs)[:, 0]
        err = (out - ys.to(out.dtype)).abs()
        ok = out.round().long() == ys
        base = {"invariant": plan.method, "learner": spec.name,
                "architecture": "conv" if spec.conv else "dense", "split": split}  # fmt: skip
        for w in [*labels, "all"]:
            pick = torch.ones_like(ok) if w == "all" else ys == w
            n = int(pick.sum())
            rows.append({**base, "label": w, "samples": n,
                         "accuracy": float(ok[pick].float().mean()),
                         "mean_abs_error": float(err[pick].mean())})  # fmt: skip
    return rows


def run_topology(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Learn a winding or Chern number with each learner; rows per learner, split and class."""
    run = RunState.of(task)
    plan = plan_topology(run, program, ctx.sets)
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": "none",
                    "device": str(ctx.device),
                    "seed": ctx.seed, "task": plan.task,
                    "method": {"name": plan.method, **plan.options.model_dump()},
                    "learners": {s.name: {"architecture": "conv" if s.conv else "dense",
                                          **s.options.model_dump()} for s in plan.learners},
                    "rows": [], "complete": False})  # fmt: skip
    check_memory(memory_need(plan), ctx.device, f"run {run.name}", run.span,
                 "fewer samples or a coarser grid")  # fmt: skip
    try:
        data = _invariant_data(plan, ctx.streams.fork(DATA_STREAM), ctx.device)
    except SampleShortfall as exc:
        _located_failure(plan, "P430", f"{plan.method}: could not draw {exc.want} models of "
                         f"invariant {exc.label} (got {exc.have})", "lower disorder or "
                         "perturbation, or raise harmonics or the grid", ctx)  # fmt: skip
    o = plan.options
    dim, channels = (1, 2) if plan.method == "winding" else (2, 3)
    grid = o.k_points if plan.method == "winding" else o.points
    settings = {"task": plan.task, "method": plan.method, "options": o.model_dump(),
                "learners": [(s.name, s.conv, s.options.model_dump()) for s in plan.learners],
                "seed": ctx.seed}  # fmt: skip

    # Chern numbers: every minibatch under a random symmetry of the torus and of d-space
    augment = torus_symmetries if plan.method == "chern" else None

    def start(k: int, streams: RandomStreams) -> Computation:
        spec = plan.learners[k]

        def work() -> list[dict]:
            gen = streams.host_generator()
            net = build(spec, dim, channels, grid, 1, "sum", gen, ctx.device)
            train(net, data[0], data[1], regression_loss, epochs=o.epochs, batch=o.batch,
                  lr=o.lr, gen=gen, augment=augment)  # fmt: skip
            return _invariant_rows(plan, spec, net, data)

        return Computation(work)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        test = next(r for r in rows if r["split"] == "test" and r["label"] == "all")
        summary.setdefault("test_accuracy", {})[plan.learners[k].name] = test["accuracy"]

    try:
        run_scan(ctx, run.span, len(plan.learners), settings, start, finish, 1, run.name,
                 "learner")  # fmt: skip
    except TrainingDiverged as exc:
        _located_failure(plan, "P704", f"{plan.method}: training diverged ({exc})",
                         "lower lr", ctx)  # fmt: skip
    files: list[Path] = []
    if ctx.out is not None:
        files.append(plots.topology_plot(ctx.out, summary))
    return RunResult(summary, ctx.out, files)


# ---------------------------------------------------------------- images


def _conditions(plan: TopologyPlan) -> dict[str, ImageSpec]:
    o = plan.options
    base = ImageSpec(o.size, o.spacing, o.psf, o.noise, o.jitter, o.impurity)
    return {"train": base,
            "shifted": ImageSpec(o.size, o.spacing, o.psf, o.noise, o.jitter, o.impurity, True),
            "noisy": ImageSpec(o.size, o.spacing, o.psf, o.test_noise, o.jitter, o.impurity),
            "size": ImageSpec(o.test_size, o.spacing, o.psf, o.noise, o.jitter, o.impurity)}


def run_images(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Locate impurities with each learner; rows per learner and test condition."""
    run = RunState.of(task)
    plan = plan_topology(run, program, ctx.sets)
    o = plan.options
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": "none",
                    "device": str(ctx.device),
                    "seed": ctx.seed, "task": plan.task,
                    "method": {"name": plan.method, **o.model_dump()},
                    "learners": {s.name: {"architecture": "conv" if s.conv else "dense",
                                          **s.options.model_dump()} for s in plan.learners},
                    "rows": [], "complete": False})  # fmt: skip
    check_memory(memory_need(plan), ctx.device, f"run {run.name}", run.span,
                 "fewer samples or tests, or smaller images")  # fmt: skip
    gen = ctx.streams.fork(DATA_STREAM).host_generator()
    conditions = _conditions(plan)
    x, y = microscope_images(conditions["train"], o.samples, gen, device="cpu")
    tests = {name: microscope_images(spec, o.tests, gen, device="cpu")
             for name, spec in conditions.items()}  # fmt: skip
    x, y = x.to(ctx.device), y.to(ctx.device)
    tests = {k: (a.to(ctx.device), b.to(ctx.device)) for k, (a, b) in tests.items()}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    settings = {"task": plan.task, "options": o.model_dump(), "seed": ctx.seed,
                "learners": [(s.name, s.conv, s.options.model_dump()) for s in plan.learners]}

    def start(k: int, streams: RandomStreams) -> Computation:
        spec = plan.learners[k]

        def work() -> list[dict]:
            g = streams.host_generator()
            net = build(spec, 2, 1, o.size, o.size**2, "map", g, ctx.device)
            train(net, x, y, pixel_loss, epochs=o.epochs, batch=o.batch, lr=o.lr, gen=g)
            rows = []
            for name, (xt, yt) in tests.items():
                cs = conditions[name]
                row = {"learner": spec.name, "architecture": "conv" if spec.conv else "dense",
                       "condition": name, "size": cs.size, "noise": cs.noise,
                       "samples": int(yt.numel()), "accuracy": None, "confidence": None,
                       "ece": None}  # fmt: skip
                if spec.conv or cs.size == o.size:  # a dense net takes one image size only
                    out = predict(net, xt)
                    ok = located(out, yt, cs.size, cs.spacing)
                    conf = out.softmax(-1).amax(-1)
                    row.update(accuracy=float(ok.float().mean()), confidence=float(conf.mean()),
                               ece=expected_calibration_error(conf, ok))  # fmt: skip
                    if name == "noisy":
                        count, acc, mean_conf = reliability(conf, ok)
                        keep = (count > 0).cpu().numpy()
                        curves[spec.name] = (mean_conf.cpu().numpy()[keep],
                                             acc.cpu().numpy()[keep])  # fmt: skip
                rows.append(row)
            return rows

        return Computation(work)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)

    try:
        run_scan(ctx, run.span, len(plan.learners), settings, start, finish, 1, run.name,
                 "learner")  # fmt: skip
    except TrainingDiverged as exc:
        _located_failure(plan, "P704", f"impurities: training diverged ({exc})", "lower lr",
                         ctx)  # fmt: skip
    summary["off_distribution_gap"] = _gap(summary["rows"])
    ctx.recorder.write()
    files: list[Path] = []
    if ctx.out is not None:
        files.append(plots.images_plot(ctx.out, summary))
        if curves:
            files.append(plots.calibration_plot(ctx.out, curves))
    return RunResult(summary, ctx.out, files)


def _gap(rows: list[dict]) -> dict[str, float] | None:
    """Per off-distribution condition: the best conv learner's accuracy minus the best dense
    one's (a dense net that cannot take the input counts as 0)."""
    conv = [r for r in rows if r["architecture"] == "conv"]
    dense = [r for r in rows if r["architecture"] == "dense"]
    if not conv or not dense:
        return None
    gap = {}
    for c in ("shifted", "noisy", "size"):
        best = max((r["accuracy"] or 0.0) for r in conv if r["condition"] == c)
        other = max((r["accuracy"] or 0.0) for r in dense if r["condition"] == c)
        gap[c] = best - other
    return gap


def bind(catalogue: Catalogue) -> None:
    """Attach this family's tasks and its classifier (a builder of nets)."""
    catalogue.tasks.bind("topology", Task(run_topology))
    catalogue.tasks.bind("images", Task(run_images))
    catalogue.learners.bind("classifier", build, family="table")
    for name, data in (("winding", winding_data), ("chern", chern_data),
                       ("impurities", microscope_images)):
        catalogue.analyses.bind(name, data, family="table")


__all__ = ["bind", "build", "memory_need", "run_images", "run_topology"]
