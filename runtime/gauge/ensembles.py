"""Configurations for gauge learners: heat-bath ensembles of Wilson-action models and the
regression data drawn from them (configurations pooled over the scan's points, with their
targets)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from physml_lang.compiler.models.gauge import GaugeModel

from ..random import RandomStreams
from .sampling import heatbath_sweep, hot_start

Tensor = torch.Tensor


def heatbath_ensemble(cm: GaugeModel, n: int, shape: tuple[int, ...], sweeps: int,
                      streams: RandomStreams, device: torch.device) -> Tensor:  # fmt: skip
    """``n`` configurations (n, *shape, d, *group_shape) of the Wilson action at the model's
    beta: independent hot starts after ``sweeps`` heat-bath sweeps (configuration b is
    stream b's chain, the same in any batch and on any device)."""
    dt = torch.complex128 if cm.group.name == "su2" else torch.float64
    U = hot_start(cm.group, n, shape, streams, device=device, dtype=dt)
    for _ in range(sweeps):
        U = heatbath_sweep(U, cm.group, float(cm.wilson_beta), streams)
    return U


def regression_data(cms: Sequence[GaugeModel], target: Callable[[Tensor], Tensor],
                    shape: tuple[int, ...], n: int, sweeps: int,
                    streams: Callable[[int], RandomStreams],
                    device: torch.device) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``n`` configurations per model (the scan's points, ``streams(i)`` the random family
    of point i), pooled: U (len(cms) n, *shape, d, *group_shape) and the targets y (.., 1)
    float64."""
    U = torch.cat([heatbath_ensemble(cm, n, shape, sweeps, streams(i), device)
                   for i, cm in enumerate(cms)])  # fmt: skip
    return U, target(U).double()[:, None]


__all__ = ["heatbath_ensemble", "regression_data"]
