"""What the dynamics tasks measure: energy errors of integrated trajectories, the errors of
learned dynamics along rollouts, and the built-in observables of sampled continuous fields.

- ``evolve``: the relative energy error (H(t) - H(0)) / |H(0)| of each trajectory, as its
  maximum, its mean over the first and over the last 10 % of the saved states (bounded for a
  symplectic integrator, drifting otherwise); means and standard errors over the trajectories.
- ``learn_dynamics``: the mean squared error of H_true along the learned rollout and of the
  states against exact trajectories from the same initial states, per test trajectory.
- field ``sample``: the catalogue's observables of the field family (series of shape
  (measurements, chains) of one temperature -> binning or jackknife estimates), and the P702
  warning of chains that sampled different states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue.dynamics import RolloutOptions
from physml_lang.compiler.models.phase_space import PhaseSpaceModel
from physml_lang.diagnostics import Diagnostic
from physml_lang.runtime.plans.dynamics import FieldPlan

from ..statistics import Estimate, binning_analysis, excess_limit, jackknife
from ..tasks import RunState
from .data import reference_trajectories
from .integrators import Trajectory
from .learners import SympNet, momentum_drift, rollout
from .plots import Curve

Tensor = torch.Tensor


def independent_mean(x: np.ndarray) -> dict[str, float]:
    """Mean and standard error over independent trajectories or chains (0 for one)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "stderr": se}


# ---------------------------------------------------------------- integrated trajectories


def energy_errors(tr: Trajectory) -> dict[str, Any]:
    """The energy-error columns of an ``evolve`` row from trajectories (T saved states, B
    trajectories): the number of trajectories, max |dE/E|, and the mean |dE/E| over the last
    and the first tenth of the run (the first state, exact, left out)."""
    err = tr.energy_error.detach().cpu().numpy()  # (T, B)
    tail = max(1, err.shape[0] // 10)
    return {"trajectories": int(err.shape[1]),
            "max_rel_energy_error": independent_mean(np.abs(err).max(0)),
            "final_energy_drift": independent_mean(np.abs(err[-tail:]).mean(0)),
            "early_energy_error": independent_mean(np.abs(err[1: 1 + tail]).mean(0))}  # fmt: skip


# ---------------------------------------------------------------- learned dynamics


@dataclass
class RolloutEvaluation:
    """A learner rolled out from the test states against the exact trajectories: ``errors``
    (energy MSE of H_true and state MSE per test trajectory, means and standard errors; how
    many rollouts diverged), the rollout's ``steps``, ``dt`` and ``integrator``, and the curves
    of test trajectory 0 for the figure (``curve`` learned, ``exact``)."""

    errors: dict[str, Any]
    steps: int
    dt: float
    integrator: str
    curve: Curve
    exact: Curve


def evaluate_rollouts(model: torch.nn.Module, cm: PhaseSpaceModel, ro: RolloutOptions,
                      data_dt: float, q0: Tensor, p0: Tensor) -> RolloutEvaluation:  # fmt: skip
    """Roll the learned dynamics out from (B, n) initial states q0, p0 (CPU) to
    ``ro.horizon``: a SympNet by iterating its map of the data's time step ``data_dt``, a
    vector field with ``ro.steps`` steps of ``ro.integrator`` (learners' defaults when None);
    the exact trajectories with 10 substeps per rollout step."""
    if isinstance(model, SympNet):
        steps, dt, integrator = max(1, round(ro.horizon / data_dt)), data_dt, None
    else:
        steps, dt, integrator = ro.steps, ro.horizon / ro.steps, ro.integrator
    H = cm.system.hamiltonian
    qt, pt, _ = reference_trajectories(cm, q0, p0, steps * dt, steps + 1, 10)  # (B, T, n)
    device = next(model.parameters()).device
    tr = rollout(model, q0.to(device), p0.to(device), dt, steps, energy=H,
                 integrator=integrator)  # fmt: skip
    with torch.no_grad():
        E_true = H(qt, pt).cpu().numpy()  # (B, T)
    E_pred = tr.energy.T.detach().cpu().numpy()
    q_pred, p_pred = tr.q.transpose(0, 1).cpu().numpy(), tr.p.transpose(0, 1).cpu().numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged rollout: inf or NaN
        e_mse = ((E_pred - E_true) ** 2).mean(1)
        s_mse = ((q_pred - qt.numpy()) ** 2 + (p_pred - pt.numpy()) ** 2).mean((1, 2))
    # a rollout that diverged (inf or NaN along the way) is counted, and left out of the means
    finite = np.isfinite(E_pred).all(1) & np.isfinite(e_mse) & np.isfinite(s_mse)
    errors = {"rollout_energy_mse": _mean_of(e_mse[finite]),
              "rollout_state_mse": _mean_of(s_mse[finite]),
              "diverged": int((~finite).sum())}  # fmt: skip
    if len(cm.shape) == 2:  # N bodies in D dimensions: the drift of the total momentum
        drift = momentum_drift(tr.p.detach(), cm.shape[1]).cpu().numpy()
        errors["rollout_momentum_drift"] = _mean_of(drift[finite])
    curve = (tr.t.cpu().numpy(), E_pred[0], tr.q[:, 0, 0].cpu().numpy(),
             tr.p[:, 0, 0].cpu().numpy())  # fmt: skip
    exact = (np.linspace(0, steps * dt, steps + 1), E_true[0], qt[0, :, 0].numpy(),
             pt[0, :, 0].numpy())  # fmt: skip
    return RolloutEvaluation(errors, steps, dt, tr.integrator, curve, exact)


def _mean_of(x: np.ndarray) -> dict[str, float]:
    """independent_mean, undefined (NaN: null on disk) when every rollout diverged."""
    return independent_mean(x) if len(x) else {"mean": math.nan, "stderr": math.nan}


# ---------------------------------------------------------------- continuous fields
# The implementations of the catalogue's observable entries of the field family:
# (series name -> (T, chains) of one temperature, volume V, beta) -> estimate.


def _action_density(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["action_density"])


def _magnetization(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["magnetization"])


def _abs_magnetization(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["abs_magnetization"])


def _m2(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    e = binning_analysis(s["m2"])
    return Estimate(V * e.mean, V * e.stderr, e.tau_int)


def _specific_heat(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    """beta^2 var(S) / V = beta^2 V (<a^2> - <a>^2), a = S / V."""
    a = s["action_density"]
    return jackknife(lambda a2, a1: beta * beta * V * (a2 - a1 * a1), [a * a, a])


def _susceptibility(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return jackknife(lambda m2, m: beta * V * (m2 - m * m), [s["m2"], s["abs_magnetization"]])


def _binder(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return jackknife(lambda m4, m2: 1 - m4 / (3 * m2 * m2), [s["m4"], s["m2"]])


def _helicity_modulus(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    """Upsilon = (1 / d V) sum_mu [<S''_mu> - beta (<S'_mu^2> - <S'_mu>^2)] over the d axes
    (S'_mu, S''_mu: derivatives of S by a twist of the angles along mu)."""
    d = sum(1 for n in s if n.startswith("twist1_"))
    inputs = []
    for mu in range(d):
        d1 = s[f"twist1_{mu}"]
        inputs += [s[f"twist2_{mu}"], d1 * d1, d1]

    def upsilon(*means: float) -> float:
        total = sum(means[3 * mu] - beta * (means[3 * mu + 1] - means[3 * mu + 2] ** 2)
                    for mu in range(d))  # fmt: skip
        return total / (d * V)

    return jackknife(upsilon, inputs)


OBSERVABLES = {"action_density": _action_density, "magnetization": _magnetization,
               "abs_magnetization": _abs_magnetization, "m2": _m2,
               "specific_heat": _specific_heat, "susceptibility": _susceptibility,
               "binder": _binder, "helicity_modulus": _helicity_modulus}  # fmt: skip


def unmixed(rows: list[dict], plan: FieldPlan, run: RunState) -> list[dict]:
    """P702 for every row whose chains sampled different states: the spread of their mean
    actions exceeds what the binning error admits, or their split R-hat exceeds 1.2 (trapped
    vortices or windings after a random start at low T, or a run shorter than the
    autocorrelation time)."""
    out, C = [], plan.options.chains
    names = [plan.tvar] + [s.name for s in plan.others]
    if plan.options.start == "random":
        hint = ("the chains are trapped in different states (vortices, windings after a random "
                "start at low T) or the run is shorter than the autocorrelation time: "
                "start = ordered at low T, or add sweeps or burn_in")  # fmt: skip
    else:
        hint = ("the run is shorter than the autocorrelation time, or the burn-in too short to "
                "forget the ordered start at high T: add burn_in or sweeps")  # fmt: skip
    for row in rows:
        ratio, rhat = row.get("chain_excess", float("nan")), row.get("r_hat", float("nan"))
        if C < 4 or not (ratio > excess_limit(C) or rhat > 1.2):
            continue
        at = ", ".join(f"{k} = {row[k]:g}" if isinstance(row[k], float) else f"{k} = {row[k]}"
                       for k in row if k in names)  # fmt: skip
        where = f" at {at}" if at else ""
        d = Diagnostic("P702", f"chains disagree{where}: split R-hat of the action {rhat:.3f}, "
                       f"their mean actions scatter {ratio:.1f}x the binning error; the error "
                       "bars there come from the spread between chains", run.span, hint,
                       severity="warning")  # fmt: skip
        out.append(d.as_dict())
    return out


__all__ = ["OBSERVABLES", "RolloutEvaluation", "energy_errors", "evaluate_rollouts",
           "independent_mean", "unmixed"]  # fmt: skip
