"""Active learning against BoTorch, random search and simulated annealing; and a noisy experiment.

1. Evaluations to target on M-LOOP's sinc cost (-sum sinc(x - x*), x* = (0, 0.1, -0.1) on
   [-2, 2]^3, target -2.99), Branin (0.397887 to 1e-3) and Hartmann-6 (-3.32237 to 1e-2), per
   seed, in the same run:
   - physml ``gaussian_process`` (this repository; the seeds batched as independent restarts);
   - BoTorch's standard loop: SingleTaskGP (its default priors, inputs normalised, outcomes
     standardised), fit_gpytorch_mll, LogExpectedImprovement maximised by optimize_acqf
     (10 restarts, 512 raw samples), the same number of uniform initial points. BoTorch is not
     a dependency of physml: without it (``pip install botorch``) its column is skipped;
   - random search (uniform points) and physml's simulated annealing with the same budget.
   The median over seeds counts a failed seed as budget + 1 (so a median above the budget
   says that most seeds failed).
2. A physml-internal experiment: the schedule (T0, T_final) of simulated annealing of an SK
   instance (N = 64, 60 sweeps, 8 replicas) tuned by ``gaussian_process`` with physml's spin
   annealer as a noisy experiment (cost: the replicas' mean final energy per spin; uncer: its
   standard error); T0 < T_final is an impossible schedule: the annealer refuses it and the
   point is bad. Compared with the default schedule (T0 = 5, T_final = 0.05).

    python benchmarks/active_learning.py                        # sinc, 20 seeds (minutes)
    python benchmarks/active_learning.py --problems sinc,branin,hartmann6 --seeds 5
    python benchmarks/active_learning.py --no-botorch --skip-experiment
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import physml_lang
from physml_lang.runtime.landscape.active import ActiveSettings, active_learning
from physml_lang.runtime.landscape.annealing import simulated_annealing
from physml_lang.runtime.landscape.spin_annealing import anneal_spins, sk_instance
from physml_lang.runtime.random import RandomStreams

F64 = torch.float64
PROBLEMS = {  # name: (stdlib model, target, tol, budget)
    "sinc": ("MLoopSinc", -3.0, 0.01, 200),
    "branin": ("Branin", 0.397887, 1e-3, 100),
    "hartmann6": ("Hartmann6", -3.32237, 1e-2, 200),
}


def _problem(name: str):
    model, target, tol, budget = PROBLEMS[name]
    cm = physml_lang.compile(f"import {model}\n").model(model)
    lower = torch.full((cm.n,), cm.lower, dtype=F64)
    upper = torch.full((cm.n,), cm.upper, dtype=F64)
    return cm.potential, lower, upper, target, tol, budget


def _median(hits: list[int | None], budget: int) -> float:
    return float(np.median([h if h is not None else budget + 1 for h in hits]))


def physml_gp(f, lower, upper, target, tol, budget, seeds) -> list[int | None]:
    res = active_learning(f, lower, upper, RandomStreams(0), runs=seeds, max_evaluations=budget,
                          settings=ActiveSettings(initial=10), f_target=target, tol=tol)  # fmt: skip
    return [r.evaluations_to_target for r in res]


def random_search(f, lower, upper, target, tol, budget, seeds) -> list[int | None]:
    u = RandomStreams(1).uniform((seeds, budget * lower.numel()), F64).reshape(seeds, budget, -1)
    v = f((lower + (upper - lower) * u).reshape(-1, lower.numel())).reshape(seeds, budget)
    hits = (v - target).abs() < tol
    return [int(h.nonzero()[0, 0]) + 1 if h.any() else None for h in hits]


def annealing(f, lower, upper, target, tol, budget, seeds) -> list[int | None]:
    res = simulated_annealing(f, lower, upper, RandomStreams(2), max_evaluations=budget,
                              f_target=target, tol=tol, initial_samples=10, runs=seeds)  # fmt: skip
    return [r.evaluations_to_target for r in res]


def botorch_loop(f, lower, upper, target, tol, budget, seeds) -> list[int | None] | None:
    try:
        from botorch.acquisition import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from botorch.optim import optimize_acqf
        from gpytorch.mlls import ExactMarginalLogLikelihood
    except ImportError:
        print("  BoTorch is not installed (pip install botorch): its column is skipped")
        return None
    d = lower.numel()
    bounds = torch.stack([lower, upper])
    hits: list[int | None] = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        X = lower + (upper - lower) * torch.rand(10, d, dtype=F64)
        Y = -f(X).unsqueeze(-1)  # BoTorch maximises
        hit = next((i + 1 for i, v in enumerate(-Y[:, 0]) if abs(float(v) - target) < tol), None)
        while hit is None and len(X) < budget:
            gp = SingleTaskGP(X, Y, input_transform=Normalize(d), outcome_transform=Standardize(1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            acq = LogExpectedImprovement(gp, best_f=Y.max())
            x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
            y = -f(x)
            X, Y = torch.cat([X, x]), torch.cat([Y, y.unsqueeze(-1)])
            if abs(float(-y[0]) - target) < tol:
                hit = len(X)
        hits.append(hit)
    return hits


def compare(problems: list[str], seeds: int, use_botorch: bool) -> None:
    print(f"evaluations to target, median over {seeds} seeds (a failure counts as budget + 1)")
    for name in problems:
        f, lower, upper, target, tol, budget = _problem(name)
        print(f"{name}: target {target} within {tol}, budget {budget}")
        methods = {"physml gaussian_process": physml_gp, "random search": random_search,
                   "simulated annealing": annealing}  # fmt: skip
        if use_botorch:
            methods["BoTorch GP + LogEI"] = botorch_loop
        for label, run in methods.items():
            t = time.perf_counter()
            hits = run(f, lower, upper, target, tol, budget, seeds)
            if hits is None:
                continue
            ok = sum(h is not None for h in hits)
            print(f"  {label:26s} median {_median(hits, budget):7.1f}  success {ok}/{seeds}  "
                  f"({time.perf_counter() - t:.1f} s)")  # fmt: skip


SCHEDULE = """
model Schedule() {
    coordinates x: real[2] in [-1.5, 1]     # x = (log10 T0, log10 T_final)
    potential f = (x[0] - x[1])^2            # a stand-in: the experiment replaces it
}
run tune { model Schedule
    optimise f via gaussian_process(initial = 8, local_every = 4), evaluations = 40 }
"""


def sk_experiment(N: int = 64, sweeps: int = 60, replicas: int = 8):
    """A noisy experiment: the mean final energy per spin of ``replicas`` annealing runs of an
    SK instance with the schedule T0 = 10^x0, T_final = 10^x1; each call draws fresh replicas."""
    J = sk_instance(N, seed=7)
    calls = [0]

    def experiment(x: np.ndarray) -> dict:
        calls[0] += 1
        T0, T1 = 10.0 ** x[0], 10.0 ** x[1]
        res = anneal_spins(J, streams=RandomStreams(1000 + calls[0]), replicas=replicas,
                           sweeps=sweeps, beta_initial=1 / T0, beta_final=1 / T1)  # fmt: skip
        e = res.energies.double() / N  # a refused schedule (T0 < T_final) raised: a bad point
        return {"cost": float(e.mean()), "uncer": float(e.std() / math.sqrt(replicas))}

    return experiment, calls


def tune_schedule() -> None:
    experiment, calls = sk_experiment()
    t = time.perf_counter()
    row = physml_lang.compile(SCHEDULE).run("tune", experiment=experiment).rows[0]
    x = row["best_x"]
    default = [experiment(np.array([math.log10(5.0), math.log10(0.05)]))["cost"]
               for _ in range(10)]  # fmt: skip
    tuned = [experiment(np.array(x))["cost"] for _ in range(10)]
    print(f"SK schedule (N = 64, 60 sweeps): {row['evaluations']:.0f} measurements, "
          f"{row['bad_evaluations']} bad (T0 < T_final), {time.perf_counter() - t:.1f} s; "
          f"tuned T0 = {10 ** x[0]:.3g}, T_final = {10 ** x[1]:.3g}")  # fmt: skip
    print(f"  energy per spin, 10 fresh measurements: tuned {np.mean(tuned):.4f} ± "
          f"{np.std(tuned) / math.sqrt(10):.4f}, default (5, 0.05) {np.mean(default):.4f} ± "
          f"{np.std(default) / math.sqrt(10):.4f} ({calls[0]} calls in all)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", default="sinc", help=f"of {', '.join(PROBLEMS)}")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--no-botorch", action="store_true")
    p.add_argument("--skip-experiment", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    compare([s.strip() for s in a.problems.split(",")], a.seeds, not a.no_botorch)
    if not a.skip_experiment:
        tune_schedule()


if __name__ == "__main__":
    main()
