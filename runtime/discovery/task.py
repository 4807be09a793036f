"""The discover task, run through the shared driver (``runtime/plans/discovery.py`` plans it).

The data come from a table of the model (``data = NAME``) or from trajectories a phase-space
model simulates with physml's own integrators at every scan point (each scan point draws from
its own random stream). Then the method runs once over all the data:

- ``power_law`` / ``monomial``: one row, the law with its exponents (stderr, confidence
  interval, rational), R^2 and the dimensional analysis; ``law.png`` shows log y against the
  fitted log predictor with the fit line;
- ``equations``: SINDy, one row per phase-space variable and scan point;
- ``conserved``: the conserved quantities (``runtime/discovery/conserved.py``), one row each and
  a row with their counts, per scan point; on a table of events (columns NAME before and
  NAME_after after each event) the quantities every event conserves.

Data that cannot support a fit are a located P428 naming the column.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR

from ..device import check_memory
from ..driver import RunContext, RunResult
from ..dynamics.data import initial_states, reference_trajectories
from ..dynamics.integrators import IntegratorError
from ..dynamics.tasks import integration_failed
from ..plans.discovery import DiscoverPlan, plan_discover
from ..plans.dynamics import read_trajectories
from ..tasks import RunState, Task
from . import plots
from .conserved import ConservedResult, find_conserved, find_conserved_pairs
from .laws import (
    DataError,
    as_dims,
    dims_text,
    fit_power_law,
    fit_rows,
    implied_exponents,
    powers_text,
)
from .orbits import orbit_measures
from .sparse import discover_equations, finite_differences

F64 = torch.float64


def _fail(code: str, msg: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


class PointData:
    """The trajectories of one scan point as numpy arrays: t (T,), q, p, dq, dp (B, T, n)
    (q, p observed, with noise where asked; dq, dp Hamilton's equations at the clean states),
    and per-trajectory ``columns`` (orbit measures, scan values, parameters), each (B,)."""

    def __init__(self, t, q, p, dq, dp, columns: dict[str, np.ndarray]):
        self.t, self.q, self.p, self.dq, self.dp, self.columns = t, q, p, dq, dp, columns


def _simulate(plan: DiscoverPlan, program, checker, k: int, ctx: RunContext) -> PointData:
    """Trajectories of scan point k, with their orbit measures."""
    point = plan.points[k]
    ir = checker.instantiate(point.args, {})
    cm = program.compile_ir(ir)
    streams = ctx.streams.fork(k)
    if plan.load is not None:
        tr = read_trajectories(plan.load, cm.n, program)
        dev = ctx.device
        t, q, p, dq, dp = (torch.as_tensor(x, dtype=F64, device=dev)
                           for x in (tr.t, tr.q, tr.p, tr.dq, tr.dp))  # fmt: skip
    else:
        o = plan.trajectories
        q0, p0 = initial_states(cm, o, o.count, streams)
        try:
            qc, pc, t = reference_trajectories(cm, q0, p0, o.t_span, o.points, o.substeps)
        except IntegratorError as exc:
            where = ", ".join(f"{k2} = {v:g}" for k2, v in point.values.items())
            integration_failed(f"simulating the trajectories{' at ' + where if where else ''}",
                               exc, plan.trajectories_span or plan.statement_span,
                               "more substeps, a smaller t_span or gentler starts (radius); "
                               "check the parameters give a bounded motion")  # fmt: skip
        with torch.no_grad():
            dq, dp = cm.system.dH_dp(qc, pc), -cm.system.dH_dq(qc, pc)
        q = qc + o.noise * streams.normal(qc.shape, F64) if o.noise else qc
        p = pc + o.noise * streams.normal(pc.shape, F64) if o.noise else pc
    m = orbit_measures(t, q, p, tuple(cm.shape), cm.system.hamiltonian)
    B = q.shape[0]
    cols = {k2: v.detach().cpu().numpy() for k2, v in m.columns().items()}
    if "semi_major_axis" not in cols:
        cols["semi_major_axis"] = np.full(B, np.nan)
    for name, v in point.values.items():
        cols[name] = np.full(B, float(v))
    for prm in ir.params:
        if isinstance(prm.value, int | float) and not isinstance(prm.value, bool):
            cols.setdefault(prm.name, np.full(B, float(prm.value)))
    cols["turns"] = m.turns.cpu().numpy()
    arrays = (x.detach().cpu().numpy() for x in (t, q, p, dq, dp))
    return PointData(*arrays, cols)


def _table(plan: DiscoverPlan, program, checker) -> dict[str, np.ndarray]:
    """The columns of the table the plan names (and the parameters, constant)."""
    ir = checker.instantiate(plan.points[0].args, {})
    model = program.compile_ir(ir)
    decl, data = model.tables[plan.table]
    values = np.asarray(data.values, dtype=np.float64).reshape(len(data.values), -1)
    cols = {c.name: values[:, i] for i, c in enumerate(decl.columns)}
    for prm in ir.params:
        if isinstance(prm.value, int | float) and not isinstance(prm.value, bool):
            cols.setdefault(prm.name, np.full(len(values), float(prm.value)))
    return cols


def _law(plan: DiscoverPlan, cols: dict[str, np.ndarray], run: RunState):
    """The fitted law over ``cols`` (located P428 for data that cannot support it)."""
    target, tspan = plan.target
    names = [p for p, _ in plan.predictors]
    spans = {p: s for p, s in plan.predictors} | {target: tspan}
    y = cols[target]
    x = np.stack([cols[p] for p in names], 1)
    if plan.source == "trajectories" and not np.isfinite(cols["period"]).all() and (
            target == "period" or "period" in names):  # fmt: skip
        bad = int((~np.isfinite(cols["period"])).sum())
        _fail("P428", f"{bad} of {len(y)} trajectories did not complete one turn in t_span: "
              "they have no period", plan.statement_span,
              "lengthen t_span (or give the orbits less energy)")  # fmt: skip
    dims = [plan.columns.get(n) for n in [target, *names]]
    known = all(d is not None for d in dims)
    o = plan.options
    try:
        fit = fit_power_law(y, x, target, names, confidence=o.confidence,
                            max_denominator=o.max_denominator,
                            target_dims=dims[0] if known else None,
                            predictor_dims=dims[1:] if known else None,
                            constants={k: v for k, v in plan.constants.items()
                                       if k not in names and k != target} if known else None)
    except DataError as exc:
        _fail("P428", f"discover {target} via {plan.method}: {exc.message}",
              spans.get(exc.column or "", plan.statement_span) or plan.statement_span,
              exc.hint)  # fmt: skip
    extra: dict = {}
    if known:
        implied = implied_exponents(dims[0], dims[1:])
        if implied is not None:
            extra["dimension_exponents"] = powers_text(dict(zip(names, implied)))
    rows = [{"method": plan.method, **r, **extra, "source": plan.table or "trajectories"}
            for r in fit_rows(fit)]  # fmt: skip
    return fit, rows


def _variables(qname: str, pname: str, n: int) -> list[str]:
    if n == 1:
        return [qname, pname]
    return [f"{qname}{i}" for i in range(n)] + [f"{pname}{i}" for i in range(n)]


def _equations(plan: DiscoverPlan, d: PointData, cm_names: tuple[str, str]) -> list[dict]:
    o = plan.options
    B, T, n = d.q.shape
    names = _variables(*cm_names, n)
    z = np.concatenate([d.q, d.p], -1)
    if o.derivatives == "exact":
        dz = np.concatenate([d.dq, d.dp], -1)
    else:
        dz = finite_differences(d.t, z)
    eqs, lib = discover_equations(z.reshape(-1, 2 * n), dz.reshape(-1, 2 * n), names,
                                  degree=o.degree, threshold=o.threshold,
                                  trig_names=names[:n] if o.trig else (),
                                  max_iterations=o.max_iterations,
                                  normalize=o.normalize)  # fmt: skip
    return [{"method": "equations", "law": e.formula, "expression": str(e.expression),
             "variable": e.variable, "terms": list(e.coefficients),
             "coefficients": list(e.coefficients.values()), "residual": e.residual,
             "r2": e.r2, "n_points": int(B * T), "features": len(lib.names)}
            for e in eqs]  # fmt: skip


def _conserved(plan: DiscoverPlan, d: PointData, cm_names: tuple[str, str]) -> list[dict]:
    o = plan.options
    B, T, n = d.q.shape
    qname, pname = cm_names
    names = _variables(qname, f"d{qname}" if o.velocities else pname, n)
    # velocities: Hamilton's dq/dt = dH/dp at the (clean) states
    z = np.concatenate([d.q, d.dq if o.velocities else d.p], -1)
    bodies = len(plan.shape) == 2  # q[i, a]: bodies i in D = shape[1] dimensions
    try:
        res = find_conserved(z, names, degree=o.degree, trig=o.trig,
                             inverse_radius=o.inverse_radius, tol=o.tol,
                             dimensions=plan.shape[1] if bodies else None)  # fmt: skip
    except ValueError as exc:
        _fail("P428", f"discover conserved: {exc}", plan.method_span,
              "more or longer trajectories, a smaller degree")  # fmt: skip
    return _conserved_rows(res)


def _conserved_pairs(plan: DiscoverPlan, cols: dict[str, np.ndarray]) -> list[dict]:
    """Quantities conserved by every event of a table: columns NAME before, NAME_after after."""
    names = [b for b, _ in plan.pairs]
    before = np.stack([cols[b] for b, _ in plan.pairs], 1)  # (events, len(pairs))
    after = np.stack([cols[a] for _, a in plan.pairs], 1)
    try:
        res = find_conserved_pairs(before, after, names, plan.options.degree,
                                   tol=plan.options.tol)  # fmt: skip
    except ValueError as exc:
        _fail("P428", f"discover conserved on table {plan.table}: {exc}", plan.table_span,
              "more events, a smaller degree")  # fmt: skip
    rows = _conserved_rows(res)
    dims = {n: plan.columns.get(n) for n in names}
    if all(d is not None for d in dims.values()):
        for row, q in zip(rows, res.quantities):
            row["dimensions"] = quantity_dimensions(q.expression, dims)
    return rows


def quantity_dimensions(expression, dims: dict[str, tuple]) -> str:
    """The dimensions of a polynomial quantity from its variables' (``kg m s^-1``), or
    ``inconsistent`` when its terms differ (a sum no unit system keeps)."""
    found = set()
    for term in sympy.Add.make_args(expression):
        total = as_dims(None)
        for base, power in term.as_coeff_Mul()[1].as_powers_dict().items():
            if not isinstance(base, sympy.Symbol) or not power.is_Rational:
                return ""  # not a monomial: no dimension to read
            total = tuple(a + Fraction(int(power.p), int(power.q)) * b
                          for a, b in zip(total, as_dims(dims[base.name]), strict=True))
        found.add(total)
    return dims_text(found.pop()) if len(found) == 1 else "inconsistent"


def _conserved_rows(res: ConservedResult) -> list[dict]:
    """One row per functionally independent quantity (``entry = quantity``), then the counts
    (``entry = counts``: the count, the count from the data alone, the null-space dimension)."""
    rows = [{"method": "conserved", "entry": "quantity", "quantity": i, "law": q.formula,
             "expression": str(q.expression), "residual": float(q.residual),
             "terms": int(q.terms)}
            for i, q in enumerate(res.quantities)]  # fmt: skip
    rows.append({"method": "conserved", "entry": "counts",
                 "law": f"{res.count} functionally independent conserved quantities",
                 "expression": "", "count": int(res.count),
                 "count_from_data": None if res.count_from_data is None
                 else int(res.count_from_data), "null_dimension": int(res.all_null),
                 "laws": [q.formula for q in res.quantities],
                 "feature_names": list(res.feature_names)})  # fmt: skip
    return rows


def memory_need(plan: DiscoverPlan) -> int:
    """Bytes of the simulated trajectories of every scan point (float64 states and their
    derivatives, with room for the integrator's stages and the feature matrices)."""
    t = plan.trajectories
    if t is None:
        return 0  # a table: as large as its file, already loaded
    n = 2 * max(1, int(np.prod(plan.shape or (1,))))
    return 8 * 8 * len(plan.points or [None]) * t.count * t.points * n


def run_discover(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Run a discover task: the data (table or simulated trajectories), then the method."""
    run = RunState.of(task)
    plan = plan_discover(run, program, ctx.sets)
    check_memory(memory_need(plan), ctx.device, f"run {run.name}", run.span,
                 "fewer or shorter trajectories (count, points)")  # fmt: skip
    checker = program.checker_for(task)
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": checker.name,
                    "params": dict(plan.points[0].args) if plan.points else {},
                    "device": str(ctx.device), "seed": ctx.seed, "task": "discover",
                    "method": {"name": plan.method, **plan.options.model_dump()},
                    "data": plan.table or "trajectories",
                    "scan": {s.name: s.values for s in run.scans}, "rows": [],
                    "complete": False})  # fmt: skip
    if plan.trajectories is not None:
        summary["trajectories"] = plan.trajectories.model_dump()
    files: list[Path] = []
    rows: list[dict] = []
    points: list[PointData] = []
    if plan.table is not None:
        cols = _table(plan, program, checker)
    else:
        points = [_simulate(plan, program, checker, k, ctx) for k in range(len(plan.points))]
        cols = {k: np.concatenate([d.columns[k] for d in points]) for k in points[0].columns}
    if plan.law:
        fit, law = _law(plan, cols, run)
        rows += law
        summary["laws"] = law
        if ctx.out is not None:
            files.append(plots.law_plot(ctx.out / "law.png", fit, plan.units))
    elif plan.table is not None:
        rows += _conserved_pairs(plan, cols)
    else:
        derived = program.derive(checker.instantiate(plan.points[0].args, {}))
        cm_names = (derived.qname, derived.pname)
        work = _equations if plan.method == "equations" else _conserved
        for pt, d in zip(plan.points, points):
            rows += [{**pt.values, **r} for r in work(plan, d, cm_names)]
    summary["rows"] = rows
    summary["complete"] = True
    ctx.recorder.write()
    return RunResult(summary, ctx.out, files)


def bind(catalogue: Catalogue) -> None:
    """Attach this family's tasks."""
    catalogue.tasks.bind("discover", Task(run_discover))
    methods = {"power_law": _law, "monomial": _law, "equations": _equations,
               "conserved": _conserved}  # fmt: skip
    for name, method in methods.items():
        catalogue.analyses.bind(name, method)


__all__ = ["bind", "run_discover"]
