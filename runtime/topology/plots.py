"""The pictures of a topology or images run: accuracy per invariant class for each learner
(``accuracy_per_class.png``: training classes and held-out ones, the 99 % target marked) and
accuracy per test condition (``accuracy_per_condition.png``), with the reliability diagram of
the noisy test (``calibration.png``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


def _figure(width: float = 6.5, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    """Atomically: a half-written PNG never replaces a whole one."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return path


def _bars(ax, groups: list[str], learners: list[str], value) -> None:
    width = 0.8 / max(len(learners), 1)
    x = np.arange(len(groups))
    for j, name in enumerate(learners):
        ys = [value(name, g) for g in groups]
        ax.bar(x + (j - (len(learners) - 1) / 2) * width,
               [np.nan if y is None else y for y in ys], width, label=name)  # fmt: skip
        for xi, y in zip(x, ys, strict=True):
            if y is None:
                ax.text(xi + (j - (len(learners) - 1) / 2) * width, 0.02, "n/a", ha="center",
                        rotation=90, fontsize=8)  # fmt: skip
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")


def topology_plot(out: Path, summary: dict) -> Path:
    """Accuracy per invariant class, each learner; held-out classes hatched by the axis label."""
    rows = [r for r in summary["rows"] if r["label"] != "all"]
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    labels = sorted({int(r["label"]) for r in rows})
    acc = {(r["learner"], int(r["label"])): r["accuracy"] for r in rows}
    split = {int(r["label"]): r["split"] for r in rows}
    fig = _figure()
    ax = fig.add_subplot()
    groups = [f"{w}\n({split[w]})" for w in labels]
    _bars(ax, groups, learners, lambda n, g: acc.get((n, labels[groups.index(g)])))
    ax.axhline(0.99, color="k", ls="--", lw=0.8, label="99 % target")
    ax.set_xlabel(f"{summary['method']['name']} number (split)")
    ax.set_title(f"{summary['method']['name']}: accuracy per class")
    ax.legend(fontsize=8)
    return _save(fig, out / "accuracy_per_class.png")


def images_plot(out: Path, summary: dict) -> Path:
    """Accuracy per test condition, each learner (n/a: the net cannot take that input)."""
    rows = summary["rows"]
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    acc = {(r["learner"], r["condition"]): r["accuracy"] for r in rows}
    fig = _figure()
    ax = fig.add_subplot()
    _bars(ax, conditions, learners, lambda n, c: acc.get((n, c)))
    ax.set_xlabel("test condition")
    ax.set_title("impurity located: accuracy per condition")
    ax.legend(fontsize=8)
    return _save(fig, out / "accuracy_per_condition.png")


def calibration_plot(out: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin (noisy test)."""
    fig = _figure(4.5, 4.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for name, (conf, acc) in curves.items():
        ax.plot(conf, acc, "o-", label=name)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("calibration on the noisy test")
    ax.legend(fontsize=8)
    return _save(fig, out / "calibration.png")


__all__ = ["calibration_plot", "images_plot", "topology_plot"]
