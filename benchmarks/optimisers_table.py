"""Success rates of MQHOA and simulated annealing against differential evolution (and CMA-ES).

The table of the issue: Sphere, Rastrigin, Ackley, Griewank, Rosenbrock and Schwefel 2.26 on
their standard boxes (runtime/landscape/test_functions.py), a budget of 1e4 d evaluations, one
run per seed: the success rate (|f - f*| < 1e-4) and the median evaluations to success. MQHOA
(k = 20, sigma_min = 1e-6, restarts while the budget lasts) and simulated annealing (one chain,
geometric schedule over the budget, T0 from 100 uniform samples) batch the seeds as independent
runs; so does population annealing (P = 100, 5 sweeps per beta, the default geometric
schedule over the budget; ``pa``). The reference is scipy's ``differential_evolution``
(best1bin, popsize 15, no polishing so that every evaluation is counted, stopped at the
target); CMA-ES from the ``cma`` package where it is importable (it is not a dependency).

    python benchmarks/optimisers_table.py --quick                 # 2-d, 5 seeds (< 60 s)
    python benchmarks/optimisers_table.py --dims 2,10 --seeds 30 --out table.csv
    python benchmarks/optimisers_table.py --functions ackley,griewank --dims 30 --plot t.png
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from physml_lang.runtime.landscape.annealing import population_annealing, simulated_annealing
from physml_lang.runtime.landscape.mqhoa import mqhoa_runs
from physml_lang.runtime.landscape.optimisers import OptimiseResult
from physml_lang.runtime.landscape.test_functions import TEST_FUNCTIONS, TestFunction
from physml_lang.runtime.random import RandomStreams

TOL = 1e-4


class _Reached(Exception):
    pass


class _Counted:
    """A numpy objective for scipy/cma around the torch one: counts points, records the first
    hit of the target, and ends the run (an exception) at the budget."""

    def __init__(self, tf: TestFunction, budget: int):
        self.tf, self.budget = tf, budget
        self.calls, self.hit, self.best = 0, None, math.inf

    def values(self, x: np.ndarray) -> np.ndarray:
        """x (M, n) -> (M,)."""
        take = min(len(x), self.budget - self.calls)
        if take <= 0:
            raise _Reached
        v = self.tf.f(torch.as_tensor(x[:take], dtype=torch.float64)).numpy()
        hits = np.nonzero(np.abs(v - self.tf.f_star) < TOL)[0]
        if self.hit is None and len(hits):
            self.hit = self.calls + int(hits[0]) + 1
        self.calls += take
        self.best = min(self.best, float(v.min()))
        if take < len(x):  # the budget ends within this population
            raise _Reached
        return v


def run_de(tf: TestFunction, n: int, seed: int, budget: int) -> tuple[bool, int | None, float]:
    from scipy.optimize import differential_evolution

    counted = _Counted(tf, budget)
    popsize = 15
    try:
        differential_evolution(
            lambda x: counted.values(np.atleast_2d(x.T)), [(tf.lower, tf.upper)] * n,
            popsize=popsize, maxiter=max(budget // (popsize * n), 1), tol=0.0, atol=0.0,
            seed=seed, polish=False, vectorized=True, updating="deferred",
            callback=lambda *a, **k: counted.hit is not None)  # fmt: skip
    except _Reached:
        pass
    return counted.hit is not None, counted.hit, counted.best


def run_cma(tf: TestFunction, n: int, seed: int, budget: int) -> tuple[bool, int | None, float]:
    import cma

    counted = _Counted(tf, budget)
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(tf.lower, tf.upper, n)
    es = cma.CMAEvolutionStrategy(x0, 0.3 * (tf.upper - tf.lower),
                                  {"bounds": [tf.lower, tf.upper], "seed": seed + 1,
                                   "verbose": -9, "maxfevals": budget})  # fmt: skip
    try:
        while not es.stop() and counted.hit is None:
            xs = es.ask()
            es.tell(xs, counted.values(np.asarray(xs)).tolist())
    except _Reached:
        pass
    return counted.hit is not None, counted.hit, counted.best


def run_ours(method: str, tf: TestFunction, n: int, seeds: int, budget: int
             ) -> list[OptimiseResult]:  # fmt: skip
    lower, upper = tf.box(n)
    streams = RandomStreams(2026 + n)
    if method == "mqhoa":
        return mqhoa_runs(tf.f, lower, upper, streams, runs=seeds, max_evaluations=budget,
                          f_target=tf.f_star, tol=TOL)  # fmt: skip
    if method == "pa":
        return population_annealing(tf.f, lower, upper, streams, population=100,
                                    max_evaluations=budget, f_target=tf.f_star, tol=TOL,
                                    runs=seeds)  # fmt: skip
    return simulated_annealing(tf.f, lower, upper, streams, max_evaluations=budget,
                               f_target=tf.f_star, tol=TOL, runs=seeds)  # fmt: skip


def plot_trace(path: str | Path, results: dict[str, OptimiseResult], title: str = "") -> Path:
    """Best f against evaluations (log y), one curve per labelled result; PNG at ``path``.
    Matplotlib's Figure and Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, r in results.items():
        if r.trace:
            ev = [row[0] for row in r.trace]
            best = [max(row[1], 1e-300) for row in r.trace]
            ax.step(ev, best, where="post", lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best f")
    ax.set_title(title or "best objective value")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


def _row(name: str, n: int, method: str, ok: list[bool], hits: list[int | None],
         best: list[float], seconds: float) -> dict:  # fmt: skip
    ev = [h for h in hits if h is not None]
    return {"function": name, "d": n, "optimiser": method, "success": sum(ok), "runs": len(ok),
            "success_rate": sum(ok) / len(ok),
            "median_evaluations": int(np.median(ev)) if ev else None,
            "median_best_f": float(np.median(best)), "seconds": round(seconds, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", default="2,10,30")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--functions", default=",".join(TEST_FUNCTIONS))
    parser.add_argument("--optimisers", default="mqhoa,sa,pa,de,cma")
    parser.add_argument("--quick", action="store_true", help="2-d, 5 seeds: a smoke run")
    parser.add_argument("--out", help="write the rows as .csv or .json")
    parser.add_argument("--plot", help="PNG of best f vs evaluations (seed 0, last function)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dims = [2] if args.quick else [int(d) for d in args.dims.split(",")]
    seeds = 5 if args.quick else args.seeds
    methods = args.optimisers.split(",")
    if "cma" in methods:
        try:
            import cma  # noqa: F401
        except ImportError:
            print("note: the cma package is not installed: CMA-ES skipped")
            methods.remove("cma")
    rows, traces = [], {}
    for name in args.functions.split(","):
        tf = TEST_FUNCTIONS[name]
        for n in dims:
            budget = 10_000 * n
            for method in methods:
                t0 = time.perf_counter()
                if method in ("mqhoa", "sa", "pa"):
                    rs = run_ours(method, tf, n, seeds, budget)
                    traces[method] = rs[0]
                    ok = [r.success for r in rs]
                    hits = [r.evaluations_to_target for r in rs]
                    best = [r.best_f for r in rs]
                else:
                    run = run_de if method == "de" else run_cma
                    out = [run(tf, n, s, budget) for s in range(seeds)]
                    ok, hits, best = [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
                rows.append(_row(name, n, method, ok, hits, best, time.perf_counter() - t0))
                r = rows[-1]
                print(f"  {name} d={n} {method}: {r['success']}/{r['runs']} "
                      f"({r['seconds']:.1f} s)", flush=True)  # fmt: skip
    print(f"\nbudget 1e4 d evaluations, {seeds} seeds, success |f - f*| < {TOL:g}\n")
    print("| function | d | optimiser | success | median evaluations to success | "
          "median best f | time (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        med = r["median_evaluations"] if r["median_evaluations"] is not None else "-"
        print(f"| {r['function']} | {r['d']} | {r['optimiser']} | {r['success']}/{r['runs']} "
              f"| {med} | {r['median_best_f']:.3g} | {r['seconds']} |")  # fmt: skip
    if args.out:
        path = Path(args.out)
        if path.suffix == ".json":
            path.write_text(json.dumps(rows, indent=1))
        else:
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    if args.plot and traces:
        plot_trace(args.plot, traces, title=f"{rows[-1]['function']}, d = {rows[-1]['d']}")


if __name__ == "__main__":
    main()
