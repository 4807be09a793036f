"""What the gauge tasks measure: the run's measured expressions on link tensors (``Observable``),
the implementations of the catalogue's gauge observables, a sampled point's row (binning errors,
acceptance, exact 2D references) and the regression target and test errors of ``regress``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.gauge import RunControls
from physml_lang.compiler.lower.gauge import Env
from physml_lang.compiler.lower.links import (
    mean_plaquette,
    polyakov_loops,
    topological_charge,
    wilson_loops,
)
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.gauge import GaugeModel
from physml_lang.diagnostics import Span
from physml_lang.ir import expr as E
from physml_lang.ir.walk import names_in

from ..plans.gauge import Measure, measures
from ..statistics import binning_analysis
from ..tasks import RunState
from .exact import torus_references

Tensor = torch.Tensor


class Observable(Measure):
    """A measured expression compiled to f(U, matter) -> (B,) float64: the plan's walk
    (runtime/plans/gauge.py) on link tensors U (B, L..., d, *group_shape) and matter fields
    (B, L...) of models with a LocalSampler."""

    def __init__(self, cm: GaugeModel, expr: E.Expr | None, name: str, span: Span | None):
        super().__init__(cm.derivation, expr, name, span)
        self.cm = cm
        self.uses_q = "topological_charge" in names_in(self.expr)  # the row adds exact <Q^2>

    def __call__(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        v = self.walk(self.expr, (U, matter or {}))
        if not isinstance(v, Tensor):
            v = torch.full((U.shape[0],), float(v), dtype=torch.float64, device=U.device)
        return v.double()

    def is_array(self, v: Any) -> bool:
        return isinstance(v, Tensor)

    def builtin(self, name: str, config: Any, args: tuple[int, ...]) -> Any:
        U, matter = config
        return CATALOGUE.observables.implementation(name, "gauge")(self, U, matter, *args)

    def definition(self, e: E.Expr, config: Any) -> Any:
        U, matter = config
        t = self.cm.evaluator(U, matter).evaluate(e, Env()).t
        return t.real if isinstance(t, Tensor) and t.is_complex() else t

    def function(self, f: str, v: Any) -> Any:
        dev = v.device if isinstance(v, Tensor) else "cpu"
        return TORCH.ops[f](torch.as_tensor(v, dtype=torch.float64, device=dev))


def observables(cm: GaugeModel, run: RunState) -> list[Observable]:
    """The run's measures (the plaquette when the run measures none) on the compiled model."""
    return [Observable(cm, m.expr, m.name, None) for m in measures(cm.derivation, run)]


# The gauge observable entries' implementations: (observable, U, matter, *loop sizes) -> (B,)
# values or a number; the observable carries the model. The plan checked where each is defined.


def measure_plaquette(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return mean_plaquette(U, obs.cm.group)


def measure_action(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return obs.cm.action(U, matter)


def measure_topological_charge(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return topological_charge(U)


def measure_polyakov_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).real


def measure_abs_polyakov_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).abs()


def measure_sites(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> float:
    return float(obs.cm.n_sites)


def measure_wilson_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor], R: int,
                        T: int) -> Tensor:  # fmt: skip
    """Measured by a call only, ``wilson_loop(R, T)``: the lattice mean of the R x T loops."""
    return wilson_loops(U, obs.cm.group, R, T).flatten(1).mean(1)


# catalogue name -> implementation (``energy`` is the action)
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "plaquette": measure_plaquette, "action": measure_action, "energy": measure_action,
    "topological_charge": measure_topological_charge, "polyakov_loop": measure_polyakov_loop,
    "abs_polyakov_loop": measure_abs_polyakov_loop, "sites": measure_sites,
    "wilson_loop": measure_wilson_loop,
}  # fmt: skip


def point_row(values: dict[str, Any], obs: list[Observable], series: dict[str, Tensor],
              n_meas: int, acceptance: Tensor, options: RunControls, cm: GaugeModel,
              scale: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """A sampled point's row: its scan values, every observable's mean with its binning error
    (series (n_meas, chains)), the mean acceptance over the measured sweeps (``acceptance``:
    per-chain sums (chains,)) and the exact 2D torus references where known."""
    row = dict(values)
    for o in obs:
        row[o.name] = binning_analysis(series[o.name][:n_meas].cpu().numpy()).as_dict()
    row["acceptance"] = round(float(acceptance.mean()) / max(1, n_meas * options.thin), 6)
    if cm.d == 2 and cm.is_wilson:
        (L1, L2), uses_q = cm.shape, any(o.uses_q for o in obs)
        row.update(torus_references(cm.group.name, float(cm.wilson_beta) * scale, L1, L2,
                                    uses_q))  # fmt: skip
    return row


# ---------------------------------------------------------------- regression


def regression_target(cm: GaugeModel, target: tuple[str, tuple[int, ...]]
                      ) -> Callable[[Tensor], Tensor]:  # fmt: skip
    """The plan's regression target (name, loop sizes) as f(U) -> (B,)."""
    name, sizes = target
    if name == "plaquette":
        return lambda U: mean_plaquette(U, cm.group)
    if name == "topological_charge_density":
        return lambda U: topological_charge(U) / math.prod(U.shape[1:3])
    R, T = sizes  # wilson_loop(R, T)
    return lambda U: wilson_loops(U, cm.group, R, T).flatten(1).mean(1)


def regression_rows(model: nn.Module, tests: dict[int, tuple[Tensor, Tensor]], learner: str,
                    kind: str, train_loss: float) -> list[dict[str, Any]]:  # fmt: skip
    """A trained learner's rows, one per test lattice size L (configurations U (n, L..., d,
    *group_shape), targets y (n, 1)): the mean squared error with its standard error, the
    relative RMSE (RMSE / std of the target) and the final training loss."""
    rows = []
    with torch.no_grad():
        for L, (U, y) in tests.items():
            err = (model(U).double() - y).flatten().cpu().numpy()
            std = float(y.std())
            se = err**2
            rel = float(math.sqrt(se.mean()) / std) if std > 0 else float("nan")
            rows.append({
                "learner": learner, "kind": kind, "L": L,
                "mse": {"mean": float(se.mean()),
                        "stderr": float(se.std(ddof=1) / math.sqrt(len(se)))},
                "relative_rmse": rel, "target_std": std, "train_loss": train_loss,
            })  # fmt: skip
    return rows


__all__ = ["IMPLEMENTATIONS", "Observable", "observables", "point_row", "regression_target",
           "regression_rows"]  # fmt: skip
