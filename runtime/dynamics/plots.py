"""Figures of the dynamics tasks, written atomically as PNG (Agg, no display).

- ``energy_error.png`` (``evolve``): max over trajectories of |H(t) - H(0)| / |H(0)| against t,
  log-log, one curve per integrator;
- ``rollout.png`` (``learn_dynamics``): H_true along each learner's rollout of test trajectory 0
  and its phase portrait, with the exact trajectory;
- ``plot.png`` ... (field ``sample``): measures against the scanned variable, the helicity
  modulus of a 2D model with the BKT line Upsilon = 2T / pi.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from physml_lang.runtime.plans.dynamics import FieldPlan
from physml_lang.runtime.plans.sample import THERMAL

from .. import outputs
from ..references.labels import axis_label
from ..tasks import RunState

# One learner's curve of test trajectory 0: times (T,), H_true along the rollout (T,), and the
# first coordinate q[0], p[0] (T,) for the phase portrait.
Curve = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _savefig(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    outputs._atomic_write(path, buf.getvalue())
    return path


def energy_error_plot(out: Path, integrators: list[str], model: str) -> Path:
    """From the trajectories ``evolve`` wrote (``trajectory_<integrator>.npz`` in ``out``, so
    that a resumed run draws those integrated before the resume too)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in integrators:
        with np.load(out / f"trajectory_{name}.npz", allow_pickle=False) as f:
            t, err = f["t"], np.abs(f["energy_error"]).max(1)
        ax.plot(t[1:], np.maximum(err[1:], 1e-17), lw=0.8, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("max |H(t) - H(0)| / |H(0)|")
    ax.set_title(f"{model}: energy error")
    ax.legend()
    fig.tight_layout()
    return _savefig(fig, out / "energy_error.png")


def rollout_plot(out: Path, curves: dict[str, Curve], exact: Curve, model: str,
                 q_label: str, p_label: str) -> Path:  # fmt: skip
    """``curves``: learner -> its :data:`Curve`; ``exact``: the true trajectory's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, (t, E, q, p) in [*curves.items(), ("_true", exact)]:
        label = "exact" if name == "_true" else name
        style = {"color": "k", "lw": 1.5, "ls": "--"} if name == "_true" else {"lw": 1}
        ax1.plot(t, E, label=label, **style)
        ax2.plot(q, p, label=label, **style)
    ax1.set_xlabel("t")
    ax1.set_ylabel("H_true along the rollout")
    ax1.set_title(f"{model}: energy (test trajectory 0)")
    ax2.set_xlabel(q_label)
    ax2.set_ylabel(p_label)
    ax2.set_title("phase portrait")
    ax1.legend()
    fig.tight_layout()
    return _savefig(fig, out / "rollout.png")


def field_plots(out: Path, run: RunState, plan: FieldPlan, summary: dict,
                dim: int) -> list[Path]:  # fmt: skip
    """``plot`` statements (or every measure against the scanned variable); the helicity
    modulus of a 2D model is drawn with the BKT line Upsilon = 2T / pi."""
    rows, title = summary["rows"], f"{summary['model']}: {run.sampler} ({run.name})"
    scanned = [n for n in [plan.tvar if plan.thermal else None, *(s.name for s in plan.others)]
               if n is not None and len({repr(r.get(n)) for r in rows}) > 1]  # fmt: skip
    default_x = scanned[0] if scanned else None
    plots = [(p.x or default_x, list(p.observables) or [m.name for m in plan.measures],
              list(p.marks), p.logx, p.logy) for p in run.plots] or \
        [(default_x, [m.name for m in plan.measures], [], False, False)]  # fmt: skip
    files = []
    for i, (x, names, marks, logx, logy) in enumerate(plots):
        if x is None:
            continue
        guides = {}
        if dim == 2 and x in THERMAL:
            guides["helicity_modulus"] = ((lambda T: 2 * T / math.pi) if x == "T" else
                                          (lambda b: 2 / (math.pi * b)), "2T/π (BKT)")  # fmt: skip
        unit = "J" if "J" in summary.get("params", {}) else None
        f = outputs.plot_rows(out, rows, x, names, marks, f"plot{i if i else ''}.png", title,
                              logx, logy, guides,
                              labels={n: axis_label(n, energy_unit=unit) for n in [x, *names]})
        if f is not None:
            files.append(f)
    return files


__all__ = ["Curve", "energy_error_plot", "field_plots", "rollout_plot"]
