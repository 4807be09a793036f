"""The program IR: learners, data and tasks of one file (and the models its tasks use)."""

from __future__ import annotations

from dataclasses import dataclass, field

from physml_lang.diagnostics import Span

from .model import DataIR, ModelIR
from .task import CallValue, TaskIR


@dataclass(frozen=True)
class LearnerIR:
    """``learner psi = rbm(alpha = 2) respecting translation``.

    ``of``: "learner" when ``call`` names a registered learner, "model" when it names a model
    (a Boltzmann machine declared in the language)."""

    name: str
    call: CallValue
    of: str = "learner"
    respecting: tuple[str, ...] = ()
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    respecting_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False,
                                                      kw_only=True)  # fmt: skip


@dataclass(frozen=True)
class ProgramIR:
    """Everything a file declares, checked: models as its tasks instantiate them."""

    models: tuple[ModelIR, ...] = ()
    learners: tuple[LearnerIR, ...] = ()
    data: tuple[DataIR, ...] = ()
    tasks: tuple[TaskIR, ...] = ()
