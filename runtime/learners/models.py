"""The compiled models of a learner run's points: the recalled network with its stored
patterns, the learner with its checked data, a sampled Boltzmann model with learned parameters
loaded, and the auxiliary models a train statement names (``truth``, ``physical``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from physml_lang.catalogue.boltzmann import FAMILY
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.ir.model import ModelIR
from physml_lang.ir.task import CallValue
from physml_lang.ir.walk import fail
from physml_lang.runtime.plans.learners import (
    BoltzmannSamplePlan,
    RecallPlan,
    TrainPlan,
    TrainPoint,
    aux_ir,
    boltzmann_point_ir,
    plan_boltzmann_point,
    plan_train_point,
    recall_ir,
    recall_patterns,
    statements,
    train_ir,
)

from ..tasks import RunState


def recall_model(run: RunState, program, plan: RecallPlan,
                 point: dict) -> tuple[BoltzmannModel, str, np.ndarray]:  # fmt: skip
    """The compiled model of a recall point (as a Boltzmann model), the recalled field and
    its stored patterns xi (P, N)."""
    cm = program.compile_ir(recall_ir(run, plan, point), kind=FAMILY)
    field, xi = recall_patterns(run, cm.derivation)
    return cm, field, xi


def train_model(run: RunState, program, plan: TrainPlan,
                point: dict) -> tuple[ModelIR, BoltzmannModel, TrainPoint]:  # fmt: skip
    """The learner's IR and compiled model at one scan point, with its data and layout
    checked."""
    ir = train_ir(plan, point)
    cm = program.compile_ir(ir, kind=FAMILY)
    return ir, cm, plan_train_point(run, program, plan, cm.derivation, program.data_loader, point)


def aux_model(program, call: CallValue, kind: str | None = None):
    """The compiled model a train statement names (``truth = SK(N = 16, seed = 1)``)."""
    return program.compile_ir(aux_ir(program, call), kind=kind)


def load_params(run: RunState, path: Path, cm: BoltzmannModel) -> None:
    """Copy the learned arrays of a parameter file (checked by the plan: names and shapes)
    into the compiled model."""
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        fail("P600", f"cannot read {path}: {exc}", statements(run).learned_params[1])
    with torch.no_grad():
        for k, t in tensors.items():
            cm.array(k).copy_(t.to(cm.array(k).dtype))


def boltzmann_point(run: RunState, program, plan: BoltzmannSamplePlan,
                    point: dict) -> tuple[BoltzmannModel, float]:  # fmt: skip
    """The compiled model of one point of a Gibbs sample run, with its learned parameters
    loaded, and beta."""
    cm = program.compile_ir(boltzmann_point_ir(run, program, plan, point), kind=FAMILY)
    checked = plan_boltzmann_point(run, program, cm.derivation, point)
    if checked.params_file is not None:
        load_params(run, checked.params_file, cm)
    return cm, checked.beta
