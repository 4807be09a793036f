"""``train NAME via OBJECTIVE(options)``, read the same way by every training task (torch-free).

The statement names one declared learner and one objective. Reading it checks, with located
errors: the learner is a bare name (P103) and declared (P207), the objective's options are
named (P318) and valid for its schema (P401, P402, ...), the learner is a catalogue learner of
the task's family that this objective can train (P503), and every symmetry the learner is
declared ``respecting`` is one it can respect (P501). The learner's options come back with
their spans, for the ``--set`` values (``apply_sets``) and schema each task applies.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, StatementIR, Word

from ..tasks import RunState, option_values, plain
from .parameters import Located


@dataclass
class Training:
    """A run's training statement, read: the learner's declaration and catalogue entry, the
    objective's name, span and options, and the learner's options (name -> (value, span))."""

    statement: StatementIR
    learner: LearnerIR
    entry: object  # the learner's catalogue entry (schema, facts)
    objective: str
    objective_call: CallValue | Word | None  # as written (the spans of its options)
    objective_span: Span | None
    objective_options: Located
    options: BaseModel  # the objective's options, validated against its schema
    learner_options: Located


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def read_training(run: RunState, program, family: str, objective: str, schema: type[BaseModel],
                  sets: dict[str, Any], *, options_example: str, declare_example: str, refusal: str,
                  options_of: Callable[[CallValue], Located] | None = None,
                  refusal_hint: str | None = None, learners: Collection[str] | None = None,
                  symmetry_hint: str | None = None) -> Training:  # fmt: skip
    """Read ``run``'s ``train NAME via OBJECTIVE(...)``.

    - ``objective``: the objective's name where the statement writes none;
    - ``schema``: its options, validated with those of the ``--set`` values in ``sets`` that
      name one of them and no model parameter or scan variable (they are taken out of ``sets``);
    - ``options_of``: reads the objective call's options where they need more than their plain
      values (default: each named option's value);
    - ``options_example``: the objective with named options (the P318 hint);
    - ``declare_example``: a learner declaration (the P207 hint; ``{learner}`` stands for the
      name the statement gives);
    - ``refusal``: what the learner cannot be trained by (P503), with ``refusal_hint``
      (default: the learners it can train);
    - ``learners``: the learners this objective trains (default: those of ``family``);
    - ``symmetry_hint``: the P501 hint (default: the symmetries the learner respects)."""
    stmt = next(s for s in run.statements if s.word == "train")
    item = next(it for it in stmt.items if it.kind == "via")
    via = item.via
    name_of_objective = getattr(via, "name", None) or objective
    if not isinstance(item.value, Word):
        _fail("P103", f"train NAME via {name_of_objective}(...): one declared learner",
              item.value_span)  # fmt: skip
    objective_options: Located = {}
    if isinstance(via, CallValue):
        if via.args:
            _fail("P318", f"{name_of_objective} takes named options: {options_example}", via.span)
        objective_options = options_of(via) if options_of is not None else \
            {o.name: (plain(o.value), o.span) for o in via.kwargs}  # fmt: skip
    taken = set(program.checker_for(run.ir).param_names) | {s.name for s in run.scans}
    for k in [k for k in sets if k in schema.model_fields and k not in taken]:
        objective_options[k] = (sets.pop(k), None)  # --set of a training option
    objective_span = getattr(via, "span", None) or stmt.span
    options = option_values(objective_options, schema, objective_span,
                            f"objective {name_of_objective}")  # fmt: skip
    name = item.value.name
    decl = program.learners.get(name)
    if decl is None:
        _fail("P207", f"unknown learner '{name}'", item.value_span,
              did_you_mean(name, set(program.learners))
              or "declare it: " + declare_example.replace("{learner}", name))  # fmt: skip
    entry = CATALOGUE.learners.get(decl.call.name, family)
    if (entry is None or decl.of != "learner"
            or (learners is not None and decl.call.name not in learners)):  # fmt: skip
        known = list(learners) if learners is not None else \
            CATALOGUE.learners.names(family, shared=False)  # fmt: skip
        _fail("P503", f"learner {name} = {decl.call.name}(...) cannot be trained by {refusal}",
              item.value_span, refusal_hint or ", ".join(known))  # fmt: skip
    for sym, span in zip(decl.respecting, decl.respecting_spans):
        if sym not in entry.facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {sym}", span,
                  symmetry_hint or f"{decl.call.name} respects: "
                  + ", ".join(entry.facts.symmetries))  # fmt: skip
    learner_options: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    return Training(stmt, decl, entry, name_of_objective, via, objective_span, objective_options,
                    options, learner_options)  # fmt: skip


def read_reference(run: RunState, task: str) -> tuple[str, Span | None]:
    """The run's ``reference exact`` or ``reference none`` (default "none") and its span; any
    other reference is a P406 naming the ``task``."""
    reference, span = "none", None
    for s in run.statements:
        if s.word == "reference":
            v = s.items[0].value if len(s.items) == 1 else None
            if not (isinstance(v, Word) and v.name in ("exact", "none")):
                _fail("P406", f"a {task} run's reference is 'exact' or 'none'", s.span)
            reference, span = v.name, s.span
    return reference, span


__all__ = ["Training", "read_reference", "read_training"]
