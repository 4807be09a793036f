"""Plots of a classify run (PNG, matplotlib Agg): P(ordered) against T per size with the
crossing and the exact T_c, T_c(L) against 1/L with the fits, PC1 and the confusion W."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..plans.phases import PhasesPlan  # noqa: E402

YLABEL = {"P": "P(ordered | T)", "PC1": "<|PC1|>  (~ <|m|>)", "accuracy": "held-out accuracy"}


def draw(out: Path, plan: PhasesPlan, summary: dict) -> list[Path]:
    """Draw every plot of the run into ``out``; the paths written."""
    files = []
    exact = plan.classify.exact
    for name, per_size in summary["curves"].items():
        key = "PC1" if name == "pca" else ("accuracy" if plan.method == "confusion" else "P")
        fig, ax = plt.subplots(figsize=(6, 4))
        for L, curve in per_size.items():
            ax.plot(curve["T"], curve[key], "o-", ms=3, label=f"L = {L}")
            if "majority" in curve:  # the trivial arms of the W: the majority guess
                ax.plot(curve["T"], curve["majority"], ":", color="grey", lw=1,
                        label=f"majority guess, L = {L}")  # fmt: skip
        mark = per_size[next(iter(per_size))].get("exact", exact) if " on " in name else exact
        if key == "P":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        if mark is not None:
            ax.axvline(mark, color="k", ls="--", lw=1, label=f"exact T_c = {mark:g}")
        ax.set_xlabel("T")
        ax.set_ylabel(YLABEL[key])
        ax.set_title(f"{summary['run']}: {name}")
        ax.legend(fontsize=8)
        files.append(_save(fig, out / f"{_slug(name)}_{key.lower()}.png"))
    sized = [r for r in summary["rows"] if r["kind"] == "size" and r.get("T_c") is not None]
    if sized:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in dict.fromkeys(r["learner"] for r in sized):
            rs = [r for r in sized if r["learner"] == name]
            inv = np.array([1.0 / r["L"] for r in rs])
            ax.errorbar(inv, [r["T_c"] for r in rs], yerr=[r.get("T_c_err") or 0 for r in rs],
                        fmt="o", capsize=3, label=f"{name}: T_c(L)")  # fmt: skip
            for f in (r for r in summary["rows"] if r["kind"] == "extrapolated"
                      and r["learner"] == name):  # fmt: skip
                x = np.linspace(0, inv.max() * 1.05, 50)
                a = _slope(rs, f)
                ax.plot(x, f["T_c"] + a * x ** (1 / f["nu"]), lw=1,
                        label=f"{name}, {f['fit']}: T_c = {f['T_c']:.4f} ± {f['T_c_err']:.4f}")
            for f in (r for r in summary["rows"] if r["kind"] in ("crossing", "collapse")
                      and r["learner"] == name and r.get("T_c") is not None
                      and (r["kind"] == "collapse" or r["pair"].count("-") > 1)):  # fmt: skip
                ax.axhline(f["T_c"], lw=1, ls=":" if f["kind"] == "crossing" else "-.",
                           label=f"{name}, {f['kind']}: T_c = {f['T_c']:.4f}"
                           f" ± {f.get('T_c_err') or 0:.4f}")  # fmt: skip
        if exact is not None:
            ax.axhline(exact, color="k", ls="--", lw=1, label=f"exact {exact:g}")
        ax.set_xlabel("1 / L")
        ax.set_ylabel("T_c(L)")
        ax.set_xlim(left=0)
        ax.legend(fontsize=7)
        files.append(_save(fig, out / "tc_vs_inverse_size.png"))
    return files


def _slope(rs: list[dict], f: dict) -> float:
    """The amplitude a of T_c(L) = T_c + a L^(-1/nu) given T_c and nu (least squares)."""
    x = np.array([r["L"] ** (-1 / f["nu"]) for r in rs])
    y = np.array([r["T_c"] for r in rs]) - f["T_c"]
    return float(x @ y / (x @ x))


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["draw"]
