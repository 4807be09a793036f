"""Time per VMC iteration: TFIM L=20 (g=1), RBM alpha=1, 1008 samples, 16 chains, SR.

Prints physml's time per iteration and the ratio against a hand-written baseline measured in
the same run (plain torch: analytic RBM derivatives, the same Metropolis schedule, dense SR).

NetKet comparison (not installed here; never install it into the main environment):

    python -m venv /tmp/nk && /tmp/nk/bin/pip install netket
    python benchmarks/quantum_vmc.py --print-netket > /tmp/nk_bench.py
    /tmp/nk/bin/python /tmp/nk_bench.py

The printed NetKet script uses the same model, sample count, chains, sweep size and SR shift and
prints NetKet's seconds per iteration (after JIT warm-up), to set beside the figure printed here.
Usage: python benchmarks/quantum_vmc.py [--iterations 20] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from physml_lang.compiler.pauli import tfim
from physml_lang.runtime.quantum.lattice import nearest_bonds
from physml_lang.runtime.quantum.learners import RBM
from physml_lang.runtime.quantum.vmc import (
    MetropolisOptions,
    MetropolisSampler,
    OptimizerOptions,
    SROptions,
    run_vmc,
)

L, ALPHA, N_SAMPLES, N_CHAINS, SHIFT, LR = 20, 1, 1008, 16, 0.01, 0.01
BURN_IN_SWEEPS = 6  # ~ NetKet's default n_discard_per_chain = n_samples_per_chain / 10

NETKET_SCRIPT = f"""
import time, netket as nk, optax
L = {L}
g = nk.graph.Chain(L, pbc=True)
hi = nk.hilbert.Spin(s=0.5, N=L)
H = nk.operator.Ising(hi, g, h=1.0, J=-1.0)  # -sum ZZ - sum X
sampler = nk.sampler.MetropolisLocal(hi, n_chains={N_CHAINS}, sweep_size=L)
vs = nk.vqs.MCState(sampler, nk.models.RBM(alpha={ALPHA}, param_dtype=float),
                    n_samples={N_SAMPLES}, n_discard_per_chain={BURN_IN_SWEEPS})
gs = nk.VMC(H, optax.sgd({LR}), variational_state=vs,
            preconditioner=nk.optimizer.SR(diag_shift={SHIFT}))
gs.run(n_iter=20)  # JIT warm-up
t = time.perf_counter(); gs.run(n_iter=100); dt = (time.perf_counter() - t) / 100
print(f"netket: {{dt * 1e3:.2f}} ms / iteration, E = {{vs.expect(H)}}")
"""


def physml_iteration_time(iterations: int, device: str) -> tuple[float, float]:
    g = torch.Generator(device=device).manual_seed(0)
    model = RBM(L, ALPHA, generator=torch.Generator().manual_seed(0)).to(device)
    sampler = MetropolisSampler(
        L,
        MetropolisOptions(n_chains=N_CHAINS, sweeps_per_sample=1.0, burn_in_sweeps=BURN_IN_SWEEPS),
        device=device,
    )
    h = tfim(L, nearest_bonds((L,)), 1.0)
    opts = OptimizerOptions(lr=LR, sr=SROptions(diag_shift=SHIFT, solver="cg"))
    kw = dict(optimizer=opts, generator=g, n_samples=N_SAMPLES, eval_samples=N_CHAINS)
    run_vmc(h, model, sampler, iterations=3, **kw)  # warm-up (vmap tracing, allocator)
    t = time.perf_counter()
    res = run_vmc(h, model, sampler, iterations=iterations, **kw)
    return (time.perf_counter() - t) / iterations, res.history["energy"][-1]


LANGUAGE_SOURCE = f"""
import TFIM
learner psi = rbm(alpha = {ALPHA})
run bench {{
    model TFIM(L = {L}, g = 1.0)
    learner psi
    sampler metropolis(chains = {N_CHAINS}, sweeps = 1.0, burn_in = {BURN_IN_SWEEPS})
    optimize psi via sr(lr = {LR}, diag_shift = {SHIFT}, solver = cg)
    samples {N_SAMPLES}, final = {N_CHAINS}
    reference none
    checkpoint every = 0
}}
"""


def language_iteration_time(iterations: int, device: str) -> tuple[float, float]:
    """The same VMC compiled from a .phys program (TFIM from the stdlib, Pauli sum derived by
    the compiler) and run through the vmc task: per-iteration time from the run's wall time,
    the fixed costs (compile, ED, final estimate) removed by differencing two lengths."""
    from physml_lang.program import load

    prog = load(LANGUAGE_SOURCE)
    times = []
    for n in (3, 3 + iterations):
        t = time.perf_counter()
        res = prog.run("bench", sets={"iterations": n}, device=device)
        times.append(time.perf_counter() - t)
    return (times[1] - times[0]) / iterations, res.rows[0]["energy"]["mean"]


def baseline_iteration_time(iterations: int, device: str) -> float:
    """Hand-written VMC: analytic RBM, single-flip Metropolis, explicit TFIM E_loc, dense SR."""
    g = torch.Generator(device=device).manual_seed(0)
    dt = torch.float64
    m = ALPHA * L
    a = torch.zeros(L, dtype=dt, device=device)
    b = torch.zeros(m, dtype=dt, device=device)
    w = 0.01 * torch.randn(m, L, generator=g, dtype=dt, device=device)

    def logpsi(s):
        th = s @ w.T + b
        return s @ a + (th.abs() + torch.log1p(torch.exp(-2 * th.abs())) - math.log(2)).sum(-1)

    s = (1 - 2 * torch.randint(0, 2, (N_CHAINS, L), generator=g, device=device)).to(dt)
    rows = torch.arange(N_CHAINS, device=device)
    per_chain = math.ceil(N_SAMPLES / N_CHAINS)

    def step(s, lp):
        i = torch.randint(0, L, (N_CHAINS,), generator=g, device=device)
        sp = s.clone()
        sp[rows, i] *= -1
        lpp = logpsi(sp)
        acc = torch.rand(N_CHAINS, generator=g, device=device, dtype=dt).log() < 2 * (lpp - lp)
        return torch.where(acc[:, None], sp, s), torch.where(acc, lpp, lp)

    t0 = None
    for it in range(iterations + 3):
        if it == 3:
            t0 = time.perf_counter()
        lp = logpsi(s)
        for _ in range(BURN_IN_SWEEPS * L):
            s, lp = step(s, lp)
        out = []
        for _ in range(per_chain):
            for _ in range(L):
                s, lp = step(s, lp)
            out.append(s)
        x = torch.cat(out)  # (B, L)
        lx = logpsi(x)
        flipped = x.unsqueeze(1) * (1 - 2 * torch.eye(L, dtype=dt, device=device))  # (B, L, L)
        ratios = torch.exp(logpsi(flipped.reshape(-1, L)).reshape(-1, L) - lx[:, None])
        e = -(x * torch.roll(x, -1, 1)).sum(1) - ratios.sum(1)
        th = torch.tanh(x @ w.T + b)
        o = torch.cat([x, th, (th[:, :, None] * x[:, None, :]).reshape(len(x), -1)], 1)
        ob = o - o.mean(0)
        f = ob.T @ (e - e.mean()) / len(x)
        smat = ob.T @ ob / len(x) + SHIFT * torch.eye(o.shape[1], dtype=dt, device=device)
        d = torch.linalg.solve(smat, f)
        a -= LR * d[:L]
        b -= LR * d[L : L + m]
        w -= LR * d[L + m :].reshape(m, L)
    return (time.perf_counter() - t0) / iterations


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--print-netket", action="store_true")
    args = p.parse_args()
    if args.print_netket:
        print(NETKET_SCRIPT)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    ours, energy = physml_iteration_time(args.iterations, args.device)
    lang, lang_energy = language_iteration_time(args.iterations, args.device)
    base = baseline_iteration_time(args.iterations, args.device)
    print(
        f"TFIM L={L} g=1, RBM alpha={ALPHA}, {N_SAMPLES} samples, {N_CHAINS} chains, SR "
        f"(device {args.device})"
    )
    print(f"physml:   {ours * 1e3:8.1f} ms / iteration (last E = {energy:.4f})")
    print(f"language: {lang * 1e3:8.1f} ms / iteration (compiled from .phys, vmc task; "
          f"E = {lang_energy:.4f})")
    print(f"baseline: {base * 1e3:8.1f} ms / iteration (hand-written torch)")
    print(f"ratio physml / baseline = {ours / base:.2f}")
    print(f"ratio language / baseline = {lang / base:.2f}")
    print("NetKet: see the module docstring (--print-netket) for the throwaway-venv comparison.")


if __name__ == "__main__":
    main()
