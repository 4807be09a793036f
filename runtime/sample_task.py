"""The ``sample`` task: Markov-chain sampling over a scan, measuring observables with errors.

A scan over temperature (T or beta) runs as one batch: chains x temperatures, each chain with
its own beta. A scan over model parameters re-instantiates and re-compiles the model per value.
Rows are written after every compiled point, so an interrupt or a failure loses nothing that
was already measured.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from physml_lang.catalogue import Catalogue
from physml_lang.check.model import ModelChecker
from physml_lang.compiler.derive.measures import MeasuredExpressions
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.lattice import LatticeModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR

from . import outputs, samplers
from .observables import (
    FLUCTUATIONS,
    SERIES,
    base_series,
    estimate_fluctuation,
    estimate_mean,
)
from .plans.sample import measured_expressions, plan_sample
from .statistics import between_chain_excess, excess_limit, split_rhat
from .tasks import RunState, Task


@dataclass
class RunResult:
    """What a run produced; ``summary`` is exactly what ``summary.json`` holds."""

    summary: dict
    out: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        return self.summary["rows"]


def _compile_measures(cm: LatticeModel,
                      measures) -> tuple[MeasuredExpressions, dict[str, Kernel]]:  # fmt: skip
    """The measured expressions of a run lowered to torch kernels (names checked by the plan)."""
    compiler = measured_expressions(cm.derivation, cm.lattice_sum_module, measures)
    kernels = {m.name: compiler.compile(m.expr, m.name, TORCH) for m in measures
               if m.expr is not None}  # fmt: skip
    return compiler, kernels


def run_sample(
    run: RunState,
    checker: ModelChecker,
    program,
    *,
    sets: dict[str, Any] | None = None,
    device: torch.device,
    seed: int = 0,
    out: Path | None = None,
    progress: bool | None = None,
    source: str = "",
) -> RunResult:
    plan = plan_sample(run, checker, sets)
    entry, options, tvar, tvalues = plan.entry, plan.options, plan.tvar, plan.tvalues
    betas, others = plan.betas, plan.others
    model_args, model_spans = plan.model_args, plan.model_spans
    measures = run.measures or []
    summary: dict[str, Any] = {
        "run": run.name,
        "source": source,
        "model": checker.name,
        "params": {},
        "device": str(device),
        "seed": seed,
        "sampler": {"name": run.sampler, **options.model_dump()},
        "scan": {s.name: s.values for s in run.scans},
        "rows": [],
        "complete": False,
    }
    files: list[Path] = []
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    combos = list(itertools.product(*[s.values for s in others])) or [()]
    n_meas = max(1, options.sweeps // options.thin)
    total = len(combos) * (options.burn_in + n_meas * options.thin)
    show = sys.stderr.isatty() if progress is None else progress
    threads = torch.get_num_threads()
    if device.type == "cpu" and _work_per_sweep(checker, model_args, options, len(betas)) < 2**18:
        # small lattices: the thread pool's overhead exceeds its gain
        torch.set_num_threads(1)
    bar = tqdm(total=total, disable=not show, desc=run.name, unit="sweep", leave=False)
    started = time.time()
    try:
        for combo in combos:
            point = dict(model_args)
            spans = dict(model_spans)
            for s, v in zip(others, combo):
                point[s.name], spans[s.name] = v, s.span
            ir = checker.instantiate(point, spans)
            summary["params"] = dict(ir.values)
            cm = program.compile_ir(ir).to(device)
            rows = _sample_point(cm, run, entry, options, betas, tvar, tvalues, measures,
                                 generator, device, bar, summary, out)  # fmt: skip
            for r in rows:
                for s, v in zip(others, combo):
                    r[s.name] = v
                summary["rows"].append(r)
                _warn_unmixed(run, r, tvar, others, summary, options.chains)
            summary["elapsed_s"] = round(time.time() - started, 3)
            if out is not None:
                outputs.write_summary(out, summary)
    finally:
        bar.close()
        torch.set_num_threads(threads)
    summary["complete"] = True
    summary["elapsed_s"] = round(time.time() - started, 3)
    if out is not None:
        outputs.write_summary(out, summary)
        files += _plots(out, run, summary, measures, tvar, others)
    return RunResult(summary, out, files)


def _warn_unmixed(run: RunState, row: dict, tvar: str, others, summary: dict, chains: int) -> None:
    """Warn when chains sampled different states: the spread of their mean energies exceeds what
    the binning error admits (a metastable domain wall, or far too short a run)."""
    ratio = row.get("chain_excess", float("nan"))
    if chains < 4 or not ratio > excess_limit(chains):
        return
    at = ", ".join(f"{k} = {row[k]:g}" if isinstance(row[k], float) else f"{k} = {row[k]}"
                   for k in [tvar, *(s.name for s in others)] if k in row)  # fmt: skip
    d = Diagnostic("P702", f"chains disagree at {at}: their mean energies scatter {ratio:.1f}x "
                   f"more than binning the time series admits (split R-hat {row['r_hat']:.3f}); "
                   "the error bars there come from the spread between chains", run.span,
                   "the chains are trapped in different states (metastable domains) or the run "
                   "is shorter than the autocorrelation time: add sweeps or burn_in, "
                   "start = ordered at low T, or use wolff", severity="warning")  # fmt: skip
    summary.setdefault("warnings", []).append(d.as_dict())


def _work_per_sweep(checker: ModelChecker, model_args: dict, options, n_temperatures: int) -> int:
    """Sites x chains updated per sweep, estimated from the default instantiation."""
    try:
        ir = checker.instantiate(model_args)
    except PhysmlError:
        return 0
    sites = ir.lattice.n_sites if ir.lattice is not None else 1
    return sites * options.chains * n_temperatures


def _sample_point(cm, run, entry, options, betas, tvar, tvalues, measures, generator, device,
                  bar, summary, out) -> list[dict]:  # fmt: skip
    """Sample every temperature of one compiled model as one batch; rows per temperature."""
    nT, C = len(betas), options.chains
    beta = torch.tensor(betas, dtype=cm.dtype, device=device).repeat_interleave(C)
    sampler = entry.implementation(cm, options, beta, generator)
    compiler, kernels = _compile_measures(cm, measures)
    n_meas = max(1, options.sweeps // options.thin)
    E = torch.empty(n_meas, nT * C, dtype=torch.float64, device=device)
    M = torch.empty_like(E)
    series = {name: torch.empty_like(E) for name in kernels}
    state = sampler.initial_state()
    measured = 0
    try:
        sampler.track_acceptance = False
        for _ in range(options.burn_in):
            state = sampler.sweep(state)
            bar.update(1)
        sampler.track_acceptance = True
        for k in range(n_meas):
            for _ in range(options.thin):
                state = sampler.sweep(state)
            bar.update(options.thin)
            e = cm.energy(state)
            m = cm.magnetization(state)
            E[k], M[k] = e, m
            if kernels:
                env = compiler.env(state, e, m, beta)
                for name, kern in kernels.items():
                    series[name][k] = torch.as_tensor(kern(env), dtype=torch.float64)
            measured = k + 1
            if k % 64 == 63 or k == n_meas - 1:
                if not bool(torch.isfinite(E[: k + 1]).all()):
                    bad = int((~torch.isfinite(E[: k + 1])).nonzero()[0, 0])
                    raise PhysmlError(Diagnostic(
                        "P700", f"the energy became non-finite at measurement {bad} of run "
                        f"{run.name}", run.span, "check couplings and temperatures for "
                        "overflow; results measured before this point were kept"))  # fmt: skip
    except KeyboardInterrupt:
        if measured >= 2:
            summary["rows"] += _rows(cm, E[:measured], M[:measured],
                                     {n: s[:measured] for n, s in series.items()}, betas, tvar,
                                     tvalues, measures, sampler, nT, C)  # fmt: skip
        summary["interrupted"] = True
        if out is not None:
            outputs.write_summary(out, summary)
        raise
    return _rows(cm, E, M, series, betas, tvar, tvalues, measures, sampler, nT, C)


def _rows(cm, E, M, series, betas, tvar, tvalues, measures, sampler, nT, C) -> list[dict]:
    N = cm.lattice.n_sites
    E, M = E.cpu().numpy(), M.cpu().numpy()
    series = {n: s.cpu().numpy() for n, s in series.items()}
    rows = []
    for t in range(nT):
        sl = slice(t * C, (t + 1) * C)
        base = base_series(E[:, sl], M[:, sl])
        row: dict[str, Any] = {tvar: tvalues[t]}
        for m in measures:
            if m.name in series:
                row[m.name] = estimate_mean(series[m.name][:, sl]).as_dict()
            elif m.name in FLUCTUATIONS:
                row[m.name] = estimate_fluctuation(m.name, base, betas[t], N).as_dict()
            elif m.name == "energy":
                row[m.name] = estimate_mean(base["E"]).as_dict()
            elif m.name == "magnetization":
                row[m.name] = estimate_mean(base["M"]).as_dict()
        if not measures:
            row["energy"] = estimate_mean(base["E"]).as_dict()
        row["acceptance"] = round(float(sampler.acceptance()[sl].mean()), 6)
        row["r_hat"] = round(split_rhat(E[:, sl]), 6)
        row["chain_excess"] = round(between_chain_excess(E[:, sl]), 6)
        rows.append(row)
    return rows


def _plots(out: Path, run: RunState, summary: dict, measures, tvar: str, others) -> list[Path]:
    files = []
    rows = summary["rows"]
    title = f"{summary['model']} ({run.name})"
    if run.plots:
        for i, p in enumerate(run.plots):
            x = p.x or (
                tvar if len({r[tvar] for r in rows}) > 1 else (others[0].name if others else tvar)
            )
            names = list(p.observables) or [m.name for m in measures]
            f = outputs.plot_rows(out, rows, x, names, p.marks, f"plot{i if i else ''}.png", title,
                                  p.logx, p.logy)  # fmt: skip
            if f:
                files.append(f)
    else:
        x = tvar if len({r[tvar] for r in rows}) > 1 else (others[0].name if others else tvar)
        f = outputs.plot_rows(out, rows, x, [m.name for m in measures], None, "plot.png", title)
        if f:
            files.append(f)
    return files


__all__ = ["run_sample", "RunResult", "Span", "np"]


def _run_task(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    return run_sample(RunState.of(task), program.checker_for(task), program, sets=sets,
                      device=device, seed=seed, out=out, progress=progress,
                      source=program.name)  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(_run_task))
    samplers.bind(catalogue)
    for name, fluctuation in FLUCTUATIONS.items():
        catalogue.observables.bind(name, fluctuation, family="lattice")
    for name, series in SERIES.items():
        catalogue.observables.bind(name, series, family="lattice")
