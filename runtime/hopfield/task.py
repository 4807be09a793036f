"""The tasks: The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines.

The ``phases`` task runs, for each (N, alpha) point, the chains of ``chains.PhaseChains``
(parallel tempering of two replicas from random starts, retrieval chains from pattern 1) over
``disorder`` pattern sets, writes one row per (N, alpha, T), and then locates

- T_g(alpha): the crossing of the spin-glass Binder cumulant g(T) of successive sizes N (and
  of the per-sample cumulant [g] and the scaled susceptibility N^(2/3) [<q^2>]);
- alpha_c(0): the crossing of the fraction of pattern sets retrieved at T = 0 (m > 0.9),
  P_N(alpha), of successive sizes N (and, reported beside it, of the mean overlap [m]);

with bootstrap errors over the disorder samples, against AGS: T_g = 1 + sqrt(alpha),
alpha_c(0) = 0.1379 (``ags``), drawn in ``phase_diagram.png`` with the AGS retrieval line.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..checkpoint import Checkpoint
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..plans.hopfield import PhasePoint, PhasesPlan, plan_phases
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import ags
from .analysis import (
    binder,
    binder_per_sample,
    binder_stderr,
    bootstrap_crossing,
    mean_stderr,
    scaled_susceptibility,
)
from .chains import Averages, PhaseChains
from .kernels import AVAILABLE, hebb_energy, overlaps

STEP_SWEEPS = 25  # sweeps per driver step (progress and checkpoint granularity)
RETRIEVED = 0.9  # a pattern set is retrieved when its chain's overlap m exceeds this (as recall)


def _patterns(program, run: RunState, plan: PhasesPlan, point: PhasePoint) -> tuple:
    """The compiled model of a point and its D pattern sets (D, P, N): the model's data realised
    with seed = seed, seed + 1, ... (one set, the model's own, with disorder = 1)."""
    checker = program.checker_for(run.ir)
    ir = checker.instantiate(point.args)
    cm = program.compile_ir(ir, dtype=torch.float64)
    decl = next(d for d in ir.data if d.name == plan.patterns)
    values = dict(ir.values)
    sets = []
    for d in range(plan.options.disorder):
        if plan.seed_param is not None:
            values[plan.seed_param] = ir.values[plan.seed_param] + d
        sets.append(program.data_loader(decl, values).values)
    xi = np.stack(sets)
    if plan.options.disorder > 1 and np.array_equal(xi[0], xi[1]):
        raise PhysmlError(Diagnostic(
            "P425", f"the patterns {plan.patterns} do not depend on the model parameter 'seed': "
            "every disorder sample would be the same", plan.patterns_span,
            "declare data xi: spin[P, N] = random(seed = seed)"))  # fmt: skip
    return cm, torch.as_tensor(xi, dtype=torch.float64)


def check_hebb_energy(cm, field: str, xi: torch.Tensor, plan: PhasesPlan, span) -> None:
    """The model's energy is the Hebb energy -(N/2) sum_mu m_mu^2 + P/2 of its patterns
    (a located P422 otherwise): 8 random configurations and the patterns, to 1e-9 relative."""
    P, N = xi.shape[-2:]
    g = torch.Generator().manual_seed(12345)
    s = torch.where(torch.rand(8, N, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    s = torch.cat([s, xi[:2].to(torch.float64)])
    shape = tuple(cm.lattice.shape)
    e_model = cm.energy({field: s.to(cm.dtype).reshape(len(s), *shape)}).double()
    m = overlaps(s, xi.transpose(0, 1).contiguous()[None], torch.zeros(len(s), dtype=torch.long))
    e_hebb = hebb_energy(m, N)
    if not torch.allclose(e_model, e_hebb, rtol=1e-9, atol=1e-9 * N):
        k = int((e_model - e_hebb).abs().argmax())
        raise PhysmlError(Diagnostic(
            "P422", f"a phases run needs the Hopfield energy E = -sum_{{i<j}} W_ij s_i s_j with "
            f"Hebb couplings of {plan.patterns}; this model's energy differs "
            f"({float(e_model[k]):.6g} against {float(e_hebb[k]):.6g})", span,
            "param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0 and energy "
            "E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)"))  # fmt: skip


class PhasesPoint(ScanPoint):
    """One (N, alpha) point: ``step`` runs STEP_SWEEPS sweeps of every chain; ``rows`` one row
    per temperature, disorder averages with standard errors."""

    def __init__(self, plan: PhasesPlan, point: PhasePoint, xi: torch.Tensor,
                 streams: RandomStreams, seed: int) -> None:  # fmt: skip
        self.plan, self.point, self.seed = plan, point, seed
        t = plan.tempering
        ladder = list(t.T) if point.tempering else []
        self.chains = PhaseChains(xi.to(streams.device), ladder, list(plan.options.retrieval),
                                  t.burn_in, streams, t.exchange_every)  # fmt: skip
        self.every = t.exchange_every
        self.total = math.ceil(t.sweeps / self.every) * self.every
        self.done = 0
        self.result: Averages | None = None

    def step(self) -> None:
        blocks = max(1, min(STEP_SWEEPS, self.total - self.done) // self.every)
        self.chains.advance(blocks)
        self.done += blocks * self.every

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.chains.tensors()

    def restore(self, saved: Checkpoint) -> None:
        self.chains.restore(saved.tensors)
        self.done = saved.state["done"]

    def rows(self) -> list[dict]:
        a = self.chains.averages()
        if not bool(torch.isfinite(a.q2).all() & torch.isfinite(a.m).all()):
            raise PhysmlError(Diagnostic("P700", "non-finite overlaps", self.plan.statement_span))
        self.result = a
        p, opts = self.point, self.plan.options
        ladder = list(self.plan.tempering.T) if p.tempering else []
        base = {**p.values, "N": p.N, "P": p.P, "alpha": p.P / p.N, "disorder": opts.disorder}
        rows: dict[float, dict] = {}
        if ladder:
            q2, q4 = a.q2.cpu().numpy(), a.q4.cpu().numpy()
            g, g_err = binder(q2, q4), binder_stderr(q2, q4, opts.bootstrap, self.seed)
            stats = {k: mean_stderr(getattr(a, k).cpu().numpy())
                     for k in ("q2", "q4", "q_abs", "energy")}  # fmt: skip
            acc = a.acceptance.cpu().numpy()
            gs = mean_stderr(0.5 * (3.0 - q4 / q2**2))
            for k, T in enumerate(ladder):
                row = {**base, "T": T}
                for name, s in stats.items():
                    row[name] = {"mean": float(s["mean"][k]), "stderr": float(s["stderr"][k])}
                row["binder"] = {"mean": float(g[k]), "stderr": float(g_err[k])}
                row["binder_per_sample"] = {"mean": float(gs["mean"][k]),
                                            "stderr": float(gs["stderr"][k])}  # fmt: skip
                row["chi_sg"] = {"mean": p.N * row["q2"]["mean"],
                                 "stderr": p.N * row["q2"]["stderr"]}  # fmt: skip
                if k < len(ladder) - 1:
                    row["exchange_acceptance"] = float(acc[k])
                rows[T] = row
        m = mean_stderr(a.m.cpu().numpy())
        f = mean_stderr((a.m > RETRIEVED).double().cpu().numpy())
        for j, T in enumerate(opts.retrieval):
            row = rows.setdefault(T, {**base, "T": T})
            row["m"] = {"mean": float(m["mean"][j]), "stderr": float(m["stderr"][j])}
            row["retrieved"] = {"mean": float(f["mean"][j]), "stderr": float(f["stderr"][j])}
        return [rows[T] for T in sorted(rows)]


def memory_need(plan: PhasesPlan) -> int:
    """Bytes of the largest point (float64): spins, overlaps, uniforms of a block and patterns
    (twice: the chains' gathered copy without numba)."""
    worst = 0
    K, Kr = len(plan.tempering.T), len(plan.options.retrieval)
    for p in plan.points:
        B = plan.options.disorder * ((2 * K if p.tempering else 0) + Kr)
        worst = max(worst, 8 * (B * p.N * (2 + plan.tempering.exchange_every) + B * p.P
                                + plan.options.disorder * p.P * p.N * 2
                                + (0 if AVAILABLE else B * p.N * p.P)))  # fmt: skip
    return worst


def locate(plan: PhasesPlan, results: list[tuple[PhasePoint, Averages]], seed: int) -> dict:
    """T_g(alpha) from Binder crossings and alpha_c(0) from m(alpha) crossings of successive
    sizes, with bootstrap errors, against the AGS values."""
    opts = plan.options
    out: dict = {"T_g": [], "alpha_c": []}
    ladder = np.array(plan.tempering.T)
    for alpha in opts.alpha:
        pts = sorted([(p, a) for p, a in results if p.tempering and p.alpha == alpha],
                     key=lambda x: x[0].N)  # fmt: skip
        for (p1, a1), (p2, a2) in zip(pts, pts[1:]):
            if len(ladder) < 2 or p1.N == p2.N:
                continue
            d1 = (a1.q2.cpu().numpy(), a1.q4.cpu().numpy())
            d2 = (a2.q2.cpu().numpy(), a2.q4.cpu().numpy())
            ref = float(ags.glass_temperature(alpha))
            curves = {"binder": binder, "binder_per_sample": binder_per_sample,
                      "scaled_susceptibility": (
                          lambda q2, q4, n=p1.N: scaled_susceptibility(q2, n),
                          lambda q2, q4, n=p2.N: scaled_susceptibility(q2, n))}  # fmt: skip
            for method, curve in curves.items():
                c = bootstrap_crossing(ladder, d1, d2, curve, True, opts.bootstrap, seed)
                c.update({"alpha": alpha, "N": [p1.N, p2.N], "method": method, "ags": ref,
                          "deviation": None if c["mean"] is None else c["mean"] / ref - 1})
                out["T_g"].append(c)
    if 0.0 in opts.retrieval:
        j = list(opts.retrieval).index(0.0)
        by_n: dict[int, list] = {}
        for p, a in results:
            by_n.setdefault(p.N, []).append((p.alpha, a.m[:, j].cpu().numpy()))
        sizes = sorted(by_n)
        a_ref, _ = ags.capacity_zero_temperature()
        for n1, n2 in zip(sizes, sizes[1:]):
            s1, s2 = sorted(by_n[n1], key=lambda x: x[0]), sorted(by_n[n2], key=lambda x: x[0])
            if [x for x, _ in s1] != [x for x, _ in s2] or len(s1) < 2:
                continue
            alphas = np.array([x for x, _ in s1])
            m1, m2 = np.stack([m for _, m in s1], 1), np.stack([m for _, m in s2], 1)
            curves = {"retrieved": lambda m: (m > RETRIEVED).mean(0),
                      "overlap": lambda m: m.mean(0)}  # fmt: skip
            for method, curve in curves.items():
                c = bootstrap_crossing(alphas, m1, m2, curve, False, opts.bootstrap, seed)
                c.update({"N": [n1, n2], "method": method, "ags": a_ref,
                          "deviation": None if c["mean"] is None else c["mean"] / a_ref - 1})
                out["alpha_c"].append(c)
    return out


def run_phases(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Run every (N, alpha) point; rows per temperature; T_g and alpha_c(0) located at the
    end (``summary["phases"]``) and drawn with the AGS lines."""
    device = ctx.device
    run = RunState.of(task)
    plan = plan_phases(run, program, ctx.sets)
    check_memory(memory_need(plan), device, f"run {run.name}", plan.statement_span,
                 "use fewer disorder samples, temperatures or spins")  # fmt: skip
    summary = ctx.recorder.summary
    t = plan.tempering
    summary.update({"run": run.name, "source": program.name,
                    "model": program.checker_for(task).name, "params": {},
                    "device": str(device), "seed": ctx.seed,
                    "sampler": {"name": "tempering", **t.model_dump(),
                                "kernel": "numba" if AVAILABLE and device.type == "cpu"
                                else "torch"},
                    "phases_options": plan.options.model_dump(),
                    "scan": {s.name: s.values for s in run.scans}, "rows": [],
                    "complete": False})  # fmt: skip
    settings = {"task": "phases", "tempering": t.model_dump(),
                "options": plan.options.model_dump(), "seed": ctx.seed,
                "points": [p.args for p in plan.points]}  # fmt: skip
    kept = _load_samples(ctx.out) if ctx.resume and ctx.out is not None else {}
    if not ctx.resume and ctx.out is not None and (ctx.out / SAMPLES).exists():
        (ctx.out / SAMPLES).unlink()  # a fresh run: an earlier run's samples are not this one's
    results: dict[int, Averages] = {k: v for k, v in kept.items() if k < len(plan.points)}
    current: list[PhasesPoint] = []

    def start(k: int, streams: RandomStreams) -> PhasesPoint:
        point = plan.points[k]
        cm, xi = _patterns(program, run, plan, point)
        check_hebb_energy(cm, plan.field, xi[0], plan, run.model_span or run.span)
        summary["params"] = dict(cm.model.params)
        current[:] = [PhasesPoint(plan, point, xi, streams, ctx.seed)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        results[k] = current[0].result
        if ctx.out is not None:
            _save_samples(ctx.out, results)

    run_scan(ctx, run.span, len(plan.points), settings, start, finish,
             math.ceil(t.sweeps / t.exchange_every) * t.exchange_every, run.name)  # fmt: skip
    if len(results) == len(plan.points):  # every point's per-disorder averages are at hand
        summary["phases"] = locate(plan, [(plan.points[k], results[k]) for k in sorted(results)],
                                   ctx.seed)  # fmt: skip
    ctx.recorder.write()
    files = phase_plots(ctx.out, summary) if ctx.out is not None else []
    return RunResult(summary, ctx.out, files)


SAMPLES = "disorder_samples.npz"  # per-disorder averages of the finished points (for --resume)
FIELDS = ("q2", "q4", "q_abs", "energy", "m", "acceptance")


def _save_samples(out: Path, results: dict[int, Averages]) -> None:
    """The per-disorder averages of the finished points, written atomically: the crossings of
    a resumed run need the points finished before the interruption."""
    arrays = {f"{k}/{f}": getattr(a, f).cpu().numpy() for k, a in results.items() for f in FIELDS}
    arrays.update({f"{k}/measurements": np.array(a.measurements) for k, a in results.items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (SAMPLES + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out / SAMPLES)


def _load_samples(out: Path) -> dict[int, Averages]:
    path = out / SAMPLES
    if not path.is_file():
        return {}
    with np.load(path) as z:
        keys = sorted({int(k.split("/")[0]) for k in z.files})
        return {k: Averages(*(torch.as_tensor(z[f"{k}/{f}"]) for f in FIELDS[:5]),
                            int(z[f"{k}/measurements"]), torch.as_tensor(z[f"{k}/acceptance"]))
                for k in keys}  # fmt: skip


def phase_plots(out: Path, summary: dict) -> list[Path]:
    """``phase_diagram.png``: the AGS lines (T_g = 1 + sqrt(alpha), the retrieval line T_M)
    with the measured T_g(alpha) and alpha_c(0); ``binder.png``: g(T) for each N and alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    found = summary.get("phases", {"T_g": [], "alpha_c": []})
    amax = max([0.25] + [r["alpha"] * 1.1 for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    a = np.linspace(0, amax, 200)
    ax.plot(a, ags.glass_temperature(a), "k-", label="AGS $T_g = 1 + \\sqrt{\\alpha}$")
    a_m, t_m = ags.retrieval_line(12)
    ax.plot(a_m, t_m, "b-", label="AGS retrieval line $T_M$")
    ax.plot([ags.capacity_zero_temperature()[0]], [0], "b^", ms=8, label="AGS $\\alpha_c(0)$")
    styles = {"binder": ("o", "C3", "$T_g$: crossing of g"),
              "binder_per_sample": ("v", "C1", "$T_g$: crossing of [g]"),
              "scaled_susceptibility": ("D", "C4", "$T_g$: crossing of $N^{2/3}[q^2]$")}
    shown: set[str] = set()
    for k, c in enumerate(x for x in found["T_g"] if x["mean"] is not None):
        fmt, colour, label = styles[c.get("method", "binder")]
        ax.errorbar(c["alpha"] + 0.0015 * (k % 6), c["mean"], yerr=c["stderr"] or 0, fmt=fmt,
                    color=colour, capsize=3, ms=4,
                    label=None if label in shown else f"{label}")  # fmt: skip
        shown.add(label)
    labels = {"retrieved": ("s", "C2", "$\\alpha_c(0)$: crossing of P(m > 0.9)"),
              "overlap": ("x", "C7", "$\\alpha_c(0)$: crossing of [m]")}
    for k, c in enumerate(x for x in found["alpha_c"] if x["mean"] is not None):
        fmt, colour, label = labels[c.get("method", "retrieved")]
        ax.errorbar(c["mean"], 0.02 + 0.025 * k, xerr=c["stderr"] or 0, fmt=fmt, color=colour,
                    capsize=3, label=None if label in shown else label)  # fmt: skip
        shown.add(label)
    ret = [r for r in rows if "m" in r and r["T"] > 0]
    if ret:
        nmax = max(r["N"] for r in ret)
        ret = [r for r in ret if r["N"] == nmax]
        sc = ax.scatter([r["alpha"] for r in ret], [r["T"] for r in ret],
                        c=[r["m"]["mean"] for r in ret], cmap="viridis", vmin=0, vmax=1,
                        marker="D", s=30, label=f"retrieval chains, N = {nmax}")  # fmt: skip
        fig.colorbar(sc, ax=ax, label="m")
    ax.text(0.02 * amax, 1.55, "paramagnet")
    ax.text(0.6 * amax, 0.9, "spin glass")
    ax.text(0.02 * amax, 0.25, "retrieval")
    ax.set_xlim(0, amax)
    ax.set_ylim(0, 1.9)
    ax.set_xlabel("$\\alpha = P/N$")
    ax.set_ylabel("T")
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    paths = [out / "phase_diagram.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    glass = [r for r in rows if "binder" in r]
    if glass:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in sorted({(r["alpha"], r["N"]) for r in glass}):
            rs = [r for r in glass if (r["alpha"], r["N"]) == key]
            ax.errorbar([r["T"] for r in rs], [r["binder"]["mean"] for r in rs],
                        yerr=[r["binder"]["stderr"] for r in rs], marker="o", ms=3, capsize=2,
                        label=f"alpha = {key[0]:.3g}, N = {key[1]}")  # fmt: skip
        for alpha in sorted({r["alpha"] for r in glass}):
            ax.axvline(float(ags.glass_temperature(alpha)), color="k", lw=0.8, ls=":")
        ax.set_xlabel("T")
        ax.set_ylabel("Binder cumulant g")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "binder.png")
        fig.savefig(paths[1], dpi=100)
        plt.close(fig)
    return paths


def bind(catalogue: Catalogue) -> None:
    """Attach the implementations to their catalogue entries."""
    catalogue.updates.bind("tempering", PhaseChains, family="hopfield")
    catalogue.tasks.bind("phases", Task(run_phases))


__all__ = ["PhasesPoint", "bind", "check_hebb_energy", "locate", "memory_need", "run_phases"]
