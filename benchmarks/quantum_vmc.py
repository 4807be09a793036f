"""Time per VMC iteration against NetKet and a hand-written torch baseline, in the same run.

Problems (float64 everywhere, SR with a dense/exact solve on the physml side, see --help):
  tfim        TFIM L = 20, g = 1, RBM alpha = 1; 1008 samples, 16 chains, single-flip Metropolis,
              one sweep (L proposals) per sample, 6 samples discarded per chain; SR shift 0.01.
  heisenberg  Heisenberg 4x4 (periodic), translation-symmetric RBM alpha = 4 with the Marshall
              sign; 1000 samples, 100 chains, exchange moves, half a sweep (8 proposals) per
              sample, 4 samples (2 sweeps) discarded per chain, S^z = 0; SR shift 0.1.

NetKet (never installed into the main environment) runs in a throwaway venv as a subprocess:

    python3 -m venv /tmp/nkvenv && /tmp/nkvenv/bin/pip install netket==3.23
    python benchmarks/quantum_vmc.py --netket /tmp/nkvenv/bin/python

Both sides run single-threaded: physml under the run driver's thread limits (one torch thread,
BLAS/OpenMP pools bounded by threadpoolctl, as every `physml run` without --threads), NetKet with
OMP_NUM_THREADS=1, XLA without Eigen threads, one host device. Times are after warm-up (JIT /
numba / initial burn-in). The
learning rates are matched: NetKet's SR solves against the gradient 2 F, physml's against F, so
physml lr = 2 x NetKet lr gives the same update. Differences that remain: NetKet's SR uses CG
(jax.scipy cg, tol 1e-5) with QGTAuto, physml a direct dense solve (exact); NetKet's
exchange rule swaps nearest neighbours, physml's a random up spin with a random down spin.

Usage: python benchmarks/quantum_vmc.py [--iterations 100] [--warmup 10] [--final 20000]
       [--problems tfim heisenberg] [--netket PYTHON] [--compile] [--no-baseline]
       [--print-netket tfim]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

from physml_lang.compiler.derive.pauli import heisenberg, tfim
from physml_lang.runtime.device import thread_limits
from physml_lang.runtime.quantum.lattice import nearest_bonds, sublattice, translation_table
from physml_lang.runtime.quantum.learners import RBM, MarshallSign, SymmetricRBM, rbm_form
from physml_lang.runtime.quantum.operator import LocalOperator
from physml_lang.runtime.quantum.rbm_kernels import local_energy_rbm
from physml_lang.runtime.quantum.vmc import (
    MetropolisOptions,
    MetropolisSampler,
    OptimizerOptions,
    SROptions,
    energy_statistics,
    run_vmc,
)
from physml_lang.runtime.random import RandomStreams

PROBLEMS = {
    "tfim": dict(L=20, alpha=1, samples=1008, chains=16, sweep=1.0, discard=6, shift=0.01,
                 lr_netket=0.01, exact=-25.4909896864),
    "heisenberg": dict(L=4, alpha=4, samples=1000, chains=100, sweep=0.5, discard=4, shift=0.1,
                       lr_netket=0.01, exact=-44.9139328337),
}  # fmt: skip

NETKET_ENV = {
    "XLA_FLAGS": "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false "
    "intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "JAX_PLATFORMS": "cpu",
}

NETKET_SCRIPT = """
import json, time, jax, netket as nk, optax
P = {params!r}
if P["name"] == "tfim":
    g = nk.graph.Chain(P["L"], pbc=True)
    hi = nk.hilbert.Spin(s=0.5, N=g.n_nodes)
    H = nk.operator.Ising(hi, g, h=1.0, J=-1.0)  # -sum ZZ - sum X
    model = nk.models.RBM(alpha=P["alpha"], param_dtype=float)
    sampler = nk.sampler.MetropolisLocal(hi, n_chains=P["chains"],
                                         sweep_size=round(P["sweep"] * g.n_nodes))
else:
    g = nk.graph.Square(P["L"], pbc=True)
    hi = nk.hilbert.Spin(s=0.5, N=g.n_nodes, total_sz=0)
    H = nk.operator.Heisenberg(hi, g, sign_rule=True)  # Pauli XX + YY + ZZ, Marshall rotated
    init = jax.nn.initializers.normal(0.01)
    model = nk.models.RBMSymm(symmetries=g.translation_group(), alpha=P["alpha"],
                              param_dtype=float, kernel_init=init, hidden_bias_init=init,
                              visible_bias_init=init)
    sampler = nk.sampler.MetropolisExchange(hi, graph=g, n_chains=P["chains"],
                                            sweep_size=round(P["sweep"] * g.n_nodes))
vs = nk.vqs.MCState(sampler, model, n_samples=P["samples"],
                    n_discard_per_chain=P["discard"], seed=0, sampler_seed=1)
gs = nk.VMC(H, optax.sgd(P["lr"]), variational_state=vs,
            preconditioner=nk.optimizer.SR(diag_shift=P["shift"]))
t = time.perf_counter()
gs.run(n_iter=P["warmup"], show_progress=False)
jax.block_until_ready(vs.parameters)
warm = time.perf_counter() - t
t = time.perf_counter()
gs.run(n_iter=P["iterations"], show_progress=False)
jax.block_until_ready(vs.parameters)
dt = (time.perf_counter() - t) / P["iterations"]
vs.n_samples = P["final"]
e = vs.expect(H)
print("RESULT " + json.dumps({{"ms": dt * 1e3, "warmup_s": warm, "energy": float(e.mean.real),
      "stderr": float(e.error_of_mean), "n_params": int(vs.n_parameters),
      "dtype": str(jax.tree_util.tree_leaves(vs.parameters)[0].dtype),
      "versions": [nk.__version__, jax.__version__]}}))
"""


def netket_script(name: str, iterations: int, warmup: int, final: int) -> str:
    p = dict(PROBLEMS[name], name=name, iterations=iterations, warmup=warmup, final=final)
    p["lr"] = p.pop("lr_netket")
    return NETKET_SCRIPT.format(params=p)


def run_netket(python: str, name: str, iterations: int, warmup: int, final: int) -> dict:
    env = {**os.environ, **NETKET_ENV}
    proc = subprocess.run(
        [python, "-c", netket_script(name, iterations, warmup, final)],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"NetKet run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")


def _physml_problem(name: str, compile: bool):
    p = PROBLEMS[name]
    init = torch.Generator().manual_seed(0)
    if name == "tfim":
        n = p["L"]
        h = tfim(n, nearest_bonds((n,)), 1.0)
        model = RBM(n, p["alpha"], generator=init)
        move, mag = "flip", None
    else:
        shape = (p["L"], p["L"])
        n = p["L"] ** 2
        h = heisenberg(n, nearest_bonds(shape))
        model = MarshallSign(
            SymmetricRBM(translation_table(shape), p["alpha"], generator=init), sublattice(shape)
        )
        move, mag = "exchange", 0
    opts = MetropolisOptions(
        n_chains=p["chains"], sweeps_per_sample=p["sweep"],
        burn_in_sweeps=round(p["discard"] * p["sweep"]), move=move, magnetization=mag,
        compile=compile,
    )  # fmt: skip
    return h, model, MetropolisSampler(n, opts), p


def run_physml(name: str, iterations: int, warmup: int, final: int, compile: bool) -> dict:
    """Per-iteration time of run_vmc after ``warmup`` iterations, and the final energy."""
    h, model, sampler, p = _physml_problem(name, compile)
    g = RandomStreams(1)
    opt = OptimizerOptions(lr=2 * p["lr_netket"], sr=SROptions(diag_shift=p["shift"]))
    kw = dict(optimizer=opt, streams=g, n_samples=p["samples"], eval_samples=p["chains"])
    t = time.perf_counter()
    run_vmc(h, model, sampler, iterations=warmup, **kw)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    run_vmc(h, model, sampler, iterations=iterations, **kw)
    dt = (time.perf_counter() - t) / iterations
    samples = sampler.sample(model, final, g)
    tt, c, n = samples.shape
    e = local_energy_rbm(LocalOperator(h), rbm_form(model), samples.reshape(-1, n))
    st = energy_statistics(e.reshape(tt, c))
    n_params = sum(q.numel() for q in model.parameters())
    return {"ms": dt * 1e3, "warmup_s": warm, "energy": st["energy"],
            "stderr": st["energy_stderr"], "n_params": n_params, "dtype": "float64"}  # fmt: skip


def baseline_iteration_time(iterations: int) -> float:
    """Hand-written TFIM VMC: analytic RBM, single-flip Metropolis (full forward pass per
    proposal), explicit E_loc, dense SR; same sizes as the tfim problem."""
    p = PROBLEMS["tfim"]
    L, n_chains, shift, lr = p["L"], p["chains"], p["shift"], 2 * p["lr_netket"]
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    m = p["alpha"] * L
    a = torch.zeros(L, dtype=dt)
    b = torch.zeros(m, dtype=dt)
    w = 0.01 * torch.randn(m, L, generator=g, dtype=dt)

    def logpsi(s):
        th = s @ w.T + b
        return s @ a + (th.abs() + torch.log1p(torch.exp(-2 * th.abs())) - math.log(2)).sum(-1)

    s = (1 - 2 * torch.randint(0, 2, (n_chains, L), generator=g)).to(dt)
    rows = torch.arange(n_chains)
    per_chain = math.ceil(p["samples"] / n_chains)

    def step(s, lp):
        i = torch.randint(0, L, (n_chains,), generator=g)
        sp = s.clone()
        sp[rows, i] *= -1
        lpp = logpsi(sp)
        acc = torch.rand(n_chains, generator=g, dtype=dt).log() < 2 * (lpp - lp)
        return torch.where(acc[:, None], sp, s), torch.where(acc, lpp, lp)

    t0 = 0.0
    for it in range(iterations + 3):
        if it == 3:
            t0 = time.perf_counter()
        lp = logpsi(s)
        for _ in range(p["discard"] * L):
            s, lp = step(s, lp)
        out = []
        for _ in range(per_chain):
            for _ in range(L):
                s, lp = step(s, lp)
            out.append(s)
        x = torch.cat(out)  # (B, L)
        lx = logpsi(x)
        flipped = x.unsqueeze(1) * (1 - 2 * torch.eye(L, dtype=dt))  # (B, L, L)
        ratios = torch.exp(logpsi(flipped.reshape(-1, L)).reshape(-1, L) - lx[:, None])
        e = -(x * torch.roll(x, -1, 1)).sum(1) - ratios.sum(1)
        th = torch.tanh(x @ w.T + b)
        o = torch.cat([(th[:, :, None] * x[:, None, :]).reshape(len(x), -1), th, x], 1)
        ob = o - o.mean(0)
        f = ob.T @ (e - e.mean()) / len(x)
        smat = ob.T @ ob / len(x) + shift * torch.eye(o.shape[1], dtype=dt)
        d = torch.linalg.solve(smat, f)
        w -= lr * d[: m * L].reshape(m, L)
        b -= lr * d[m * L : m * L + m]
        a -= lr * d[m * L + m :]
    return (time.perf_counter() - t0) / iterations


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=100, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    ap.add_argument("--final", type=int, default=20000, help="samples of the final estimate")
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--netket", default="/tmp/nkvenv/bin/python", help="python with netket")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile'd chains (meant for GPUs; compiles ~30 s)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the torch baseline")
    ap.add_argument("--print-netket", choices=list(PROBLEMS), help="print a NetKet script")
    args = ap.parse_args()
    if args.print_netket:
        print(netket_script(args.print_netket, args.iterations, args.warmup, args.final))
        return
    have_nk = os.path.exists(args.netket)
    rows = []
    for name in args.problems:
        variants = [("physml", False)] + ([("physml compile", True)] if args.compile else [])
        for label, comp in variants:
            with thread_limits():  # the driver's default: one thread
                r = run_physml(name, args.iterations, args.warmup, args.final, comp)
            rows.append((name, label, r))
        if have_nk:
            try:
                rows.append((name, "netket", run_netket(args.netket, name, args.iterations,
                                                        args.warmup, args.final)))  # fmt: skip
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"netket {name}: {exc}", file=sys.stderr)
    print(f"{args.iterations} timed iterations after {args.warmup} warm-up; final estimate "
          f"from {args.final} samples; single-threaded CPU, float64")  # fmt: skip
    print(f"{'problem':11} {'code':15} {'ms/iter':>8} {'warmup s':>9} {'params':>6} "
          f"{'E':>12} {'stderr':>8} {'rel. err':>9}")  # fmt: skip
    for name, label, r in rows:
        rel = abs(r["energy"] - PROBLEMS[name]["exact"]) / abs(PROBLEMS[name]["exact"])
        print(f"{name:11} {label:15} {r['ms']:8.1f} {r['warmup_s']:9.1f} {r['n_params']:6d} "
              f"{r['energy']:12.5f} {r['stderr']:8.5f} {rel:9.2e}")  # fmt: skip
    for name in args.problems:
        nk = [r for n, lab, r in rows if n == name and lab == "netket"]
        for n, lab, r in rows:
            if n == name and lab != "netket" and nk:
                print(f"{name}: netket / {lab} time ratio = {nk[0]['ms'] / r['ms']:.2f}")
    if not args.no_baseline and "tfim" in args.problems:
        with thread_limits():
            base = baseline_iteration_time(min(args.iterations, 20))
        ours = [r["ms"] for n, lab, r in rows if n == "tfim" and lab == "physml"]
        print(f"tfim hand-written torch baseline: {base * 1e3:.1f} ms / iteration"
              + (f" (baseline / physml = {base * 1e3 / ours[0]:.2f})" if ours else ""))  # fmt: skip


if __name__ == "__main__":
    main()
