"""The pictures of a landscape run, beside its summary: density snapshots over time
(``density_*.png``), the weights of the levels against the time-dependent softmax
(``softmax_*.png``), the walkers' histogram on exp(-f/D)/Z (``walkers.png``), the DMC energy
against dtau with its extrapolation (``dmc_energy.png``) and its population
(``dmc_population.png``), the optimisers' best value against evaluations
(``annealing_trace.png``) and their success rates (``success_rates.md``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..outputs import save_figure
from .schrodinger import plot_densities


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig



def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def draw(out: Path, plan, summary: dict, artefacts: list) -> list[Path]:
    files: list[Path] = []
    many = len({a.point for a in artefacts}) > 1
    for a in artefacts:
        suffix = f"_{a.point}" if many else ""
        if a.kind == "densities" and a.data:
            path = out / f"density_{_slug(a.label)}{suffix}.png"
            files.append(plot_densities(path, a.grid, a.data, member=a.member))
        elif a.kind == "softmax":
            files.append(softmax_plot(out / f"softmax_{_slug(a.label)}{suffix}.png", a.data))
        elif a.kind == "walkers":
            files.append(histogram_plot(out / f"walkers{suffix}.png", a.data, a.label))
    traces = [a for a in artefacts if a.kind == "trace"]
    if traces:
        target = plan.optimise.target if plan.optimise is not None else None
        files.append(trace_plot(out / "annealing_trace.png", traces, target))
        files.append(success_table(out / "success_rates.md", plan, summary))
    dmc = [a for a in artefacts if a.kind == "dmc"]
    if dmc:
        files.append(population_plot(out / "dmc_population.png", dmc))
        if any(r.get("extrapolated") for r in summary["rows"]):
            files.append(dtau_plot(out / "dmc_energy.png", summary))
    return files


def softmax_plot(path: Path, data: dict[str, Any]) -> Path:
    """P_k(tau) of the evolved superposition (markers) on exp(-E_k tau) / sum_j exp(-E_j tau)
    (lines): the seed's eq. (23)."""
    fig = _figure()
    ax = fig.add_subplot()
    tau = np.asarray(data["tau"])
    w, s = np.asarray(data["weights"]), np.asarray(data["softmax"])
    fine = np.linspace(0, tau.max(), 200)
    E = np.asarray(data["energies"])
    z = np.exp(-np.outer(fine, E - E.min()))
    curves = z / z.sum(1, keepdims=True)
    for k in range(w.shape[1]):
        ax.plot(fine, curves[:, k], lw=1, color=f"C{k}")
        ax.plot(tau, w[:, k], "o", ms=4, color=f"C{k}", label=f"level {k}, E = {E[k]:.4g}")
    ax.set_xlabel("tau")
    ax.set_ylabel("P(E_k, tau)")
    ax.set_title(f"imaginary time vs softmax(-E tau): max |dP| = {np.abs(w - s).max():.1e}",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def histogram_plot(path: Path, data: dict[str, Any], label: str) -> Path:
    """The walkers' final positions against exp(-f/D)/Z (one coordinate)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(data["positions"], bins=60, density=True, alpha=0.5, label=f"walkers ({label})")
    ax.plot(data["x"], data["density"], "k-", lw=1, label="exp(-f/D) / Z")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def success_table(path: Path, plan, summary: dict) -> Path:
    """The optimise rows as a markdown table: success rate and evaluations per point."""
    scan = list(summary.get("scan", {}))
    head = [*scan, "method", "restarts", "best f", "success rate", "median evaluations"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        rate = r.get("success_rate")
        cells = [str(r.get(k)) for k in scan] + [
            r["method"], str(r["restarts"]), f"{r['best_f']:.4g}",
            "-" if rate is None else f"{rate['mean']:.2f} ± {rate['stderr']:.2f}",
            "-" if r.get("median_evaluations") is None else f"{r['median_evaluations']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def trace_plot(path: Path, traces: list, target: float | None = None) -> Path:
    """Best f above f* (the target where given, else the lowest value over the runs) against
    evaluations, every restart: on a log axis whatever the sign of f."""
    firsts = [float(row[1]) for a in traces for trace in a.data for row in trace]
    ref = target if target is not None else (min(firsts) if firsts else 0.0)
    fig = _figure()
    ax = fig.add_subplot()
    for a in traces:
        for r, trace in enumerate(a.data):
            if not trace:
                continue
            ev = [row[0] for row in trace]
            best = [max(float(row[1]) - ref, 1e-16) for row in trace]
            ax.plot(ev, best, lw=0.8, alpha=0.6, color=f"C{a.point % 10}",
                    label=a.label if r == 0 else None)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("objective evaluations")
    what = "the target f*" if target is not None else "the best over the runs"
    ax.set_ylabel(f"best f found - f* (f* = {ref:.6g}: {what}; floored at 1e-16)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def population_plot(path: Path, runs: list) -> Path:
    """The walker population and the reference energy of each DMC run over its steps."""
    fig = _figure(8, 3.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for k, a in enumerate(runs):
        left.plot(a.data["population"], lw=0.7, color=f"C{k % 10}", label=a.label)
        right.plot(a.data["e_ref"], lw=0.7, color=f"C{k % 10}")
    left.set_xlabel("step")
    left.set_ylabel("walkers")
    right.set_xlabel("step")
    right.set_ylabel("E_ref")
    left.legend(fontsize=7)
    return save_figure(fig, path)


def dtau_plot(path: Path, summary: dict) -> Path:
    """E against dtau (or 1/N for a list of populations) with error bars and the fit to 0."""
    fig = _figure()
    ax = fig.add_subplot()
    population = summary.get("extrapolation", {}).get("kind") == "walkers"
    name = "1/N" if population else "dtau"

    def x_of(r: dict) -> float:
        return 1.0 / r["walkers"] if population else r["dtau"]

    rows = [r for r in summary["rows"] if not r.get("extrapolated")]
    fits = summary.get("extrapolation", {}).get("fits", [])
    ax.errorbar([x_of(r) for r in rows], [r["energy"]["mean"] for r in rows],
                yerr=[r["energy"]["stderr"] or 0 for r in rows], fmt="o", capsize=2)  # fmt: skip
    for r in summary["rows"]:
        if r.get("extrapolated"):
            ax.errorbar([0.0], [r["energy"]["mean"]], yerr=[r["energy"]["stderr"]], fmt="s",
                        color="C3", capsize=2, label=f"{name} -> 0")  # fmt: skip
    for fit in fits:
        c = fit["coefficients"]
        xs = np.linspace(0, max(x_of(r) for r in rows), 50)
        ax.plot(xs, sum(ci * xs**i for i, ci in enumerate(c)), "k--", lw=1)
    ax.set_xlabel(name)
    ax.set_ylabel("E (mixed estimator)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


__all__ = ["draw", "dtau_plot", "population_plot", "softmax_plot", "trace_plot"]
