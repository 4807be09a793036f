"""The figures of quantum runs: a vmc point's convergence (energy against iteration, and its
relative error to the reference or the variance of E_loc) and a scan's rows against its first
variable."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .. import outputs
from ..references.labels import axis_label
from ..tasks import RunState


def scan_plot(out: Path | None, run: RunState, summary: dict, task: str) -> list[Path]:
    """The rows of a scan against its first variable (no plot without an output folder or a
    scan): every column with an error bar, the reference energy of each row (exact
    diagonalisation, or a given value) joined on the energy panel."""
    if out is None or not run.scans:
        return []
    rows, x = summary["rows"], run.scans[0].name
    names = [k for k, v in rows[0].items() if isinstance(v, dict)]
    how = next((r.get("reference") for r in rows if isinstance(r.get("exact_energy"), float)),
               None)  # fmt: skip
    label = "exact diagonalisation" if str(how).startswith("exact") else "reference energy"
    exact = {"energy": ("exact_energy", label)}
    f = outputs.plot_rows(out, rows, x, names, None, "plot.png",
                          f"{summary['model']} ({run.name}), {task}",
                          labels={n: axis_label(n) for n in [x, *names]},
                          row_references=exact if how is not None else None)  # fmt: skip
    return [f] if f else []


def convergence_plot(out: Path, history: dict, exact: float | None, name: str,
                     title: str) -> Path | None:  # fmt: skip
    """Energy (with its error band) per iteration, and |E - E0| / |E0| when the exact energy
    is known, else the variance of E_loc; None for fewer than two iterations."""
    if len(history.get("energy", [])) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = np.arange(len(history["energy"]))
    e = np.asarray(history["energy"])
    err = np.asarray(history.get("energy_stderr", np.zeros_like(e)))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(it, e, lw=1, label="E (VMC) ± stderr")
    axes[0].fill_between(it, e - err, e + err, alpha=0.3)
    if exact is not None:
        axes[0].axhline(exact, color="tab:red", ls="--", lw=1, label=f"reference E0 = {exact:.6f}")
        rel = np.abs(e - exact) / abs(exact)
        axes[1].semilogy(it, np.maximum(rel, 1e-12), lw=1)
        axes[1].set_ylabel("|E - E0| / |E0|")
    else:
        axes[1].semilogy(it, np.maximum(np.asarray(history.get("variance", e * 0)), 1e-12), lw=1)
        axes[1].set_ylabel("variance of E_loc")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("energy E")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    path = out / name
    outputs._atomic_write(path, buf.getvalue())
    return path


__all__ = ["convergence_plot", "scan_plot"]
