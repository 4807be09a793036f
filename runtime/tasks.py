"""The task registry: what a ``run`` block does, chosen by its statements.

A task has a ``check`` (everything ``run`` would reject, without running) and a ``run``
returning a :class:`~physml_lang.runtime.sample_task.RunResult`. Task modules register
themselves on import; :func:`load_tasks` imports every task module the package has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    check: Callable  # (run: RunIR, program: Program) -> None
    run: Callable  # (run, program, *, sets, device, seed, out, progress) -> RunResult
    doc: str


TASKS: dict[str, Task] = {}

def register_task(name: str, check: Callable, run: Callable, doc: str = "") -> None:
    TASKS[name] = Task(check, run, doc)


@dataclass(frozen=True)
class Variant:
    """Runs of ``task`` for which ``applies(run, program)`` holds are done by ``variant``."""

    applies: Callable
    variant: str


VARIANTS: dict[str, list[Variant]] = {}


def register_variant(task: str, applies: Callable, variant: str) -> None:
    """Let a capability take over runs of a shared task for its models (e.g. ``sample`` of a
    gauge model is done by ``gauge_sample``). A diagnostic raised by ``applies`` means "no"."""
    VARIANTS.setdefault(task, []).append(Variant(applies, variant))


def resolve_task(run, program) -> Task:
    """The task that executes ``run``: a registered variant for its model, or the task itself."""
    from physml_lang.diagnostics import PhysmlError

    for v in VARIANTS.get(run.task, []):
        try:
            applies = v.applies(run, program)
        except PhysmlError:
            applies = False  # the run's own check reports the problem, located
        if applies:
            return TASKS[v.variant]
    return TASKS[run.task]


_loaded = False


def load_tasks() -> dict[str, Task]:
    """Import every module that registers tasks, run statements or model kinds (once).

    One import per capability; a capability whose package is absent is skipped.
    """
    global _loaded
    if _loaded:
        return TASKS
    _loaded = True
    from . import sample_task  # noqa: F401

    try:
        import physml_lang.runtime.quantum.tasks  # noqa: F401
    except ModuleNotFoundError as exc:
        _absent(exc, "quantum")
    try:
        import physml_lang.runtime.gauge.tasks  # noqa: F401
    except ModuleNotFoundError as exc:
        _absent(exc, "gauge")
    try:
        import physml_lang.runtime.dynamics.tasks  # noqa: F401
    except ModuleNotFoundError as exc:
        _absent(exc, "dynamics")
    try:
        import physml_lang.runtime.learners.tasks  # noqa: F401
    except ModuleNotFoundError as exc:
        _absent(exc, "learners")
    return TASKS


def _absent(exc: ModuleNotFoundError, package: str) -> None:
    """Tolerate a capability that is not there; re-raise a missing dependency inside one."""
    if not (exc.name or "").startswith(f"physml_lang.runtime.{package}"):
        raise exc
