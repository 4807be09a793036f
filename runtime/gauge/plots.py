"""What the gauge tasks write besides their rows: the scan plot and the measurement history of a
sampling run, and the generalisation table and plot of a regression run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from physml_lang.ir.walk import to_text

from .. import outputs
from ..references.labels import axis_label, quantity_of
from ..tasks import RunState


def _figure_bytes(fig, dpi: int) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_outputs(out: Path, summary: dict, run: RunState,
                   series: dict[str, np.ndarray]) -> list[Path]:  # fmt: skip
    """plot.png (the measures along the first scan, when the scan has several points, each
    row's exact torus value joined where the 2D Wilson action has one) and history.png (the
    last point's measurement series of chain 0; series (n_meas, chains))."""
    files: list[Path] = []
    names = [m.name for m in run.measures] or ["plaquette"]
    if len(summary["rows"]) > 1 and run.scans:
        x = run.scans[0].name
        exprs = {m.name: to_text(m.expr) if m.expr is not None else None for m in run.measures}
        f = outputs.plot_rows(out, summary["rows"], x, names, None, "plot.png",
                              f"{summary['model']} ({run.name})",
                              labels={n: axis_label(n, exprs.get(n)) for n in [x, *names]},
                              row_references=exact_columns(names, exprs))  # fmt: skip
        if f:
            files.append(f)
    files.append(history_plot(out, series, run.name))
    return files


# quantity -> (the row column torus_references writes, its legend entry)
_EXACT = {"plaquette": ("plaquette_exact", "exact (finite torus)"),
          "topological_charge_squared": ("Q2_exact", "exact (finite torus)")}  # fmt: skip


def exact_columns(names: list[str], expressions: dict[str, str | None]
                  ) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Which measures the rows' exact columns (``plaquette_exact``, ``Q2_exact``) are for."""
    kinds = {n: quantity_of(n, expressions.get(n)) for n in names}
    return {n: _EXACT[k] for n, k in kinds.items() if k in _EXACT}


def history_plot(out: Path, series: dict[str, np.ndarray], title: str) -> Path:
    """history.png: each measure's series (n_meas, chains) of chain 0, one panel each."""
    plt = _pyplot()
    n = max(1, len(series))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], series.items()):
        ax.plot(s[:, 0], lw=0.6)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("measurement (chain 0)")
    fig.suptitle(title)
    fig.tight_layout()
    path = out / "history.png"
    outputs._atomic_write(path, _figure_bytes(fig, 100))
    return path


def regress_outputs(out: Path, summary: dict) -> list[Path]:
    """table.md and generalisation.png: every learner's relative RMSE (RMSE / std of the
    target) at every test lattice size, the training size marked."""
    plt = _pyplot()
    rows = summary["rows"]
    names = list(dict.fromkeys(r["learner"] for r in rows))
    sizes = sorted({r["L"] for r in rows})
    lines = [f"target: {summary['target']}, trained on L = {summary['train_L'][0]}",
             "relative RMSE (RMSE / std of the target on the test set)", "",
             "| learner | " + " | ".join(f"L = {L}" for L in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for n in names:
        rs = {r["L"]: r for r in rows if r["learner"] == n}
        lines.append(f"| {n} ({rs[sizes[0]]['kind']}) | " +
                     " | ".join(f"{rs[L]['relative_rmse']:.3f}" for L in sizes) + " |")  # fmt: skip
        ax.plot(sizes, [rs[L]["relative_rmse"] for L in sizes], "o-",
                label=f"{n} ({rs[sizes[0]]['kind']})")  # fmt: skip
    ax.axvline(summary["train_L"][0], color="gray", ls="--", lw=1)
    ax.set_xlabel("L (test lattice)")
    ax.set_ylabel("relative RMSE")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"{summary['target']}: trained on L = {summary['train_L'][0]}")
    fig.tight_layout()
    outputs._atomic_write(out / "generalisation.png", _figure_bytes(fig, 110))
    outputs._atomic_write(out / "table.md", ("\n".join(lines) + "\n").encode())
    return [out / "generalisation.png", out / "table.md"]


__all__ = ["history_plot", "regress_outputs", "sample_outputs"]
