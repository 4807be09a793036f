"""Static plan of a ``diffusion`` run (torch-free): score models and flow matching of a
continuous lattice field, checked without running.

    learner s = score_net(width = 16) respecting spin_flip
    run diffusion {
        model Phi4Tutorial(L = 8, m2 = -4, lam = 8)
        sampler hmc(chains = 8, sweeps = 400, burn_in = 100)   # the training data (and reference)
        train s via score_matching(sigmas = geometric(3, 0.01, 10), steps = 2000)
    }

The learner is a declared ``score_net`` (objective ``score_matching``) or ``velocity_net``
(``flow_matching``) of a model with one real field on the sites of a periodic chain or square
lattice (circular convolutions); ``respecting spin_flip`` needs the model's own (verified)
``symmetry spin_flip``. The training data are the samples of the run's ``sampler hmc(...)``
(or ``mala``) of the model, or a declared array named by ``data NAME`` of shape (n, *lattice)
or (n, sites); with both, the data train and the sampler gives the reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.scores import FAMILY, FlowMatchingOptions, ScoreMatchingOptions
from physml_lang.check.model import option_names
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .learners import training_data
from .parameters import Located, Settable, apply_sets, check_scanned
from .training import read_training

OBJECTIVES = {"score_matching": ("score_net", ScoreMatchingOptions),
              "flow_matching": ("velocity_net", FlowMatchingOptions)}  # fmt: skip
DATA_SAMPLERS = ("hmc", "mala")  # exact samplers whose samples may train
ALLOWED = ("model", "sampler", "train", "data", "scan", "plot", "checkpoint")


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class ScorePoint:
    values: dict[str, Any]  # the scanned values of this point
    model: Any  # FieldDerivation (check) or FieldModel (run)
    shape: tuple[int, ...]
    n_sites: int
    data: np.ndarray | None = None  # loaded training data (n, *shape), float64


@dataclass
class ScorePlan:
    """A diffusion run, validated."""

    learner: LearnerIR
    learner_options: BaseModel
    odd: bool  # respecting spin_flip
    objective_name: str
    objective: BaseModel
    objective_span: Span | None
    sampler: str | None  # the data sampler (hmc, mala) or None
    sampler_options: BaseModel | None
    sampler_span: Span | None
    data_name: str | None
    data_span: Span | None
    points: list[ScorePoint] = field(default_factory=list)


def _statement(run: RunState, word: str):
    return next((s for s in run.statements if s.word == word), None)


def _objective_options(via: CallValue | Word, span: Span | None, schema) -> Located:
    """Options of the objective call; ``sigmas = geometric(max, min, levels)`` is unfolded."""
    opts: Located = {}
    if not isinstance(via, CallValue):
        return opts
    if via.args:
        _fail("P318", f"{via.name} takes named options: {via.name}(steps = 2000)", via.span)
    for o in via.kwargs:
        if o.name != "sigmas":
            opts[o.name] = (plain(o.value), o.span)
            continue
        v = o.value
        usage = "sigmas = geometric(sigma_max, sigma_min, levels), e.g. geometric(1, 0.01, 10)"
        if "sigma_max" not in schema.model_fields:
            _fail("P318", f"{via.name} has no noise levels (sigmas)", o.span,
                  "flow matching runs from N(0, 1) at t = 0 to the data at t = 1")  # fmt: skip
        if not (isinstance(v, CallValue) and v.name == "geometric" and len(v.args) == 3
                and not v.kwargs and all(isinstance(a, int | float) and not isinstance(a, bool)
                                         for a in v.args)):  # fmt: skip
            _fail("P424", "sigmas is a geometric ladder of noise levels", o.span, usage)
        for name in ("sigma_max", "sigma_min", "levels"):
            if any(k.name == name for k in via.kwargs):
                _fail("P201", f"sigmas and {name} both set the noise levels", o.span,
                      "give either sigmas = geometric(...) or sigma_max, sigma_min, levels")  # fmt: skip
        top, bottom, levels = v.args
        if isinstance(levels, float) and levels.is_integer():
            levels = int(levels)
        opts.update({"sigma_max": (top, o.span), "sigma_min": (bottom, o.span),
                     "levels": (levels, o.span)})  # fmt: skip
    return opts


def plan_scores(run: RunState, program, sets: dict[str, Any] | None = None,
                realise=None, loader=None) -> ScorePlan:  # fmt: skip
    """Validate a diffusion run with its ``--set`` values and realise its models (``realise``:
    a model IR to its derivation (check, the default) or compiled model (run); ``loader``: the
    data loader, the program's static one by default)."""
    for s in run.statements:
        if s.word not in ALLOWED:
            _fail("P103", f"a diffusion run has no '{s.word}' statement", s.span,
                  "it measures action_density, magnetization, abs_magnetization and m2 of "
                  "every sampler; statements: " + ", ".join(ALLOWED))  # fmt: skip
    extra = [(m.span, "measure") for m in run.measures] + [(sp, "let") for _, sp in run.lets.values()]
    if extra:
        _fail("P103", f"a diffusion run has no '{extra[0][1]}' statement", extra[0][0],
              "it measures action_density, magnetization, abs_magnetization and m2 of every "
              "sampler, at the action as written (T = 1)")  # fmt: skip
    stmt = _statement(run, "train")
    item = next(it for it in stmt.items if it.kind == "via")
    via = item.via
    name_of_objective = via.name if isinstance(via, CallValue | Word) else str(via)
    wanted, schema = OBJECTIVES[name_of_objective]
    objective_span = getattr(via, "span", None) or stmt.span
    if not isinstance(item.value, Word) or len([i for i in stmt.items if i.kind == "via"]) != 1:
        _fail("P103", f"train NAME via {name_of_objective}(...): one declared learner",
              item.value_span or stmt.span)  # fmt: skip
    sets = dict(sets or {})
    training = read_training(
        run, program, FAMILY, name_of_objective, schema, sets,
        options_example=f"{name_of_objective}(steps = 2000)",
        declare_example=f"learner {{learner}} = {wanted}(width = 16)",
        options_of=lambda call: _objective_options(call, objective_span, schema),
        refusal=name_of_objective, learners=(wanted,),
        refusal_hint=f"{name_of_objective} trains a {wanted}: learner {item.value.name} = "
        f"{wanted}(width = 16)",
        symmetry_hint=f"{wanted} respects translation (circular convolutions) and spin_flip")  # fmt: skip
    decl, entry, name = training.learner, training.entry, training.learner.name
    objective_opts, learner_opts = training.objective_options, training.learner_options
    objective = training.options
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    # the data sampler
    sampler_entry = None
    if run.sampler is not None:
        sampler_entry = CATALOGUE.samplers.get(run.sampler, "field")
        if sampler_entry is None or run.sampler not in DATA_SAMPLERS:
            _fail("P206", f"the training data of a diffusion run come from an exact sampler of "
                  f"the field; '{run.sampler}' is not one", run.sampler_span,
                  "sampler hmc(chains = 8, sweeps = 400, burn_in = 100, step_size = 0.1)")  # fmt: skip
    groups = [Settable("training option", option_names(schema), objective_opts),
              Settable("learner option", option_names(entry.schema), learner_opts)]
    if sampler_entry is not None:
        groups.append(Settable.options("sampler option", sampler_entry.schema,
                                       run.sampler_options))  # fmt: skip
    apply_sets(run, sets, params, groups)
    if isinstance(objective, ScoreMatchingOptions) and objective.sigma_min >= objective.sigma_max:
        span = (objective_opts.get("sigma_min") or objective_opts.get("sigma_max")
                or (None, objective_span))[1] or objective_span  # fmt: skip
        _fail("P424", f"sigma_min = {objective.sigma_min:g} must be below sigma_max = "
              f"{objective.sigma_max:g}", span, "the noise levels run from sigma_max (about the "
              "data's spread or more) down to sigma_min (well below it), e.g. "
              "geometric(3, 0.01, 10)")  # fmt: skip
    lopts = option_values(learner_opts, entry.schema, decl.call.span, f"learner {decl.call.name}")
    if getattr(objective, "prior", "isotropic") == "spectral" and lopts.skip != "spectral":
        _fail("P424", "prior = spectral uses the data's power spectrum, which the learner's "
              "isotropic skip does not keep",
              objective_opts.get("prior", (None, None))[1] or objective_span,
              f"drop skip = isotropic from learner {name}, or use prior = isotropic")  # fmt: skip
    sampler_options = None
    if sampler_entry is not None:
        sampler_options = option_values(run.sampler_options, sampler_entry.schema,
                                        run.sampler_span, f"sampler {run.sampler}")  # fmt: skip
    data_stmt = _statement(run, "data")
    data_name, data_span = None, None
    if data_stmt is not None:
        v = data_stmt.items[0].value if len(data_stmt.items) == 1 else None
        if not isinstance(v, Word):
            _fail("P103", "data NAME: the name of a data declaration", data_stmt.span,
                  'declare it: data phi: real = load("phi.npy")')  # fmt: skip
        data_name, data_span = v.name, data_stmt.span
    if data_name is None and sampler_entry is None:
        _fail("P412", f"run {run.name} does not say what to train on", run.span,
              "add 'sampler hmc(chains = 8, sweeps = 400, burn_in = 100)' (samples of the "
              "model) or 'data NAME' (a declared array)")  # fmt: skip
    plan = ScorePlan(decl, lopts, "spin_flip" in decl.respecting, name_of_objective, objective,
                     objective_span, run.sampler, sampler_options, run.sampler_span, data_name,
                     data_span)  # fmt: skip
    plan.points = _points(run, program, realise or program.derive,
                          loader or program.static_data, plan)  # fmt: skip
    return plan


def _points(run: RunState, program, realise, loader, plan: ScorePlan) -> list[ScorePoint]:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    check_scanned(run, checker, params, "a diffusion run samples the action as written (T = 1)")
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    where = run.model_span or run.span
    points = []
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(spans)
        for s, v in zip(run.scans, combo):
            a[s.name], sp[s.name] = v, s.span
        ir = checker.instantiate(a, sp)
        if ir.kind != "field":
            _fail("P422", f"a diffusion run learns a continuous field (real on sites, with an "
                  f"action); model {checker.name} is not one", where)  # fmt: skip
        if plan.odd and "spin_flip" not in {s.name for s in ir.symmetries if s.active}:
            span = plan.learner.respecting_spans[plan.learner.respecting.index("spin_flip")]
            _fail("P505", f"learner {plan.learner.name} respects spin_flip, but model "
                  f"{checker.name} does not declare it (here)", span,
                  "declare 'symmetry spin_flip' in the model (it is verified against the "
                  "action), or drop 'respecting spin_flip'")  # fmt: skip
        model = realise(ir)
        domain = getattr(model, "domain", None)
        if domain != "real":
            _fail("P502", f"score models and flow matching take a real field; field "
                  f"{model.field} of {checker.name} is {domain}", where,
                  "angles (XY) live on a circle: not supported by score_net/velocity_net")  # fmt: skip
        lat = model.lattice
        if lat.graph or lat.dim not in (1, 2) or lat.basis != 1 or not lat.all_periodic:
            _fail("P503", f"learner {plan.learner.name} = {plan.learner.call.name}(...) convolves "
                  "circularly over a periodic chain or square lattice with one site per cell; "
                  f"model {checker.name} is not on one", plan.learner.call.span,
                  "use lattice chain(L, boundary = periodic) or square(L, L, boundary = "
                  "periodic)")  # fmt: skip
        shape = tuple(int(c) for c in model.shape)
        point = ScorePoint({s.name: v for s, v in zip(run.scans, combo)}, model, shape,
                           int(lat.n_sites))  # fmt: skip
        if plan.data_name is not None:
            point.data = _data(program, loader, plan, checker.name, shape, a)
        points.append(point)
    return points


def _data(program, loader, plan: ScorePlan, model: str, shape: tuple[int, ...],
          values: dict[str, Any]) -> np.ndarray:  # fmt: skip
    """The declared training data as (n, *shape) float64: (n, *shape) or (n, sites) arrays."""
    data = training_data(loader, program, plan.data_name, plan.data_span, values)
    arr = np.asarray(data.values)
    if getattr(data, "domain", None) is not None and data.domain.discrete:
        _fail("P601", f"data '{plan.data_name}' is {data.domain.kind}: a diffusion run trains on "
              "real fields", plan.data_span, f'declare it real: data {plan.data_name}: real = '
              'load("phi.npy")')  # fmt: skip
    n_sites = int(np.prod(shape))
    if arr.ndim >= 2 and tuple(arr.shape[1:]) == shape:
        out = arr.reshape(arr.shape[0], *shape)
    elif arr.ndim == 2 and arr.shape[1] == n_sites:
        out = arr.reshape(arr.shape[0], *shape)
    else:
        _fail("P601", f"data '{plan.data_name}' has shape {tuple(arr.shape)}; model {model} "
              f"needs (samples, {', '.join(map(str, shape))}) or (samples, {n_sites})",
              plan.data_span, "one configuration of the field per row")  # fmt: skip
    if out.shape[0] < 2:
        _fail("P601", f"data '{plan.data_name}' holds {out.shape[0]} configuration(s): too few "
              "to train on", plan.data_span)  # fmt: skip
    return np.ascontiguousarray(out, dtype=np.float64)


def check_scores(task: TaskIR, program) -> None:
    """The static check of a diffusion run."""
    plan_scores(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    catalogue.tasks.bind_check("diffusion", TaskCheck(check_scores))


__all__ = ["ScorePlan", "ScorePoint", "bind_checks", "check_scores", "plan_scores"]
