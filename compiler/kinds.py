"""The model-kind registry: which compiler lowers a checked model.

A classical lattice model (discrete fields, an ``energy``) becomes a
:class:`~physml_lang.compiler.model.CompiledModel`; quantum, gauge and phase-space models are
lowered by their own compilers, registered here by their modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from physml_lang.ir import ModelIR


@dataclass(frozen=True)
class ModelKind:
    name: str
    applies: Callable[[ModelIR], bool]
    compile: Callable[..., object]  # (ir, **options) -> compiled model with .describe()
    priority: int = 0


MODEL_KINDS: list[ModelKind] = []


def register_model_kind(kind: ModelKind) -> None:
    MODEL_KINDS[:] = [k for k in MODEL_KINDS if k.name != kind.name] + [kind]
    MODEL_KINDS.sort(key=lambda k: -k.priority)


def _classical(ir: ModelIR) -> bool:
    return True  # the fallback: CompiledModel reports what it cannot lower


def _compile_classical(ir: ModelIR, **options):
    from .model import CompiledModel

    return CompiledModel(ir, **options)


register_model_kind(ModelKind("classical", _classical, _compile_classical, priority=-100))


def compile_model(ir: ModelIR, **options) -> object:
    from physml_lang.runtime.tasks import load_tasks

    load_tasks()  # task modules register their model kinds
    for kind in MODEL_KINDS:
        if kind.applies(ir):
            return kind.compile(ir, **options)
    raise AssertionError("the classical kind applies to every model")
