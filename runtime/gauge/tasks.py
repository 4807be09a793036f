"""Gauge models in the language: the tasks, the built-in observables, and the binding of the
gauge capability's catalogue entries (physml_lang/catalogue/gauge.py).

- Model kind ``gauge`` (priority 10): any model with a field on ``links`` compiles to
  :class:`physml_lang.compiler.models.gauge.GaugeModel`.
- Names: ``e_mu`` (the unit vector of a bound direction) is known in gauge models.
- Task ``sample`` [gauge]: users write the same ``sampler hmc(...)`` as for spins; the run's
  model kind picks this entry (``runtime.tasks.resolve_task``), and the sampler's name is
  looked up among the gauge samplers of the catalogue, whose schemas hold the sampler's options
  and the run's controls (chains, burn_in, ...).
- Task ``gauge_regress`` (run word ``regress``): train gauge learners (``lcnn``, ``gauge_cnn``)
  to regress a gauge-invariant target from sampled configurations and evaluate them on larger
  lattices.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from tqdm import tqdm

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.catalogue.gauge import RegressOptions
from physml_lang.check.constants import evaluate
from physml_lang.check.model import validate_options
from physml_lang.compiler.lower.gauge import Env, Evaluator
from physml_lang.compiler.lower.links import (
    mean_plaquette,
    polyakov_loops,
    topological_charge,
    wilson_loops,
)
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.gauge import GaugeModel, span_text
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.task import CallValue, StatementIR, TaskIR, Word
from physml_lang.ir.walk import Walker

from .. import outputs
from ..sample_task import RunResult
from ..statistics import binning_analysis
from ..tasks import RunState, Task, TaskCheck, option_values, plain
from . import exact, lcnn, sampling
from .lcnn import train_regressor
from .local import LocalSampler
from .sampling import (
    LinkSampler,
    cold_start,
    heatbath_sweep,
    hot_start,
    link_colouring,
)

Tensor = torch.Tensor


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# hints name the samplers and learners in this order (the catalogue lists names sorted)


def sampler_hint() -> str:
    return "gauge samplers: " + ", ".join(CATALOGUE.samplers.names("gauge", shared=False))


def learner_hint() -> str:
    return "gauge learners: " + ", ".join(CATALOGUE.learners.names("gauge", shared=False))


# ---------------------------------------------------------------- observables

# functions of measured values: ops of the lowering's torch backend (its one function table)
FUNCS = ("abs", "sqrt", "exp", "log", "cos", "sin")


def builtin_observables() -> set[str]:
    """The gauge observables of the catalogue as the hints name them (aliases left out)."""
    reg = CATALOGUE.observables
    return {n for n in reg.names("gauge") if not reg.lookup(n, "gauge").doc.startswith("alias of")}


class Observable(Walker[Any]):
    """A measured expression compiled to f(U) -> (B,) float64."""

    what = "a gauge observable"

    def __init__(self, cm: GaugeModel, expr: E.Expr | None, name: str, span: Span | None):
        self.cm = cm
        self.name = name
        self.expr = expr if expr is not None else E.Name(name, span=span)
        self.uses_q = False
        self.check(self.expr)

    def check(self, e: E.Expr) -> None:
        """Everything __call__ would reject, on a random configuration."""
        U, matter = self.cm.random_configuration(1, torch.Generator().manual_seed(0))
        self(U, matter)

    def __call__(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        self._matter = matter or {}  # matter fields (B, L...) of models with a LocalSampler
        v = self.walk(self.expr, U)
        if not isinstance(v, Tensor):
            v = torch.full((U.shape[0],), float(v), dtype=torch.float64)
        return v.double()

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic(
            "P300", "this expression cannot be measured on a gauge model", e.span,
            "observables: " + ", ".join(sorted(builtin_observables() - {"wilson_loop"}))
            + ", wilson_loop(R, T), declared observables, sums, with + - * / ^ and abs, sqrt, "
            "exp, log"))

    def on_number(self, e: E.Num, U: Tensor) -> Any:
        return float(e.value)

    def on_name(self, e: E.Name, U: Tensor) -> Any:
        cm = self.cm
        n = e.id
        # built-in observables first (they shadow parameters); wilson_loop is measured by a call
        if n != "wilson_loop" and CATALOGUE.observables.get(n, "gauge") is not None:
            return CATALOGUE.observables.implementation(n, "gauge")(self, U, e)
        if n in cm.model.params and isinstance(cm.model.params[n], int | float):
            return float(cm.model.params[n])
        d = cm.model.definitions.get(n)
        if d is not None and not d.indices:
            t = Evaluator(cm, U, self._matter).evaluate(d.expr, Env()).t
            return t.real if isinstance(t, Tensor) and t.is_complex() else t
        known = builtin_observables() | set(cm.model.params) | {
            k for k, v in cm.model.definitions.items() if not v.indices}
        _fail("P200", f"unknown observable '{n}'", e.span,
              did_you_mean(n, known) or "gauge observables: " + ", ".join(sorted(known)))

    def on_call(self, e: E.Call, U: Tensor) -> Any:
        if e.func == "wilson_loop":
            return CATALOGUE.observables.implementation(e.func, "gauge")(self, U, e)
        if e.func in FUNCS and len(e.args) == 1:
            v = self.walk(e.args[0], U)
            return TORCH.ops[e.func](torch.as_tensor(v, dtype=torch.float64))
        raise self.not_here(e)

    def on_unary(self, e: E.Unary, U: Tensor) -> Any:
        if e.op != "-":
            raise self.not_here(e)
        return -self.walk(e.operand, U)

    def on_binary(self, e: E.Binary, U: Tensor) -> Any:
        if e.op not in ("+", "-", "*", "/", "^"):
            raise self.not_here(e)
        a, b = self.walk(e.left, U), self.walk(e.right, U)
        if e.op == "/" and not isinstance(b, Tensor) and b == 0:
            _fail("P400", "division by zero", e.right.span)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a / b, "^": lambda: a ** b}[e.op]()

    def on_reduce(self, e: E.Reduce, U: Tensor) -> Any:
        t = Evaluator(self.cm, U, self._matter).evaluate(e, Env()).t
        return t.real if isinstance(t, Tensor) and t.is_complex() else t


# The gauge observable entries' implementations: (observable, U, the name or call) -> (B,)
# values or a number; the observable carries the model and the matter fields of the chains.


def measure_plaquette(obs: Observable, U: Tensor, e: E.Expr) -> Tensor:
    return mean_plaquette(U, obs.cm.group)


def measure_action(obs: Observable, U: Tensor, e: E.Expr) -> Tensor:
    return obs.cm.action(U, obs._matter)


def measure_topological_charge(obs: Observable, U: Tensor, e: E.Expr) -> Tensor:
    if obs.cm.group.name != "u1" or obs.cm.d != 2:
        _fail("P400", "topological_charge is defined for 2D U(1) models", e.span)
    obs.uses_q = True  # the run reports the exact <Q^2> next to it
    return topological_charge(U)


def measure_polyakov_loop(obs: Observable, U: Tensor, e: E.Expr) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).real


def measure_abs_polyakov_loop(obs: Observable, U: Tensor, e: E.Expr) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).abs()


def measure_sites(obs: Observable, U: Tensor, e: E.Expr) -> float:
    return float(obs.cm.n_sites)


def measure_wilson_loop(obs: Observable, U: Tensor, e: E.Call) -> Tensor:
    """Measured by a call only (``Observable.on_call``): a bare ``wilson_loop`` is unknown."""
    if len(e.args) != 2 or e.kwargs:
        _fail("P302", "wilson_loop takes the loop size: wilson_loop(R, T)", e.span)
    R, T = (loop_size(obs.cm, a) for a in e.args)
    return wilson_loops(U, obs.cm.group, R, T).flatten(1).mean(1)


def loop_size(cm: GaugeModel, a: E.Expr | Any, span: Span | None = None) -> int:
    """A Wilson-loop extent: an integer 1 .. min(L) (an expression or a value)."""
    v = evaluate(a, cm.model.params, "a loop size") if isinstance(a, E.Expr) else a
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= min(cm.shape):
        _fail("P400", f"a loop size is an integer 1 .. {min(cm.shape)}",
              a.span if isinstance(a, E.Expr) else span)
    return v


# ---------------------------------------------------------------- the sample task


def _compile_point(program, checker, point: dict, spans: dict) -> GaugeModel:
    cm = program.compile_ir(checker.instantiate(point, spans))
    assert isinstance(cm, GaugeModel)
    return cm


def _plan(run: RunState, checker, sets: dict | None):
    """Validate a gauge sampling run; returns (options of the sampler entry's schema,
    model_args, model_spans)."""
    entry = CATALOGUE.samplers.get(run.sampler, "gauge")
    if entry is None:
        _fail("P200", f"unknown gauge sampler '{run.sampler}'", run.sampler_span,
              did_you_mean(run.sampler, set(CATALOGUE.samplers.names("gauge"))) or sampler_hint())
    schema = entry.schema
    params = set(checker.param_names)
    for name, value in (sets or {}).items():
        scan = next((s for s in run.scans if s.name == name), None)
        if scan is not None:
            scan.values = [value]
        elif name in params:
            run.model_args[name] = (value, None)
        elif name in schema.model_fields:
            run.sampler_options[name] = (value, None)
        else:
            known = params | set(schema.model_fields) | {s.name for s in run.scans}
            _fail("P200", f"--set {name}: no model parameter, scan variable or sampler option "
                  f"is called '{name}'", None, did_you_mean(name, known) or "known names: "
                  + ", ".join(sorted(known)))
    options = option_values(run.sampler_options, schema, run.sampler_span,
                            f"sampler {run.sampler}")
    for s in run.scans:
        if s.name not in params:
            _fail("P200", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params) or
                  "gauge models scan their parameters, e.g. scan beta in [1.0, 2.0]")
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    scale = 1.0  # weight exp(-scale * S): 'let T = ...' (not a model parameter) gives 1 / T
    for name, (v, s) in run.lets.items():
        if name in params:
            model_args.setdefault(name, v)
            model_spans.setdefault(name, s)
        elif name in ("T", "beta"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                _fail("P400", f"{name} must be a positive number, got {v!r}", s)
            scale = 1.0 / v if name == "T" else float(v)
        else:
            _fail("P200", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params | {"T"}))
    run.action_scale = scale
    return options, model_args, model_spans


def _sampler_for(cm: GaugeModel, run: RunState, options: BaseModel):
    scale = getattr(run, "action_scale", 1.0)
    if not cm.is_wilson:
        # matter fields or a non-Wilson local action: coloured local updates of every variable
        # from the declared action's densities (runtime/gauge/local.py)
        if run.sampler == "hmc":
            _fail("P502", f"hmc needs a Wilson action; model {cm.ir.name}'s action is "
                  + ("coupled to matter" if cm.matter_domains else "not of the Wilson form"),
                  run.sampler_span, "use metropolis (or heatbath for z2 links and spins)")
        try:
            if run.sampler == "heatbath":
                return LocalSampler(cm, "heatbath", scale)
            return LocalSampler(cm, "metropolis", scale, options.step, options.hits)
        except ValueError as exc:
            _fail("P502", f"sampler {run.sampler}: {exc}", run.sampler_span,
                  "use metropolis, and even lattice extents" if run.sampler == "heatbath"
                  else "use even lattice extents")
    if run.sampler == "hmc" and cm.group.name not in ("u1", "su2"):
        _fail("P502", f"hmc needs a continuous group; {cm.group.name} links are discrete",
              run.sampler_span, "use heatbath or metropolis")
    if run.sampler in ("metropolis", "heatbath"):
        try:
            link_colouring(cm.shape)
        except ValueError as exc:
            _fail("P502", f"sampler {run.sampler}: {exc}", run.sampler_span,
                  "use even lattice extents, or hmc")
    factory: LinkSampler = CATALOGUE.samplers.implementation(run.sampler, "gauge")
    own = {k: getattr(options, k) for k in factory.options.model_fields}  # less the controls
    beta = float(cm.wilson_beta) * scale
    return factory(cm.group, beta, factory.options(**own))


def _points(run: RunState, model_args: dict, model_spans: dict):
    combos = list(itertools.product(*[s.values for s in run.scans])) or [()]
    for combo in combos:
        point, spans = dict(model_args), dict(model_spans)
        for s, v in zip(run.scans, combo):
            point[s.name], spans[s.name] = v, s.span
        yield combo, point, spans


def _measures(cm: GaugeModel, run: RunState) -> list[Observable]:
    ms = run.measures or []
    if not ms:
        return [Observable(cm, None, "plaquette", run.span)]
    return [Observable(cm, m.expr, m.name, m.span) for m in ms]


def check_gauge_sample(task: TaskIR, program) -> None:
    run = RunState.of(task)
    checker = program.checker_for(task)
    options, model_args, model_spans = _plan(run, checker, {})
    for _, point, spans in _points(run, model_args, model_spans):
        cm = _compile_point(program, checker, point, spans)
        _sampler_for(cm, run, options)
        _measures(cm, run)
        break


def _references(cm: GaugeModel, obs: list[Observable], scale: float) -> dict[str, float]:
    """Exact 2D torus values of the plaquette (and <Q^2> for U(1)) where available."""
    if cm.d != 2 or not cm.is_wilson:
        return {}
    beta, (L1, L2) = float(cm.wilson_beta) * scale, cm.shape
    ref = {}
    f = {"u1": exact.u1_plaquette_torus, "z2": exact.z2_plaquette_torus,
         "su2": exact.su2_plaquette_torus}[cm.group.name]
    ref["plaquette_exact"] = f(beta, L1, L2)
    if cm.group.name == "u1" and any(o.uses_q for o in obs):
        ref["Q2_exact"] = exact.u1_topological_susceptibility_torus(beta, L1, L2)
    return ref


def run_gauge_sample(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    run = RunState.of(task)
    checker = program.checker_for(task)
    options, model_args, model_spans = _plan(run, checker, sets)
    n_meas = options.trajectories if run.sampler == "hmc" else options.sweeps
    n_meas = max(1, n_meas // options.thin)
    summary: dict[str, Any] = {
        "run": run.name, "source": program.name, "model": checker.name, "params": {},
        "device": str(device), "seed": seed,
        "sampler": {"name": run.sampler, **options.model_dump()},
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    }
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    points = list(_points(run, model_args, model_spans))
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(points) * (options.burn_in + n_meas * options.thin), disable=not show,
               desc=run.name, unit="update", leave=False)
    started = time.time()
    files: list[Path] = []
    last_series: dict[str, np.ndarray] = {}
    try:
        for combo, point, spans in points:
            cm = _compile_point(program, checker, point, spans)
            summary["params"] = dict(cm.model.params)
            sampler = _sampler_for(cm, run, options)
            obs = _measures(cm, run)
            C = options.chains
            dt = torch.complex128 if cm.group.name == "su2" else torch.float64
            U = (hot_start(cm.group, C, cm.shape, gen, device=device, dtype=dt)
                 if options.start == "hot" else cold_start(cm.group, C, cm.shape, device, dt))
            if isinstance(sampler, LocalSampler):
                sampler.start(U, options.start == "hot", gen)
            series = {o.name: torch.empty(n_meas, C, dtype=torch.float64) for o in obs}
            acc = torch.zeros(C, dtype=torch.float64)
            row: dict[str, Any] = {s.name: v for s, v in zip(run.scans, combo)}
            measured = 0
            try:
                for _ in range(options.burn_in):
                    U = sampler.step(U, gen)
                    bar.update(1)
                for k in range(n_meas):
                    for _ in range(options.thin):
                        U = sampler.step(U, gen)
                        acc += sampler.acceptance.cpu()
                    bar.update(options.thin)
                    for o in obs:
                        series[o.name][k] = o(U, getattr(sampler, "matter", None)).cpu()
                    measured = k + 1
                    if k % 64 == 63 or k == n_meas - 1:
                        for o in obs:
                            if not bool(torch.isfinite(series[o.name][:k + 1]).all()):
                                _fail("P700", f"observable {o.name} became non-finite in run "
                                      f"{run.name}", run.span, "check beta and step_size")
            except KeyboardInterrupt:
                if measured >= 2:
                    summary["rows"].append(_row(row, obs, series, measured, acc, options, cm,
                                                run.action_scale))
                summary["interrupted"] = True
                if out is not None:
                    outputs.write_summary(out, summary)
                raise
            summary["rows"].append(_row(row, obs, series, n_meas, acc, options, cm,
                                     run.action_scale))
            last_series = {k: v.numpy() for k, v in series.items()}
            summary["elapsed_s"] = round(time.time() - started, 3)
            if out is not None:
                outputs.write_summary(out, summary)
    finally:
        bar.close()
    summary["complete"] = True
    summary["elapsed_s"] = round(time.time() - started, 3)
    if out is not None:
        outputs.write_summary(out, summary)
        names = [m.name for m in run.measures] or ["plaquette"]
        if len(summary["rows"]) > 1 and run.scans:
            f = outputs.plot_rows(out, summary["rows"], run.scans[0].name, names, None,
                                  "plot.png", f"{summary['model']} ({run.name})")
            if f:
                files.append(f)
        files.append(_history_plot(out, last_series, run.name))
    return RunResult(summary, out, files)


def _row(row, obs, series, n, acc, options, cm, scale: float = 1.0) -> dict:
    row = dict(row)
    for o in obs:
        row[o.name] = binning_analysis(series[o.name][:n].numpy()).as_dict()
    row["acceptance"] = round(float(acc.mean()) / max(1, n * options.thin), 6)
    row.update(_references(cm, obs, scale))
    return row


def _history_plot(out: Path, series: dict[str, np.ndarray], title: str) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(series))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], series.items()):
        ax.plot(s[:, 0], lw=0.6)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("measurement (chain 0)")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = out / "history.png"
    outputs._atomic_write(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- dispatch of `sampler`


# ---------------------------------------------------------------- the regress task


TARGETS = {"wilson_loop": "wilson_loop(R, T): lattice mean of the R x T Wilson loops",
           "plaquette": "mean Re tr P / N",
           "topological_charge_density": "2D U(1): Q / V"}


class RegressStatement:
    """``regress f, g, target = wilson_loop(2, 2), test_L = [16, 32], ...`` read from the IR."""

    def __init__(self, stmt: StatementIR):
        self.span = stmt.span
        self.learners: list[tuple[str, Span | None]] = []
        self.options: dict[str, tuple[Any, Span | None]] = {}
        self.target: Any = None
        self.target_span: Span | None = None
        for item in stmt.items:
            if item.kind == "value" and isinstance(item.value, Word):
                self.learners.append((item.value.name, item.span))
            elif item.kind == "named" and item.name == "target":
                self.target, self.target_span = item.value, item.value_span
            elif item.kind == "named":
                if isinstance(item.value, Word | CallValue):
                    _fail("P300", f"option {item.name} takes a value", item.span)
                self.options[item.name] = (plain(item.value), item.span)
            else:
                _fail("P100", "regress takes learner names and options", item.span,
                      "regress f, g, target = wilson_loop(2, 2), test_L = [16, 32]")
        if not self.learners:
            _fail("P400", "regress needs at least one learner", stmt.span)
        if self.target is None:
            _fail("P400", "regress needs a target", stmt.span, "target = wilson_loop(2, 2)")


def _target_fn(cm: GaugeModel, target: Any, span: Span | None):
    name = target.name if isinstance(target, Word | CallValue) else None
    if isinstance(target, Word) and name == "plaquette":
        return lambda U: mean_plaquette(U, cm.group)
    if isinstance(target, Word) and name == "topological_charge_density":
        if cm.group.name != "u1" or cm.d != 2:
            _fail("P400", "topological_charge_density is defined for 2D U(1)", span)
        return lambda U: topological_charge(U) / math.prod(U.shape[1:3])
    if isinstance(target, CallValue) and name == "wilson_loop":
        if len(target.args) != 2 or target.kwargs:
            _fail("P302", "wilson_loop takes the loop size: wilson_loop(R, T)", span)
        R, T = (loop_size(cm, a, span) for a in target.args)
        return lambda U: wilson_loops(U, cm.group, R, T).flatten(1).mean(1)
    _fail("P200", "unknown regression target", span, "targets: " + "; ".join(TARGETS.values()))


def _learners(stmt: RegressStatement, program, cm: GaugeModel) -> list[tuple[str, str, BaseModel]]:
    decls = program.learners
    out = []
    for name, span in stmt.learners:
        ld = decls.get(name)
        if ld is None:
            _fail("P200", f"unknown learner '{name}'", span,
                  did_you_mean(name, set(decls)) or "declare it: learner f = lcnn(channels = [4, 8])"
                  " respecting gauge, translation")
        call = ld.call
        func = call.name
        entry = CATALOGUE.learners.get(func, "gauge")
        if entry is None:
            _fail("P200", f"unknown gauge learner '{func}'", call.name_span,
                  did_you_mean(func, set(CATALOGUE.learners.names("gauge"))) or learner_hint())
        if call.args:
            _fail("P302", "learner options are given by name", call.span)
        opts = validate_options(entry.schema, {k.name: plain(k.value) for k in call.kwargs},
                                {k.name: k.span for k in call.kwargs}, call.span,
                                f"learner {func}")
        respects = set(entry.facts.symmetries)
        for sym, sspan in zip(ld.respecting, ld.respecting_spans):
            if sym not in SYMMETRIES:
                _fail("P200", f"unknown symmetry '{sym}'", sspan,
                      did_you_mean(sym, _respectable()))
            if sym not in respects:
                _fail("P501", f"learner {name} = {func}(...) cannot respect {sym}", sspan,
                      f"{func} respects: {', '.join(sorted(respects))}"
                      + ("; use lcnn for gauge equivariance" if sym == "gauge" else ""))
            if sym == "gauge" and not any(s.name == "gauge" and s.active
                                          for s in cm.model.symmetries):
                _fail("P500", f"learner {name} respects gauge, but model {cm.ir.name} does not "
                      "declare 'symmetry gauge'", sspan, "add 'symmetry gauge' to the model")
        if func == "gauge_cnn" and cm.d > 3:
            _fail("P400", "gauge_cnn works in d = 1..3", call.name_span)
        out.append((name, func, opts))
    return out


def _respectable() -> set[str]:
    """The symmetries some gauge learner can respect."""
    reg = CATALOGUE.learners
    return set().union(*(reg.lookup(n, "gauge").facts.symmetries for n in reg.names("gauge")))


def _regress_plan(task: TaskIR, program, sets):
    run = RunState.of(task)
    stmt = RegressStatement(task.statement("regress"))
    checker = program.checker_for(task)
    params = set(checker.param_names)
    ropts = dict(stmt.options)
    for name, value in (sets or {}).items():
        scan = next((s for s in run.scans if s.name == name), None)
        if scan is not None:
            scan.values = [value]
        elif name in params:
            run.model_args[name] = (value, None)
        elif name in RegressOptions.model_fields:
            ropts[name] = (value, None)
        else:
            _fail("P200", f"--set {name}: unknown name", None,
                  did_you_mean(name, params | set(RegressOptions.model_fields)))
    options = option_values(ropts, RegressOptions, stmt.span, "regress")
    for s in run.scans:
        if s.name not in params:
            _fail("P200", f"cannot scan '{s.name}': not a parameter of {checker.name}",
                  s.span)
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        model_args.setdefault(name, v)
        model_spans.setdefault(name, s)
    cms = []
    for _, point, spans in _points(run, model_args, model_spans):
        cm = _compile_point(program, checker, point, spans)
        if not cm.is_wilson:
            _fail("P502", "regress samples its data with heat-bath: the model needs a Wilson "
                  "action", stmt.span)
        link_colouring(cm.shape)
        for L in options.test_L:
            if L < 2 or L % 2:
                _fail("P400", f"test lattice sizes must be even, got {L}",
                      ropts.get("test_L", (None, None))[1])
        cms.append(cm)
    target = _target_fn(cms[0], stmt.target, stmt.target_span)
    learners = _learners(stmt, program, cms[0])
    return run, stmt, options, cms, target, learners


def check_regress(run: TaskIR, program) -> None:
    _regress_plan(run, program, {})


def _sample(cm: GaugeModel, n: int, shape: tuple[int, ...], sweeps: int, gen, device):
    dt = torch.complex128 if cm.group.name == "su2" else torch.float64
    U = hot_start(cm.group, n, shape, gen, device=device, dtype=dt)
    for _ in range(sweeps):
        U = heatbath_sweep(U, cm.group, float(cm.wilson_beta), gen)
    return U


def run_regress(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    run, stmt, options, cms, target, learners = _regress_plan(task, program, sets)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    started = time.time()
    per = max(1, options.samples // len(cms))
    per_test = max(1, options.test_samples // len(cms))
    L_train = cms[0].shape
    d = len(L_train)

    def data(shape, n):
        U = torch.cat([_sample(cm, n, shape, options.sweeps, gen, device) for cm in cms])
        return U, target(U).double()[:, None]

    U_tr, y_tr = data(L_train, per)
    sizes = [L_train[0]] + [L for L in options.test_L if L != L_train[0]]
    tests = {L: data((L,) * d, per_test) for L in sizes}
    summary: dict[str, Any] = {
        "run": run.name, "source": program.name, "model": program.checker_for(task).name,
        "params": dict(cms[0].model.params), "device": str(device), "seed": seed,
        # the data sampler (the command line's report reads summary["sampler"]["name"])
        "sampler": {"name": "heatbath", "sweeps": options.sweeps, "start": "hot"},
        "target": span_text(stmt.target_span), "options": options.model_dump(),
        "scan": {s.name: s.values for s in run.scans}, "train_L": list(L_train),
        "rows": [], "complete": False,
    }
    for name, kind, opts in learners:
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # default initialisers of torch.nn layers (baseline CNN)
            build = CATALOGUE.learners.implementation(kind, "gauge")
            model = build(cms[0].group, d, opts, generator=g).double().to(device)
        hist = train_regressor(model, U_tr, y_tr.to(device), gen if device.type == "cpu" else g,
                               options.epochs, options.batch_size, options.lr)
        with torch.no_grad():
            for L, (U, y) in tests.items():
                err = (model(U).double() - y).flatten().cpu().numpy()
                std = float(y.std())
                se = err**2
                rel = float(math.sqrt(se.mean()) / std) if std > 0 else float("nan")
                summary["rows"].append({
                    "learner": name, "kind": kind, "L": L,
                    "mse": {"mean": float(se.mean()),
                            "stderr": float(se.std(ddof=1) / math.sqrt(len(se)))},
                    "relative_rmse": rel, "target_std": std, "train_loss": hist[-1],
                })
        if out is not None:
            outputs.write_summary(out, summary)
    summary["complete"] = True
    summary["elapsed_s"] = round(time.time() - started, 3)
    files: list[Path] = []
    if out is not None:
        outputs.write_summary(out, summary)
        files += _regress_outputs(out, summary)
    return RunResult(summary, out, files)


def _regress_outputs(out: Path, summary: dict) -> list[Path]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    names = list(dict.fromkeys(r["learner"] for r in rows))
    sizes = sorted({r["L"] for r in rows})
    lines = [f"target: {summary['target']}, trained on L = {summary['train_L'][0]}",
             "relative RMSE (RMSE / std of the target on the test set)", "",
             "| learner | " + " | ".join(f"L = {L}" for L in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for n in names:
        rs = {r["L"]: r for r in rows if r["learner"] == n}
        lines.append(f"| {n} ({rs[sizes[0]]['kind']}) | " +
                     " | ".join(f"{rs[L]['relative_rmse']:.3f}" for L in sizes) + " |")
        ax.plot(sizes, [rs[L]["relative_rmse"] for L in sizes], "o-",
                label=f"{n} ({rs[sizes[0]]['kind']})")
    ax.axvline(summary["train_L"][0], color="gray", ls="--", lw=1)
    ax.set_xlabel("L (test lattice)")
    ax.set_ylabel("relative RMSE")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"{summary['target']}: trained on L = {summary['train_L'][0]}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    outputs._atomic_write(out / "generalisation.png", buf.getvalue())
    outputs._atomic_write(out / "table.md", ("\n".join(lines) + "\n").encode())
    return [out / "generalisation.png", out / "table.md"]


__all__ = ["check_gauge_sample", "run_gauge_sample", "check_regress", "run_regress",
           "Observable", "builtin_observables", "bind"]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(run_gauge_sample), family="gauge")
    catalogue.tasks.bind_check("sample", TaskCheck(check_gauge_sample), family="gauge")
    catalogue.tasks.bind("gauge_regress", Task(run_regress))
    catalogue.tasks.bind_check("gauge_regress", TaskCheck(check_regress))
    sampling.bind(catalogue)
    lcnn.bind(catalogue)
    measures = {"plaquette": measure_plaquette, "action": measure_action,
                "energy": measure_action, "topological_charge": measure_topological_charge,
                "polyakov_loop": measure_polyakov_loop,
                "abs_polyakov_loop": measure_abs_polyakov_loop, "sites": measure_sites,
                "wilson_loop": measure_wilson_loop}
    for name, measure in measures.items():
        catalogue.observables.bind(name, measure, family="gauge")
