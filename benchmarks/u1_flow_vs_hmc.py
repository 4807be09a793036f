"""Effective samples of the topological charge per second: a gauge-equivariant flow (neural
MCMC with flow proposals) against physml's HMC, 2D U(1) on the L x L torus, same process.

    OMP_NUM_THREADS=1 python benchmarks/u1_flow_vs_hmc.py [--device cpu|cuda] [--quick]
        [--L 8] [--betas 2 6] [--steps 600]

For each beta: HMC (step_size 0.1, 10 leapfrog steps, 16 chains, cold start, 200 trajectories
of burn-in) measures Q per trajectory; the flow (16 layers, width 8, kernel 3, 8 bins) is
trained by reverse KL (``--steps`` steps of batch 64), then draws proposals for an
independence-Metropolis chain. ESS of an observable = measurements / (2 tau_int) with tau_int
from the binning analysis (runtime/statistics.py); for Q^2 (Q's mean vanishes by symmetry,
Q^2 is what the freezing spoils). ESS per second counts the sampling time only (HMC
trajectories; flow proposals with their actions and the chain); the flow's training time is
reported beside it, and the break-even number of effective samples after which the flow's total
time is lower. The exact <Q^2> of the torus is printed for reference. Timings on a shared
machine are inflated by its load (both samplers see the same load: they run back to back).

Measured (CPU, one thread, a heavily shared 2-core machine, default settings): beta = 2: HMC
tau_Q 2.4 trajectories, <Q^2> = 1.270 ± 0.019, 571 ESS/s; flow (274 s of training) tau_Q 4.0
proposals, acceptance 0.34, <Q^2> = 1.244 ± 0.036, 76 ESS/s: ratio 0.13. beta = 6: HMC is
frozen (tau_Q = 1300 trajectories, <Q^2> = 0.06 ± 0.05 against the exact 0.279); 600 CPU steps
do not train the flow (NMCMC acceptance < 1 %, its <Q^2> is not reliable either): the flow's
advantage at large beta needs far longer (GPU) training than this benchmark's.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from physml_lang.api import bind_runtime
from physml_lang.compiler.lower.links import topological_charge, wilson_action
from physml_lang.runtime.gauge.exact import u1_topological_susceptibility_torus
from physml_lang.runtime.gauge.sampling import cold_start, make_sampler
from physml_lang.runtime.gauge_flows.flow import GaugeFlow
from physml_lang.runtime.gauge_flows.task import reverse_kl_step
from physml_lang.runtime.generative.estimates import importance_estimate, nmcmc
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def hmc_run(L: int, beta: float, trajectories: int, device: str) -> dict:
    """Q and Q^2 per trajectory of 16 HMC chains; sampling time without burn-in."""
    streams = RandomStreams(1, device)
    sampler = make_sampler("hmc", "u1", beta, step_size=0.1, n_steps=10)
    U = cold_start("u1", 16, (L, L), device, torch.float64)
    for _ in range(200):
        U = sampler.step(U, streams)
    Q = torch.empty(trajectories, 16, dtype=torch.float64, device=device)
    _sync(device)
    t = time.perf_counter()
    for k in range(trajectories):
        U = sampler.step(U, streams)
        Q[k] = topological_charge(U)
    _sync(device)
    seconds = time.perf_counter() - t
    q = Q.cpu().numpy()
    e_q, e_q2 = binning_analysis(q), binning_analysis(q**2)
    n = q.size
    return {"tau_Q": e_q.tau_int, "Q2": e_q2, "ess": n / (2 * e_q2.tau_int), "seconds": seconds,
            "samples": n}  # fmt: skip


def flow_run(L: int, beta: float, steps: int, samples: int, device: str,
             anneal: float = 0.0) -> dict:  # fmt: skip
    """Train a flow by reverse KL (the action scaled by 1 - anneal^(t+1) at step t), then an
    NMCMC chain of ``samples`` proposals."""
    gen = torch.Generator().manual_seed(0)
    flow = GaugeFlow((L, L), 16, 8, 2, 3, 8, device=device, generator=gen)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    streams = RandomStreams(2, device)

    def action(theta):
        return wilson_action(theta, "u1", beta)

    _sync(device)
    t = time.perf_counter()
    for t in range(steps):
        scale = 1 - anneal ** (t + 1) if anneal else 1.0
        reverse_kl_step(flow, action, streams.uniform((64, L, L, 2), torch.float64), scale, opt,
                        1.0)  # fmt: skip
    _sync(device)
    training = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        Qs, Ss, lqs = [], [], []
        for first in range(0, samples, 4096):
            theta, lq = flow.sample(streams.uniform((min(4096, samples - first), L, L, 2),
                                                    torch.float64))  # fmt: skip
            Qs.append(topological_charge(theta))
            Ss.append(action(theta))
            lqs.append(lq)
        Q, S, lq = torch.cat(Qs), torch.cat(Ss), torch.cat(lqs)
        chain = nmcmc(-S - lq, streams.uniform((samples,), torch.float64))
    _sync(device)
    seconds = time.perf_counter() - t
    q = Q[chain.chain].cpu().numpy()
    e_q, e_q2 = binning_analysis(q), binning_analysis(q**2)
    nis = importance_estimate(S, lq, 1.0, L * L)
    return {"tau_Q": e_q.tau_int, "Q2": e_q2, "ess": samples / (2 * e_q2.tau_int),
            "seconds": seconds, "training": training, "acceptance": chain.acceptance,
            "ess_nis": nis.ess_per_sample, "samples": samples}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--L", type=int, default=8)
    parser.add_argument("--betas", type=float, nargs="+", default=[2.0, 6.0])
    parser.add_argument("--steps", type=int, default=600, help="flow training steps")
    parser.add_argument("--anneal", type=float, default=0.0, help="beta annealing factor")
    args = parser.parse_args()
    bind_runtime()
    torch.set_num_threads(1)
    steps = 30 if args.quick else args.steps
    trajectories, samples = (200, 2000) if args.quick else (2000, 20000)
    print(f"2D U(1), L = {args.L}, device {args.device}; ESS of Q^2 per second of sampling")
    print(f"{'beta':>5} {'sampler':>8} {'tau_Q':>9} {'<Q^2>':>17} {'exact':>7} {'ESS/s':>9} "
          f"{'train s':>8} {'extra':>24}")  # fmt: skip
    for beta in args.betas:
        exact = u1_topological_susceptibility_torus(beta, args.L)
        h = hmc_run(args.L, beta, trajectories, args.device)
        f = flow_run(args.L, beta, steps, samples, args.device, args.anneal)
        rate_h, rate_f = h["ess"] / h["seconds"], f["ess"] / f["seconds"]
        for name, r, rate, extra in (
                ("hmc", h, rate_h, f"{h['samples']} trajectories"),
                ("flow", f, rate_f, f"acc {f['acceptance']:.2f}, NIS ESS {f['ess_nis']:.3f}")):
            q2 = f"{r['Q2'].mean:.3f} ± {r['Q2'].stderr:.3f}"
            train = f"{r['training']:.1f}" if "training" in r else "-"
            print(f"{beta:5.1f} {name:>8} {r['tau_Q']:9.2f} {q2:>17} {exact:7.4f} {rate:9.1f} "
                  f"{train:>8} {extra:>24}")  # fmt: skip
        ratio = rate_f / rate_h if rate_h > 0 else math.inf
        even = (f["training"] / (1 / rate_h - 1 / rate_f)
                if rate_f > rate_h else math.inf)  # fmt: skip
        print(f"      flow / hmc ESS per second: {ratio:.2f}; training pays off after "
              f"{even:.0f} effective samples" if math.isfinite(even) else
              f"      flow / hmc ESS per second: {ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
