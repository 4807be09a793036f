"""The landscape tasks: ``evolve METHOD(...)`` and ``optimise f via METHOD(...)`` of a landscape
model (``runtime/plans/landscape.py`` validates them), run through the shared driver.

Each scan point (and each grid size of ``points = [...]``, each dtau of ``dtau = [...]``) is one
unit of the driver's scan: it runs to the end, writes its rows at once (nothing finished is lost
on an interrupt or a failure) and draws from its own random streams. After the last unit the
extrapolations join the rows -- Richardson over grids (``schrodinger``), dtau -> 0 (``dmc``) --
and the plots are drawn: densities over time, the annealing trace, energy against dtau.
A failure of the engines (:class:`LandscapeError`: a population that explodes, a non-finite
wavefunction) is a located P705 with the rows already written kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.landscape import ACTIVE_METHODS, EVOLVE_TASKS
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..device import check_memory
from ..driver import Computation, RunContext, RunResult, run_scan
from ..plans.landscape import LandscapePlan, plan_landscape
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import evolutions, optimise_runs, plots, spin_runs
from .errors import LandscapeError

F64 = torch.float64


@dataclass
class Unit:
    """One unit of the driver's scan: the scan points it runs (``batch``: several at once for
    the grid evolutions, whose engines are batched over potentials) and, for a list-valued
    option, one of its values (``sub``)."""

    batch: list[int]
    sub: dict[str, Any] = field(default_factory=dict)




def _units(plan: LandscapePlan) -> list[Unit]:
    """Grid evolutions: one unit per grid size, every scan point in one batch; the rest: one
    unit per scan point and value of a list-valued option."""
    o = plan.options
    subs: list[dict[str, Any]] = [{}]
    if isinstance(getattr(o, "points", None), list):
        subs = [{"points": n} for n in o.points]
    elif plan.method == "dmc" and isinstance(o.dtau, list):
        subs = [{"dtau": t} for t in o.dtau]
    elif plan.method == "dmc" and isinstance(o.walkers, list):
        subs = [{"walkers": n} for n in o.walkers]
    if plan.method in evolutions.BATCHED:
        return [Unit(list(range(len(plan.points))), s) for s in subs]
    return [Unit([k], s) for k in range(len(plan.points)) for s in subs]


def _fail_located(plan: LandscapePlan, exc: LandscapeError, ctx: RunContext, kept: int):
    ctx.recorder.write()
    where = f"; {kept} finished row(s) kept" if kept else ""
    raise PhysmlError(Diagnostic("P705", f"{plan.method}: {exc.message}{where}", plan.method_span,
                                 exc.hint)) from None  # fmt: skip


def run_landscape(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Run an evolve or optimise task of a landscape model: rows per unit, then the
    extrapolations and plots (``summary["extrapolation"]`` where there is one)."""
    run = RunState.of(task)
    plan = plan_landscape(run, program, ctx.sets)
    checker = program.checker_for(task)
    summary = ctx.recorder.summary
    method_options = plan.options.model_dump()
    summary.update({"run": run.name, "source": program.name, "model": checker.name,
                    "params": dict(plan.points[0].args) if plan.points else {},
                    "device": str(ctx.device), "seed": ctx.seed, "task": plan.task,
                    "method": {"name": plan.method, **method_options},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [],
                    "complete": False})  # fmt: skip
    if plan.optimise is not None:
        summary["optimise"] = {"objective": plan.objective, **plan.optimise.model_dump()}
    units = _units(plan)
    check_memory(memory_need(plan), ctx.device, f"run {run.name}", run.span,
                 "fewer grid points, walkers, restarts or a smaller population")  # fmt: skip
    settings = {"task": plan.task, "method": plan.method, "options": method_options,
                "optimise": plan.optimise.model_dump() if plan.optimise else None,
                "seed": ctx.seed, "points": [p.args for p in plan.points],
                "units": [(u.batch, u.sub) for u in units]}  # fmt: skip
    models: dict[int, Any] = {}
    artefacts: list[evolutions.Artefact] = []

    def models_of(u: Unit) -> list:
        if set(models) != set(u.batch):
            models.clear()  # the compiled models of one unit at a time
            for k in u.batch:
                ir = checker.instantiate(plan.points[k].args)
                models[k] = (program.compile_ir(ir, dtype=torch.float64) if plan.spins
                             else program.compile_ir(ir))  # fmt: skip
        return [models[k] for k in u.batch]

    def start(k: int, streams: RandomStreams) -> Computation:
        u = units[k]

        def work() -> list[dict]:
            rows, art = _dispatch(plan, models_of(u), u, streams, ctx)
            for a in art:
                values = plan.points[u.batch[a.member]].values
                where = ", ".join(f"{k} = {v}" for k, v in values.items())
                a.label = f"{a.label}, {where}" if where else a.label
                a.point = u.batch[a.member]
            artefacts.extend(art)
            return [{**plan.points[u.batch[r.pop("_b", 0)]].values, **r} for r in rows]

        return Computation(work)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)

    try:
        run_scan(ctx, run.span, len(units), settings, start, finish, 1, run.name, "run")
    except LandscapeError as exc:
        _fail_located(plan, exc, ctx, len(summary["rows"]))
    try:
        extra = _extrapolations(plan, summary)
    except LandscapeError as exc:
        _fail_located(plan, exc, ctx, len(summary["rows"]))
    if extra:
        summary["rows"].extend(extra)
        ctx.recorder.write()
    files: list[Path] = []
    if ctx.out is not None:
        files = plots.draw(ctx.out, plan, summary, artefacts)
    return RunResult(summary, ctx.out, files)


def memory_need(plan: LandscapePlan) -> int:
    """Bytes the largest unit holds at once (float64, with room for the engines' temporaries):
    grids (wavefunctions, their FFTs, the dense H of small grids), walkers (DMC may grow to
    max_factor times its target), populations and coupling matrices."""
    o, n, word = plan.options, max(plan.size, 1), 8
    if plan.spins:
        count = o.population if plan.method == "population_annealing" else plan.optimise.restarts
        return word * (4 * n * n + 8 * count * n)
    if plan.task == "optimise" and plan.method in ACTIVE_METHODS:
        return optimise_runs.active_memory_need(plan)
    if plan.task == "optimise":
        per = {"mqhoa": getattr(o, "k", 1), "simulated_annealing": getattr(o, "chains", 1),
               "population_annealing": getattr(o, "population", 1)}[plan.method]  # fmt: skip
        return word * 16 * plan.optimise.restarts * per * (n + 2)
    if plan.method in ("dmc", "langevin"):
        most = max(o.walkers) if isinstance(o.walkers, list) else o.walkers
        walkers = most * (o.max_factor if plan.method == "dmc" else 1)
        recorded = 0 if plan.method == "dmc" else 1 + (o.burn_in + o.steps) // o.record_every
        return int(word * walkers * n * (12 + recorded))
    sizes = o.points if isinstance(o.points, list) else [o.points]
    points = max(sizes) ** n
    states = max(getattr(o, "states", 1), getattr(o, "levels", 0))
    snaps = getattr(o, "snapshots", 0)
    exact = points**2 if points <= evolutions.EXACT_POINTS else 0
    return word * (2 * 8 * points * (states + 2) + points * snaps + exact)


def _dispatch(plan: LandscapePlan, cms: list, u: Unit, streams: RandomStreams, ctx: RunContext
              ) -> tuple[list[dict], list[evolutions.Artefact]]:  # fmt: skip
    """The rows (each naming its batch member ``_b``) and plot data of one unit."""
    if plan.spins:
        return spin_runs.spin_rows(plan, cms[0], streams, ctx.device)
    if plan.task == "optimise":
        return optimise_runs.optimise_rows(plan, cms[0], streams, ctx.device, ctx.experiment)
    run = getattr(evolutions, plan.method)
    if plan.method in evolutions.BATCHED:
        return run(plan, cms, u.sub, streams, ctx.device, ctx.seed)
    return run(plan, cms[0], u.sub, streams, ctx.device, ctx.seed)


def _extrapolations(plan: LandscapePlan, summary: dict) -> list[dict]:
    """Richardson over grids (each state) and dtau -> 0 (DMC) of each scan point's rows."""
    rows = summary["rows"]
    if plan.method == "imaginary_time" and isinstance(plan.options.points, list):
        return evolutions.richardson_rows(plan, rows, summary)
    if plan.method == "dmc" and isinstance(plan.options.dtau, list):
        return evolutions.timestep_rows(plan, rows, summary)
    if plan.method == "dmc" and isinstance(plan.options.walkers, list):
        return evolutions.population_rows(plan, rows, summary)
    return []


def bind(catalogue: Catalogue) -> None:
    """Attach the landscape tasks (evolutions and optimisers)."""
    for name in sorted(set(EVOLVE_TASKS.values()) | {"optimise"}):
        catalogue.tasks.bind(name, Task(run_landscape))
    for name in EVOLVE_TASKS:
        catalogue.integrators.bind(name, getattr(evolutions, name), family="landscape")
    for name, fn in optimise_runs.OPTIMISERS.items():
        catalogue.optimisers.bind(name, fn, family="landscape")
    catalogue.optimisers.bind("simulated_annealing", spin_runs.anneal_spins, family="lattice")
    catalogue.optimisers.bind("population_annealing", spin_runs.population_anneal_spins,
                              family="lattice")


__all__ = ["bind", "memory_need", "run_landscape"]
