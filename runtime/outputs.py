"""Results on disk: ``summary.json``, ``results.csv`` and PNG plots, written atomically.

A row is ``{<scan variable>: value, ..., <observable>: {"mean", "stderr", "tau_int"}, ...}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class MarkLike(Protocol):
    """A labelled vertical line (runtime.references.Mark)."""

    x: float
    label: str


class CurveLike(Protocol):
    """A curve of one observable (runtime.references.ReferenceCurve)."""

    observable: str
    x: Sequence[float]
    y: Sequence[float]
    label: str


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(x: Any) -> Any:
    """JSON has no NaN: write null for undefined statistics."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def write_summary(out: Path, summary: dict) -> None:
    """``results.csv`` then ``summary.json``, each atomically, from the same rows: a kill
    between the two leaves the CSV at most one point ahead, never the summary."""
    _atomic_write(out / "results.csv", rows_to_csv(summary.get("rows", [])).encode())
    _atomic_write(out / "summary.json", json.dumps(_clean(summary), indent=2).encode())


def rows_to_csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        for k, v in row.items():
            names = (
                [f"{k}_{s}" for s in ("mean", "stderr", "tau_int")] if isinstance(v, dict) else [k]
            )
            for n in names:
                if n not in columns:
                    columns.append(n)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    for row in rows:
        flat = {}
        for k, v in row.items():
            if isinstance(v, dict):
                for s in ("mean", "stderr", "tau_int"):
                    flat[f"{k}_{s}"] = v.get(s)
            else:
                flat[k] = v
        w.writerow(flat)
    return buf.getvalue()


def plot_rows(
    out: Path,
    rows: list[dict],
    x: str,
    observables: list[str],
    marks: Sequence[float | MarkLike] | None = None,
    filename: str = "plot.png",
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    guides: dict[str, tuple[Callable[[float], float], str]] | None = None,
    *,
    references: Sequence[CurveLike] = (),
    labels: Mapping[str, str] | None = None,
    row_references: Mapping[str, tuple[str, str]] | None = None,
) -> Path | None:
    """``out/filename``: the figure of :func:`figure_rows` (None for fewer than two points)."""
    fig = figure_rows(rows, x, observables, marks, title, logx, logy, guides,
                      references=references, labels=labels, row_references=row_references)
    return None if fig is None else save_figure(fig, out / filename)


def figure_rows(
    rows: list[dict],
    x: str,
    observables: list[str],
    marks: Sequence[float | MarkLike] | None = None,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    guides: dict[str, tuple[Callable[[float], float], str]] | None = None,
    *,
    references: Sequence[CurveLike] = (),
    labels: Mapping[str, str] | None = None,
    row_references: Mapping[str, tuple[str, str]] | None = None,
):
    """One panel per observable against ``x``, with standard-error bars, and, with a legend:
    ``marks`` (x values, or marks with ``x`` and ``label``) as vertical lines; for the
    observables in ``guides`` (name -> (function of x, label)) a dashed curve; ``references``
    (curves with ``observable``, ``x``, ``y``, ``label``) as solid lines; ``row_references``
    (observable -> (column of the rows holding its exact value, label)) as crosses joined at
    the rows' x. ``labels``: axis labels by name (x and observables; default the name)."""
    pts = [r for r in rows if x in r]
    if len(pts) < 2 or not observables:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or {}
    n = len(observables)
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrows))
    FigureCanvasAgg(fig)
    xs = [r[x] for r in pts]
    for i, name in enumerate(observables):
        ax = fig.add_subplot(nrows, cols, i + 1)
        values = [r.get(name) if isinstance(r.get(name), dict) else {} for r in pts]
        ys = [float("nan") if v.get("mean") is None else v["mean"] for v in values]
        es = [0.0 if v.get("stderr") is None or not math.isfinite(v["stderr"]) else v["stderr"]
              for v in values]  # fmt: skip
        ax.errorbar(xs, ys, yerr=es, fmt="o-", ms=3, capsize=2, lw=1, label="measured ± stderr",
                    zorder=3)  # fmt: skip
        labelled = _overlays(ax, name, pts, xs, guides, references, row_references)
        for m in marks or []:
            at, label = (m.x, m.label) if hasattr(m, "x") else (float(m), f"{x} = {m:g}")
            ax.axvline(at, color="tab:red", ls="--", lw=1, label=label)
            labelled = True
        if labelled:
            ax.legend(fontsize=7)
        ax.set_xlabel(labels.get(x, x))
        ax.set_ylabel(labels.get(name, name))
        if labels.get(name, name) != name:
            ax.set_title(name, fontsize=9)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _overlays(ax, name: str, pts: list[dict], xs: list, guides, references, row_references
              ) -> bool:  # fmt: skip
    """Draw the guide, reference curves and per-row exact values of ``name``; whether any."""
    drawn = False
    if guides and name in guides:
        f, label = guides[name]
        grid = np.linspace(min(xs), max(xs), 100)
        ax.plot(grid, [f(v) for v in grid], "k--", lw=1, label=label)
        drawn = True
    for c in references:
        if c.observable == name:
            ax.plot(c.x, c.y, "-", color="k", lw=1.2, label=c.label, zorder=2)
            drawn = True
    if row_references and name in row_references:
        column, label = row_references[name]
        exact = [(v, r[column]) for v, r in zip(xs, pts)
                 if isinstance(r.get(column), int | float)]  # fmt: skip
        if exact:
            ax.plot(*zip(*exact), "x-", color="k", lw=1, ms=6, label=label, zorder=2)
            drawn = True
    return drawn


def save_figure(fig, path: Path) -> Path:
    """A matplotlib figure as a PNG, atomically (a half-written plot never replaces a whole
    one), its folder made if need be."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _atomic_write(path, buf.getvalue())
    return path
