"""``--set NAME=VALUE`` and scans, resolved the same way for every task.

A name set on the command line is, in this order: a scan variable (the scan becomes that single
point), a model parameter, or a name of one of the task's option groups (``let`` values, the
sampler's options, a training's options, ...). Anything else is a P205 that lists every name
the run knows, with the closest one as a hint.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from physml_lang.check.model import ModelChecker
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean, warn
from physml_lang.ir.walk import names_in
from physml_lang.runtime.tasks import RunState

Located = dict[str, tuple[Any, Span | None]]  # name -> (value, span of its source)


@dataclass(frozen=True)
class Settable:
    """A group of names ``--set`` may assign: ``what`` they are (for messages), the names, the
    (value, span) dict a set value goes into, and old names (``renamed``: old -> new)."""

    what: str
    names: Collection[str]
    values: Located
    renamed: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def options(cls, what: str, schema: type, values: Located) -> Settable:
        """The options of a pydantic schema, with the old names it renamed."""
        renamed = getattr(schema, "renamed", {})
        return cls(what, set(schema.model_fields) | set(renamed), values, renamed)


def apply_sets(run: RunState, sets: dict[str, Any], params: Collection[str],
               groups: Sequence[Settable] = ()) -> None:  # fmt: skip
    """Apply ``--set`` values to ``run``: scan variables, model parameters (``params``; into
    ``run.model_args``), then the first of ``groups`` that has the name. An unknown name is a
    P205 listing what may be set."""
    for name, value in sets.items():
        scan = next((s for s in run.scans if s.name == name), None)
        if scan is not None:
            scan.values = [value]
        elif name in params:
            run.model_args[name] = (value, None)
        else:
            group = next((g for g in groups if name in g.names), None)
            if group is None:
                raise unknown_set(name, run, params, groups)
            new = group.renamed.get(name)
            if new is not None:
                warn(Diagnostic("P403", f"--set {name}: {group.what} '{name}' is now called "
                                f"'{new}'", None, f"--set {new}=... (the old name will be "
                                "removed)"))  # fmt: skip
                name = new
            for old in [o for o, n in group.renamed.items() if n == name]:
                group.values.pop(old, None)  # the program's value under the old name
            group.values[name] = (value, None)


def unknown_set(name: str, run: RunState, params: Collection[str],
                groups: Sequence[Settable]) -> PhysmlError:  # fmt: skip
    kinds = ["scan variable", "model parameter"] + [g.what for g in groups]
    known = set(params) | {s.name for s in run.scans}
    for g in groups:
        known |= set(g.names)
    listed = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    return PhysmlError(Diagnostic(
        "P205", f"--set {name}: no {listed} of run {run.name} is called '{name}'", None,
        did_you_mean(name, known) or "known names: " + ", ".join(sorted(known))))  # fmt: skip


def check_scanned(run: RunState, checker: ModelChecker, params: Collection[str],
                  hint: str | None = None, *, also: Collection[str] = ()) -> None:  # fmt: skip
    """Every scan variable of ``run`` must be a parameter of the model (``params``) or one of
    ``also`` (a task's own scan variables, such as T); else a P205 at the scan, with the
    closest name or ``hint``."""
    known = set(params) | set(also)
    for s in run.scans:
        if s.name not in known:
            what = "T, beta or a parameter" if also else "a parameter"
            raise PhysmlError(Diagnostic(
                "P205", f"cannot scan '{s.name}': it is not {what} of model {checker.name}",
                s.span, did_you_mean(s.name, known) or hint))  # fmt: skip


def numeric_parameters(checker: ModelChecker, scanned: list[str], measures) -> frozenset[str]:
    """The scanned model parameters that may be rebound rather than compiled again (numeric,
    as opposed to structural: sizes, a symmetry's condition): real couplings that no measured
    expression names. The compiled model decides the rest: its derived terms must not depend on
    the values (``rebind`` re-checks each value and says no otherwise)."""
    types = {p.name: p.type_name for p in checker.node.params}
    read = set().union(*(names_in(m.expr) for m in measures if m.expr is not None))
    return frozenset(n for n in scanned if types.get(n) == "real" and n not in read)


@dataclass
class ModelPoint:
    """One point of a run's scan: the scanned values and the model's arguments there."""

    values: dict[str, Any]
    args: dict[str, Any]


__all__ = ["ModelPoint", "Located", "Settable", "apply_sets", "check_scanned",
           "numeric_parameters", "unknown_set"]
