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

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.check.model import ModelChecker
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.models.lattice import LatticeModel
from physml_lang.compiler.models.observables import MeasuredExpressions
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import TaskIR

from . import outputs, samplers
from .observables import (
    FLUCTUATIONS,
    SERIES,
    base_series,
    estimate_fluctuation,
    estimate_mean,
)
from .statistics import between_chain_excess, excess_limit, split_rhat
from .tasks import RunState, Task, TaskCheck, option_values

THERMAL = ("T", "beta")


@dataclass
class RunResult:
    """What a run produced; ``summary`` is exactly what ``summary.json`` holds."""

    summary: dict
    out: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        return self.summary["rows"]


def _fail(code, msg, span=None, hint=None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- overrides


def resolve_overrides(run: RunState, checker: ModelChecker, sets: dict[str, Any], schema) -> None:
    """Apply ``--set NAME=VALUE``: a scan variable becomes a single point; otherwise a model
    parameter, a ``let`` value or a sampler option of that name is replaced."""
    params = set(checker.param_names)
    for name, value in sets.items():
        scan = next((s for s in run.scans if s.name == name), None)
        if scan is not None:
            scan.values = [value]
        elif name in params:
            run.model_args[name] = (value, None)
        elif name in run.lets or name in THERMAL:
            run.lets[name] = (value, None)
        elif name in schema.model_fields:
            run.sampler_options[name] = (value, None)
        else:
            known = params | set(run.lets) | set(schema.model_fields) | set(THERMAL)
            known |= {s.name for s in run.scans}
            _fail("P200", f"--set {name}: no model parameter, scan variable, let or sampler option "
                  f"is called '{name}'", None, did_you_mean(name, known) or "known names: "
                  + ", ".join(sorted(known)))  # fmt: skip


# ---------------------------------------------------------------- the task


@dataclass
class SamplePlan:
    """A validated sampling run: everything checked before the first sweep."""

    entry: Any
    options: Any
    tvar: str
    tvalues: list
    betas: list[float]
    others: list
    model_args: dict[str, Any]
    model_spans: dict[str, Any]
    measures: list


def plan_sample(run: RunState, checker: ModelChecker, sets: dict[str, Any] | None) -> SamplePlan:
    """Validate a sampling run (names, options, temperatures, scans, overrides)."""
    entry = CATALOGUE.samplers.get(run.sampler, "lattice")
    if entry is None:
        known = CATALOGUE.samplers.names("lattice")
        _fail("P200", f"unknown sampler '{run.sampler}'", run.sampler_span,
              did_you_mean(run.sampler, set(known)) or "samplers: " + ", ".join(known))  # fmt: skip
    resolve_overrides(run, checker, sets or {}, entry.schema)
    options = option_values(run.sampler_options, entry.schema, run.sampler_span,
                            f"sampler {run.sampler}")  # fmt: skip
    params = set(checker.param_names)
    thermal = [s for s in run.scans if s.name in THERMAL]
    others = [s for s in run.scans if s.name not in THERMAL]
    for s in others:
        if s.name not in params:
            _fail("P200", f"cannot scan '{s.name}': it is not T, beta or a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params | set(THERMAL)))  # fmt: skip
    if len(thermal) > 1:
        _fail("P201", "scan either T or beta, not both", thermal[1].span)
    for name in run.lets:
        if name not in THERMAL and name not in params:
            _fail("P200", f"'let {name}': not T, beta or a model parameter", run.lets[name][1],
                  did_you_mean(name, params | set(THERMAL)))  # fmt: skip
    if thermal:
        tvar, tvalues, tspan = thermal[0].name, thermal[0].values, thermal[0].span
    elif "T" in run.lets or "beta" in run.lets:
        tvar = "T" if "T" in run.lets else "beta"
        tvalues, tspan = [run.lets[tvar][0]], run.lets[tvar][1]
    else:
        _fail("P400", f"run {run.name} has no temperature", run.span,
              "add 'let T = 2.0' or 'scan T in linspace(1.5, 3.5, 21)'")  # fmt: skip
    for v in tvalues:
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            _fail("P400", f"{tvar} must be a positive number, got {v!r}", tspan,
                  "temperatures and inverse temperatures are > 0")  # fmt: skip
    betas = [1.0 / v if tvar == "T" else float(v) for v in tvalues]
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        if name in params:
            model_args.setdefault(name, v)
            model_spans.setdefault(name, s)
    return SamplePlan(entry, options, tvar, tvalues, betas, others, model_args, model_spans,
                      run.measures or [])  # fmt: skip


def check_sample(run: RunState, checker: ModelChecker, program) -> None:
    """Everything ``run`` would reject, without sampling: compiles the first point, builds the
    sampler (is it applicable?) and compiles every measured expression."""
    plan = plan_sample(run, checker, {})
    point, spans = dict(plan.model_args), dict(plan.model_spans)
    for s in plan.others:
        point[s.name], spans[s.name] = s.values[0], s.span
    cm = program.compile_ir(checker.instantiate(point, spans))
    beta = torch.full((1,), plan.betas[0], dtype=cm.dtype)
    options = plan.options.model_copy(update={"chains": 1})
    plan.entry.implementation(cm, options, beta, torch.Generator())
    _compile_measures(cm, plan.measures)


def _compile_measures(cm: LatticeModel,
                      measures) -> tuple[MeasuredExpressions, dict[str, Kernel]]:  # fmt: skip
    compiler = MeasuredExpressions(cm, cm.model.params, FLUCTUATIONS)
    kernels = {}
    for m in measures:
        if m.expr is not None:
            kernels[m.name] = compiler.compile(m.expr, m.name)
        elif CATALOGUE.observables.get(m.name, "lattice") is None:
            known = set(CATALOGUE.observables.names("lattice"))
            _fail("P200", f"unknown observable '{m.name}'", m.span,
                  did_you_mean(m.name, known) or "built-in observables: " + ", ".join(sorted(known)))  # fmt: skip
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


def _check_task(task: TaskIR, program) -> None:
    check_sample(RunState.of(task), program.checker_for(task), program)


def _run_task(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    return run_sample(RunState.of(task), program.checker_for(task), program, sets=sets,
                      device=device, seed=seed, out=out, progress=progress,
                      source=program.name)  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(_run_task))
    catalogue.tasks.bind_check("sample", TaskCheck(_check_task))
    samplers.bind(catalogue)
    for name, fluctuation in FLUCTUATIONS.items():
        catalogue.observables.bind(name, fluctuation, family="lattice")
    for name, series in SERIES.items():
        catalogue.observables.bind(name, series, family="lattice")
