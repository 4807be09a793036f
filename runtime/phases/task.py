"""The classify task: ``classify phases via supervised | pca | confusion``, run through the
shared driver (``runtime/plans/phases.py`` validates it).

One unit of the driver's scan per lattice size: sample every temperature (one batch of
chains), then the method's rows for that size (with ``train_size``, the convolutional
learners are trained once beforehand, on a sample of their own, and read at every size); at
the largest size also the controls, the sim-to-reality rows and the transfer to other
lattices. After the scan, T_c(L) is extrapolated
(T_c(L) = T_c + a L^(-1/nu), nu fixed and, with >= 4 sizes, fitted) and the plots are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..device import check_memory
from ..driver import Computation, RunContext, RunResult, run_scan
from ..plans.phases import SIZE, PhasesPlan, plan_phases
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import analysis, networks, plots, supervised
from .sampling import Configurations, block_spins, sample

SHARED_STREAM = 1 << 20  # the streams of the shared training sample (beyond any size index)
CHAINS = "\0chains"  # the key of the chain means per learner and size among the replicas




def memory_need(plan: PhasesPlan, program, checker) -> int:
    """Bytes of the configurations of the largest size (float32, all temperatures, with room
    for the training copies and the nets' activations of one batch)."""
    sites = 0
    for L in plan.sizes:
        args = dict(plan.args) if L is None else {**plan.args, SIZE: L}
        sites = max(sites, program.derive(checker.instantiate(args)).lattice.n_sites)
    configurations = plan.per_temperature * len(plan.temperatures)
    return 4 * sites * (4 * configurations + 64 * 1024)


def run_classify(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Run a classify task: rows per size, then the extrapolation and the plots."""
    run = RunState.of(task)
    plan = plan_phases(run, program, ctx.sets)
    checker = program.checker_for(task)
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": checker.name,
                    "params": dict(plan.args), "device": str(ctx.device), "seed": ctx.seed,
                    "task": "classify", "method": {"name": plan.method,
                                                   **plan.options.model_dump()},
                    "classify": plan.classify.model_dump(), "sizes": plan.sizes,
                    "temperatures": plan.temperatures,
                    "windows": [plan.ordered_below, plan.disordered_above],
                    "sampler": {"name": plan.sampler, **plan.sampler_options.model_dump()},
                    "learners": {lr.name: {**lr.options.model_dump(),
                                           "translation": lr.translation}
                                 for lr in plan.learners},
                    "curves": {}, "rows": [], "complete": False})  # fmt: skip
    check_memory(memory_need(plan, program, checker), ctx.device, f"run {run.name}", run.span,
                 "fewer chains or sweeps per temperature, fewer temperatures or smaller sizes")
    replicas: dict[str, dict[Any, np.ndarray]] = {}
    settings = {"task": "classify", "method": plan.method, "options": plan.options.model_dump(),
                "classify": plan.classify.model_dump(), "seed": ctx.seed, "sizes": plan.sizes,
                "temperatures": plan.temperatures}  # fmt: skip

    shared = _shared_nets(plan, program, checker, ctx)

    def start(k: int, streams: RandomStreams) -> Computation:
        L = plan.sizes[k]
        last = k == len(plan.sizes) - 1

        def work() -> list[dict]:
            args = dict(plan.args) if L is None else {**plan.args, SIZE: L}
            cm = program.compile_ir(checker.instantiate(args))
            raw = sample(cm, plan.sampler, plan.sampler_options, plan.temperatures, plan.field,
                         plan.spin_flip, streams, ctx.device)  # fmt: skip
            size = L if L is not None else int(cm.lattice.shape[0])
            source = Source(cm, checker, args, raw)
            return _size_rows(plan, _coarse(plan, raw, streams), size, last, streams, ctx,
                              program, summary, replicas, shared, source)  # fmt: skip

        return Computation(work)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)

    try:
        run_scan(ctx, run.span, len(plan.sizes), settings, start, finish, 1, run.name, "size")
    except FloatingPointError as exc:
        ctx.recorder.write()
        raise PhysmlError(Diagnostic("P704", f"classify: {exc}", plan.method_span,
                                     "lower lr, or more configurations")) from None  # fmt: skip
    extra = _extrapolations(plan, summary["rows"], replicas, ctx.streams)
    if extra:
        summary["rows"].extend(extra)
        ctx.recorder.write()
    files: list[Path] = []
    if ctx.out is not None:
        files = plots.draw(ctx.out, plan, summary)
    return RunResult(summary, ctx.out, files)


def _coarse(plan: PhasesPlan, conf: Configurations, streams: RandomStreams) -> Configurations:
    """The classifiers' input: the configurations, or their block spins (``coarse_grain``)."""
    b = plan.classify.coarse_grain
    return conf if b is None else block_spins(conf, b, streams)


def _shared_nets(plan: PhasesPlan, program, checker, ctx: RunContext) -> dict:
    """With ``train_size``: the convolutional learners trained once, on configurations of that
    L sampled for them alone (streams of their own), to be read at every size."""
    c = plan.classify
    # block spins: every learner reads the same grid at every size
    conv = [lr for lr in plan.learners if lr.options.convolutional or c.coarse_grain]
    if plan.method != "supervised" or c.train_size is None or not conv:
        return {}
    streams = ctx.streams.fork(SHARED_STREAM)
    cm = program.compile_ir(checker.instantiate({**plan.args, SIZE: c.train_size}))
    conf = _coarse(plan, sample(cm, plan.sampler, plan.sampler_options, plan.temperatures,
                                plan.field, plan.spin_flip, streams, ctx.device), streams)
    sp = supervised.split(conf, c.test_fraction, plan.ordered_below, plan.disordered_above)
    return {lr.name: supervised.train(lr, sp, plan.options, streams, ctx.device,
                                      members=c.ensemble) for lr in conv}  # fmt: skip


@dataclass
class Source:
    """Where one size's configurations came from: the compiled model, its checker and
    arguments, and the configurations before any block spins."""

    cm: Any
    checker: Any
    args: dict
    raw: Configurations


def _size_rows(plan: PhasesPlan, conf, L: int, last: bool, streams: RandomStreams,
               ctx: RunContext, program, summary: dict, replicas: dict,
               shared: dict, source: Source) -> list[dict]:  # fmt: skip
    """The rows of one size (and, at the largest, the controls and transfers)."""
    curves = summary["curves"]
    c = plan.classify
    sp = supervised.split(conf, c.test_fraction, plan.ordered_below, plan.disordered_above)
    if plan.method == "pca":
        row, curve, reps = _pca(plan, conf, L, streams)
        curves.setdefault("pca", {})[str(L)] = curve
        replicas.setdefault("pca", {})[L] = reps
        return [row]
    if plan.method == "confusion":
        row, curve = _confusion(plan, sp, L, streams, ctx.device)
        curves.setdefault(row["learner"], {})[str(L)] = curve
        return [row]
    rows, nets = [], {}
    for lr in plan.learners:
        net = shared.get(lr.name)
        if net is None:
            net = supervised.train(lr, sp, plan.options, streams, ctx.device,
                                   members=c.ensemble)  # fmt: skip
        row, curve, reps, means = supervised.curve_rows(plan, lr.name, L, net, sp, streams,
                                                        every_chain=lr.name in shared)  # fmt: skip
        rows.append(row)
        curves.setdefault(lr.name, {})[str(L)] = curve
        replicas.setdefault(lr.name, {})[L] = reps
        replicas.setdefault(CHAINS, {}).setdefault(lr.name, {})[L] = means
        nets[lr.name] = net
    if last:
        if c.controls:
            rows += supervised.controls(plan, sp, L, streams, ctx.device)
        if c.noise > 0:
            rows += supervised.noisy(plan, nets, sp, L, streams)
        if c.one_side:
            raw = sp if c.coarse_grain is None else supervised.split(
                source.raw, c.test_fraction, plan.ordered_below, plan.disordered_above)
            delta = _flip_energies(source.cm, plan.field, source.raw.x)
            rows += supervised.one_side(plan, raw, L, streams, ctx.device, delta)
        if c.perturbed is not None:
            cm = program.compile_ir(source.checker.instantiate(
                {**source.args, c.perturbed: c.perturbed_value}))
            other = _coarse(plan, sample(cm, plan.sampler, plan.sampler_options,
                                         plan.temperatures, plan.field, plan.spin_flip, streams,
                                         ctx.device), streams)  # fmt: skip
            psp = supervised.split(other, c.test_fraction, plan.ordered_below,
                                   plan.disordered_above)  # fmt: skip
            rows += supervised.perturbed(plan, nets, psp, L, streams)
        for i, name in enumerate(c.transfer or []):
            rows += _transfer(plan, i, name, L, nets, streams, ctx, program, curves)
    return rows


def _flip_energies(cm, field: str, x: torch.Tensor) -> torch.Tensor:
    """E(s with site i flipped) - E(s) for every configuration and site, from the model's
    local energies: x (n_T, n, *lattice shape) -> (n_T, n, N)."""
    s = x.flatten(0, 1).to(cm.dtype)
    le = cm.fields[field].local_energy
    state = {field: s}
    return (le(state, -s) - le(state, s)).reshape(*x.shape[:2], -1)


def _pca(plan: PhasesPlan, conf, L: int, streams: RandomStreams) -> tuple[dict, dict, np.ndarray]:
    """PC1 of every configuration of every T; |PC1| ~ |m|; T_c(L) at the peak of its
    fluctuations N (<p1^2> - <|p1|>^2), with a bootstrap over configurations."""
    x = conf.x.flatten(2)
    n_t, n, N = x.shape
    proj, ratio = analysis.principal_components(x.flatten(0, 1), plan.options.components)
    p1 = proj[:, 0].reshape(n_t, n).abs().cpu().numpy()
    ts = conf.temperatures.numpy()
    chi = N * (p1**2).mean(1) - N * p1.mean(1) ** 2
    tc = analysis.peak(ts, chi)
    gen = np.random.default_rng(int(streams.host_generator().initial_seed()) % (1 << 63))
    reps = np.empty(plan.classify.bootstrap)
    if reps.size:
        idx = gen.integers(0, n, size=(reps.size, n_t, n))
        q = np.take_along_axis(p1[None].repeat(reps.size, 0), idx, 2)
        chis = N * (q**2).mean(2) - N * q.mean(2) ** 2
        reps = np.array([analysis.peak(ts, ch) for ch in chis])
    row = {"kind": "size", "method": "pca", "learner": "pca", "L": L, "T_c": tc,
           "T_c_err": float(np.std(reps, ddof=1)) if reps.size > 1 else None,
           "explained": float(ratio[0]), "crossing": True}  # fmt: skip
    supervised._deviation(row, plan.classify.exact)
    curve = {"T": ts.tolist(), "PC1": p1.mean(1).tolist(), "fluctuation": chi.tolist(),
             "explained": ratio.tolist()}  # fmt: skip
    return row, curve, reps


def _confusion(plan: PhasesPlan, sp, L: int, streams: RandomStreams, device
               ) -> tuple[dict, dict]:  # fmt: skip
    """Learning by confusion: for each proposed T', the first learner trained to tell T < T'
    from T > T' on all training configurations; its held-out accuracy against T' is a W whose
    middle peak is T_c. The outer arms are trivial (one class nearly empty): T_c is read off
    the balanced accuracy instead, which a configuration-blind guess holds at 1/2."""
    ts, o = sp.ts, plan.options
    if o.proposals:
        props = np.linspace(ts[0], ts[-1], o.proposals + 2)[1:-1]
    else:
        props = (ts[1:] + ts[:-1]) / 2
    lr = plan.learners[0]
    n_t, n_tr = sp.train.shape[:2]
    x = sp.train.flatten(0, 1)
    acc, balanced = [], []
    for tp in props:
        above = torch.from_numpy(ts > tp).to(x.device)
        y = (~above).float().repeat_interleave(n_tr)
        net = networks.build(lr.options, sp.shape, sp.basis, streams, device)
        networks.train_binary(net, x, y, epochs=o.epochs, lr=o.lr, batch=o.batch,
                              weight_decay=0.0, streams=streams)  # fmt: skip
        probs = supervised.probabilities(net, sp.test)
        truth = (~above)[:, None].expand_as(probs)
        right = ((probs >= 0.5) == truth).float()
        acc.append(float(right.mean()))
        balanced.append(0.5 * float(right[~above].mean() + right[above].mean()))
    acc_a, bal = np.array(acc), np.array(balanced)
    # the trivial arms of the W: near the ends of the scan one class is nearly empty and the
    # majority guess is nearly always right. The balanced accuracy (the mean of the two
    # classes' recalls) is 1/2 for any guess that ignores the configuration: the W becomes
    # one peak, at T_c, broad on small lattices (a parabola through its top)
    below = np.array([(ts < tp).mean() for tp in props])
    i = int(np.argmax(bal))
    tc = analysis.peak_of_top(props, bal, 0.5)
    row = {"kind": "size", "method": "confusion", "learner": lr.name, "L": L, "T_c": tc,
           "peak_accuracy": float(acc_a[i]), "balanced_accuracy": float(bal[i]),
           "crossing": True}  # fmt: skip
    supervised._deviation(row, plan.classify.exact)
    return row, {"T": props.tolist(), "accuracy": acc, "balanced": balanced,
                 "majority": np.maximum(below, 1 - below).tolist()}


def _transfer(plan: PhasesPlan, i: int, name: str, L: int, nets: dict, streams: RandomStreams,
              ctx: RunContext, program, curves: dict) -> list[dict]:  # fmt: skip
    """The trained learners applied to another lattice's configurations where they can read
    them (a convolutional net on any lattice of one site per cell and the same dimension; a
    dense one on as many sites), else retrained there with the same recipe (the windows at the
    same fractions of its temperature range)."""
    c = plan.classify
    lo, hi = c.transfer_T[i]
    t0, t1 = plan.temperatures[0], plan.temperatures[-1]
    below = lo + (hi - lo) * (plan.ordered_below - t0) / (t1 - t0)
    above = lo + (hi - lo) * (plan.disordered_above - t0) / (t1 - t0)
    checker = program.checked.models[name]
    args = {SIZE: L} if SIZE in checker.param_names else {}
    ir = checker.instantiate(args)
    cm = program.compile_ir(ir)
    field = next(f.name for f in ir.fields if f.on == "sites")
    flip = any(s.name == "spin_flip" and s.active for s in ir.symmetries)
    temps = np.linspace(lo, hi, len(plan.temperatures)).round(12).tolist()
    conf = sample(cm, plan.sampler, plan.sampler_options, temps, field, flip, streams, ctx.device)
    sp = supervised.split(conf, c.test_fraction, below, above)
    exact = c.transfer_exact[i] if c.transfer_exact else None
    rows = []
    for lr in plan.learners:
        net = nets[lr.name]
        retrained = not networks.accepts(net, conf.shape, conf.basis)
        if retrained:
            net = supervised.train(lr, sp, plan.options, streams, ctx.device,
                                  members=c.ensemble)
        probs = supervised.probabilities(net, sp.test)
        means = supervised.chain_means(supervised.probabilities(net, sp.every), sp)
        p, err = analysis.curve(means)
        tc = analysis.crossing(sp.ts, p, err, c.crossing_fit)
        gen = np.random.default_rng(int(streams.host_generator().initial_seed()) % (1 << 63))
        reps = analysis.bootstrap_crossings(sp.ts, means, c.bootstrap, gen, c.crossing_fit)
        ok = reps[np.isfinite(reps)]
        row = {"kind": "transfer", "method": plan.method, "learner": lr.name, "L": L,
               "model": name, "T_c": tc, "retrained": retrained, "crossing": tc is not None,
               "T_c_err": float(np.std(ok, ddof=1)) if ok.size > 1 else None,
               "accuracy": supervised.accuracy(probs, sp)}  # fmt: skip
        supervised._deviation(row, exact)
        rows.append(row)
        curves.setdefault(f"{lr.name} on {name}", {})[str(L)] = {
            "T": sp.ts.tolist(), "P": p.tolist(), "exact": exact}
    return rows


def _extrapolations(plan: PhasesPlan, rows: list[dict], replicas: dict,
                    streams: RandomStreams) -> list[dict]:  # fmt: skip
    """The finite-size analysis per learner (``finite_size``): T_c(L) -> T_c with nu fixed
    (>= 3 sizes) and fitted (>= 4 sizes); the crossings of successive sizes' curves; the data
    collapse."""
    out = []
    how = plan.classify.finite_size
    if how in ("crossing", "collapse", "all"):
        out += _scaling_rows(plan, rows, replicas.get(CHAINS, {}), streams, how)
    if how not in ("extrapolate", "all"):
        return out
    for name in dict.fromkeys(r["learner"] for r in rows if r["kind"] == "size"):
        sized = [r for r in rows if r["kind"] == "size" and r["learner"] == name
                 and r.get("T_c") is not None]  # fmt: skip
        if len(sized) < 3:
            continue
        Ls = np.array([r["L"] for r in sized], dtype=float)
        tc = np.array([r["T_c"] for r in sized])
        err = np.array([r.get("T_c_err") or 0.0 for r in sized])
        reps = replicas.get(name, {})
        stack = None
        if all(r["L"] in reps and reps[r["L"]].size for r in sized):
            n = min(reps[r["L"]].size for r in sized)
            stack = np.stack([reps[r["L"]][:n] for r in sized], 1)
        fits = [("nu fixed", plan.classify.nu)] + ([("nu fitted", None)] if len(sized) >= 4
                                                   else [])  # fmt: skip
        for label, nu in fits:
            try:
                f = analysis.extrapolate(Ls, tc, err, nu, stack if nu is not None else None)
            except (RuntimeError, ValueError):
                continue  # a fit that does not converge: no row rather than a wrong one
            row = {"kind": "extrapolated", "method": plan.method, "learner": name, "L": None,
                   "T_c": f["T_c"], "T_c_err": f["T_c_err"], "nu": f["nu"],
                   "nu_err": f["nu_err"], "fit": label,
                   "sizes": [int(x) for x in Ls]}  # fmt: skip
            supervised._deviation(row, plan.classify.exact)
            out.append(row)
    return out


def _scaling_rows(plan: PhasesPlan, rows: list[dict], chains: dict, streams: RandomStreams,
                  how: str) -> list[dict]:  # fmt: skip
    """Rows kind = crossing (each pair of successive sizes, then the common crossing of all
    but the smallest size with >= 4 sizes: pair = "12-16-24-32", the estimate of T_c) and
    kind = collapse (T_c, nu of P(T, L) = f(L^(1/nu) (T - T_c) / T_c)), with errors from a
    bootstrap over the chains of every size; only learners with >= 2 (crossing) or >= 3
    (collapse) sizes."""
    c = plan.classify
    out = []
    gen = np.random.default_rng(int(streams.fork(SHARED_STREAM + 1).host_generator()
                                    .initial_seed()) % (1 << 63))  # fmt: skip
    ts = np.array(plan.temperatures)
    for name, per in chains.items():
        sizes = sorted(L for L in per if L is not None)
        if len(sizes) < 2:
            continue
        means = [per[L] for L in sizes]
        base = {"method": plan.method, "learner": name, "sizes": sizes}
        if how in ("crossing", "all"):
            tcs, reps = analysis.size_crossings(ts, means, c.bootstrap, gen)
            common = sizes[1:] if len(sizes) >= 4 else sizes
            for i, tc in enumerate(tcs):
                ok = reps[:, i][np.isfinite(reps[:, i])]
                pair = sizes[i:i + 2] if i < len(sizes) - 1 else common
                row = {"kind": "crossing", **base, "L": pair[0], "L2": pair[-1],
                       "pair": "-".join(map(str, pair)), "T_c": tc,
                       "T_c_err": float(np.std(ok, ddof=1)) if ok.size > 1 else None,
                       "crossing": tc is not None}  # fmt: skip
                supervised._deviation(row, c.exact)
                out.append(row)
        if how in ("collapse", "all") and len(sizes) >= 3:
            first = 1 if len(sizes) >= 4 else 0  # the smallest size: the largest corrections
            used, means = np.array(sizes[first:], dtype=float), means[first:]
            p = np.stack([analysis.curve(m)[0] for m in means])
            err = np.stack([analysis.curve(m)[1] for m in means])
            start = (float(c.exact or ts[len(ts) // 2]), c.nu)
            f = analysis.collapse(ts, used, p, err, start)
            if f is None:
                continue
            reps = analysis.bootstrap_collapse(ts, used, means, c.bootstrap, gen,
                                               (f["T_c"], f["nu"]))  # fmt: skip
            ok = reps[np.isfinite(reps)]
            row = {"kind": "collapse", **base, "sizes": [int(x) for x in used], "L": None,
                   "T_c": f["T_c"],
                   "T_c_err": float(np.std(ok, ddof=1)) if ok.size > 1 else None,
                   "nu": f["nu"], "chi2": f["chi2"]}  # fmt: skip
            supervised._deviation(row, c.exact)
            out.append(row)
    return out


def bind(catalogue: Catalogue) -> None:
    """Attach the classify task and the classifier learner."""
    catalogue.tasks.bind("classify", Task(run_classify))
    catalogue.learners.bind("classifier", networks.build, family="lattice")
    for name, method in (("supervised", _size_rows), ("pca", _pca), ("confusion", _confusion)):
        catalogue.analyses.bind(name, method, family="lattice")


__all__ = ["bind", "run_classify"]
