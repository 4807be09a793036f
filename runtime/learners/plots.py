"""Figures and files of learner runs: the plots a run block asks for, training curves, grids of
generated configurations, and the per-unit moments of Gibbs sample runs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from physml_lang.compiler.instance import RealData

from .. import outputs
from ..tasks import RunState


def run_plots(out: Path, run: RunState, summary: dict, default: list[str],
              default_x: str) -> list[Path]:  # fmt: skip
    """The run's ``plot`` statements (or one plot of ``default`` against ``default_x``) of
    its rows, as plot.png, plot1.png, ..."""
    files = []
    rows = summary["rows"]
    title = f"{summary['model']} ({run.name})"
    plots = run.plots or [None]
    for i, p in enumerate(plots):
        names = (list(p.observables) if p else []) or [m.name for m in run.measures] or default
        names = [n for n in names if any(n in r for r in rows)]
        x = (p.x if p and p.x else None) or default_x
        f = outputs.plot_rows(out, rows, x, names, p.marks if p else None,
                              f"plot{i if i else ''}.png", title, p.logx if p else False,
                              p.logy if p else False)  # fmt: skip
        if f:
            files.append(f)
    return files


def scan_plot(out: Path, run: RunState, summary: dict) -> list[Path]:
    """The measures of a train run against its scan variable (plot.png; more than one row)."""
    if len(summary["rows"]) < 2:
        return []
    x = run.scans[0].name if run.scans else "epochs"
    names = [m.name for m in run.measures] or ["loss"]
    first = run.plots[0] if run.plots else None
    f = outputs.plot_rows(out, summary["rows"], x, names, first.marks if first else None,
                          "plot.png", summary["model"], first.logx if first else False,
                          first.logy if first else False)  # fmt: skip
    return [f] if f else []


def history_plot(out: Path, summary: dict) -> list[Path]:
    """The training loss against the epoch, one curve per scan point (at most six),
    training.png."""
    rows = []
    for k, hist in enumerate(summary["history"]):
        for h in hist:
            rows.append({"epoch": h["epoch"], f"loss_{k}": {"mean": h["loss"], "stderr": 0.0}})
    names = sorted({n for r in rows for n in r if n != "epoch"})
    if not names:
        return []
    f = outputs.plot_rows(out, rows, "epoch", names[:6], None, "training.png",
                          f"{summary['model']}: training loss")  # fmt: skip
    return [f] if f else []


def sample_grid(path: Path, samples: torch.Tensor, data: RealData) -> Path | None:
    """A PNG grid of (at most 64) generated configurations (chains, n), each shaped like an
    example of the data (or square); None where neither shape fits."""
    shape = data.values.shape[1:]
    n = samples.shape[1]
    if len(shape) != 2:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            return None
        shape = (side, side)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(64, samples.shape[0])
    cols = int(math.ceil(math.sqrt(k)))
    rows = int(math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8), squeeze=False)
    imgs = samples[:k].reshape(k, *shape).cpu().numpy()
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, imgs):
        ax.imshow(img, cmap="gray_r", interpolation="nearest")
    fig.tight_layout(pad=0.1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    outputs._atomic_write(path, buf.getvalue())
    return path


def write_moments(out: Path, moments: dict[str, np.ndarray]) -> Path:
    """The per-unit moments of a Gibbs sample run, moments.npz (written atomically)."""
    buf = io.BytesIO()
    np.savez(buf, **moments)
    outputs._atomic_write(out / "moments.npz", buf.getvalue())
    return out / "moments.npz"
