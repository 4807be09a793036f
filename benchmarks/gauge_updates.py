"""Gauge link-update throughput (link updates per ns) against minimal hand-written torch code
measured in the same run, plus L-CNN forward/backward throughput.

    python benchmarks/gauge_updates.py [--device cpu|cuda] [--quick]

Metropolis rows time physml and the baseline alternately and report medians (run with
OMP_NUM_THREADS=1 on a shared machine). Counts: a Metropolis/heat-bath sweep updates every link
once (Metropolis: ``hits`` proposals count as one update); an HMC trajectory counts as one update
of every link.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from physml_lang.api import bind_runtime
from physml_lang.runtime.gauge import (
    heatbath_sweep,
    hmc_trajectory,
    hot_start,
    metropolis_sweep,
    wilson_action,
)
from physml_lang.runtime.gauge.lcnn import make_learner


def _timeit(fn, reps: int, device: str) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def _interleaved(ours, base, reps: int, device: str) -> tuple[float, float]:
    """Median times of ``ours`` and ``base`` timed alternately (robust on a shared, noisy
    machine: both see the same load)."""
    ours(), base()  # warm-up
    to, tb = [], []
    for _ in range(reps):
        for fn, acc in ((ours, to), (base, tb)):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            acc.append(time.perf_counter() - t)
    return statistics.median(to), statistics.median(tb)


# --- minimal hand-written baselines ----------------------------------------------------------


def u1_metropolis_2d_minimal(th: torch.Tensor, beta: float, g: torch.Generator,
                             step: float = 1.0) -> torch.Tensor:
    """2D U(1) checkerboard Metropolis written directly on angles (one hit)."""
    L1, L2 = th.shape[1:3]
    x, y = torch.meshgrid(torch.arange(L1), torch.arange(L2), indexing="ij")
    th = th.clone()
    for mu in (0, 1):
        nu = 1 - mu
        par = (y if mu == 0 else x).to(th.device) % 2
        for p in (0, 1):
            t_mu, t_nu = th[..., mu], th[..., nu]
            # staple angles: up: t_nu(x+mu) - t_mu(x+nu) - t_nu(x)
            up = torch.roll(t_nu, -1, 1 + mu) - torch.roll(t_mu, -1, 1 + nu) - t_nu
            dn = (-torch.roll(torch.roll(t_nu, -1, 1 + mu), 1, 1 + nu)
                  - torch.roll(t_mu, 1, 1 + nu) + torch.roll(t_nu, 1, 1 + nu))
            new = t_mu + step * (2 * torch.rand(t_mu.shape, generator=g, device=th.device,
                                                dtype=th.dtype) - 1)
            dS = -beta * (torch.cos(new + up) + torch.cos(new + dn)
                          - torch.cos(t_mu + up) - torch.cos(t_mu + dn))
            ok = (torch.rand(t_mu.shape, generator=g, device=th.device, dtype=th.dtype)
                  < torch.exp(-dS)) & (par == p)
            th[..., mu] = torch.where(ok, torch.remainder(new + math.pi, 2 * math.pi) - math.pi,
                                      t_mu)
    return th


def u1_hmc_autograd_minimal(th: torch.Tensor, beta: float, g: torch.Generator,
                            eps: float = 0.1, n: int = 10) -> torch.Tensor:
    """HMC with the force from autograd of the action (the naive hand-written way)."""

    def force(t):
        t = t.detach().requires_grad_(True)
        (s,) = torch.autograd.grad(wilson_action(t, "u1", beta).sum(), t)
        return -s

    p = torch.randn(th.shape, generator=g, device=th.device, dtype=th.dtype)
    h0 = 0.5 * (p**2).flatten(1).sum(1) + wilson_action(th, "u1", beta)
    t = th
    p = p + 0.5 * eps * force(t)
    for i in range(n):
        t = t + eps * p
        if i < n - 1:
            p = p + eps * force(t)
    p = p + 0.5 * eps * force(t)
    h1 = 0.5 * (p**2).flatten(1).sum(1) + wilson_action(t, "u1", beta)
    acc = torch.rand(h0.shape, generator=g, device=th.device, dtype=th.dtype) < torch.exp(h0 - h1)
    return torch.where(acc[:, None, None, None], t, th).detach()


def su2_metropolis_minimal(U: torch.Tensor, beta: float, g: torch.Generator,
                           eps: float = 0.5) -> torch.Tensor:
    """SU(2) Metropolis with explicit matrix staples (one hit), any d, checkerboard masks."""
    d = U.dim() - 4
    shape = U.shape[1:1 + d]
    coords = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    U = U.clone()
    dag = lambda m: m.conj().transpose(-1, -2)  # noqa: E731
    for mu in range(d):
        par = sum(coords[nu] for nu in range(d) if nu != mu) % 2
        for p in (0, 1):
            Um = [U[..., m, :, :] for m in range(d)]
            A = 0
            for nu in range(d):
                if nu == mu:
                    continue
                A = A + torch.roll(Um[nu], -1, 1 + mu) @ dag(torch.roll(Um[mu], -1, 1 + nu)) \
                    @ dag(Um[nu])
                A = A + torch.roll(dag(torch.roll(Um[nu], -1, 1 + mu)) @ dag(Um[mu]) @ Um[nu],
                                   1, 1 + nu)
            a = torch.randn((*Um[mu].shape[:-2], 4), generator=g, device=U.device,
                            dtype=torch.float64)
            a[..., 0] = 0
            n = a[..., 1:] / a[..., 1:].norm(dim=-1, keepdim=True)
            ang = eps * (2 * torch.rand(n.shape[:-1], generator=g, device=U.device,
                                        dtype=torch.float64) - 1)
            c, s = torch.cos(ang), torch.sin(ang)
            R = torch.stack([torch.stack([torch.complex(c, s * n[..., 2]),
                                          torch.complex(s * n[..., 1], s * n[..., 0])], -1),
                             torch.stack([torch.complex(-s * n[..., 1], s * n[..., 0]),
                                          torch.complex(c, -s * n[..., 2])], -1)], -2)
            new = R @ Um[mu]
            dS = -beta / 2 * (torch.diagonal(new @ A, 0, -2, -1).sum(-1).real
                              - torch.diagonal(Um[mu] @ A, 0, -2, -1).sum(-1).real)
            ok = (torch.rand(dS.shape, generator=g, device=U.device, dtype=torch.float64)
                  < torch.exp(-dS)) & (par.to(U.device) == p)
            U[..., mu, :, :] = torch.where(ok[..., None, None], new, Um[mu])
    return U


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    bind_runtime()  # make_learner finds the learners' implementations in the catalogue
    dev = args.device
    g = torch.Generator(device=dev).manual_seed(0)
    reps = 2 if args.quick else 5
    print(f"device: {dev}, threads: {torch.get_num_threads()}")
    print(f"{'case':<44} {'physml':>12} {'minimal':>12} {'ratio':>7}   (link updates / ns)")

    def report(name, n_links, t_ours, t_base=None):
        ours = n_links / (t_ours * 1e9)
        if t_base is None:
            print(f"{name:<44} {ours:>12.4f} {'-':>12} {'-':>7}")
        else:
            base = n_links / (t_base * 1e9)
            print(f"{name:<44} {ours:>12.4f} {base:>12.4f} {ours / base:>7.2f}")

    # U(1) 2D
    B, L = (16, 32) if args.quick else (64, 64)
    th = hot_start("u1", B, (L, L), g, device=dev)
    n = B * L * L * 2
    report(f"u1 2D L={L} B={B} metropolis (1 hit)", n,
           *_interleaved(lambda: metropolis_sweep(th, "u1", 2.0, g, 1.0, 1),
                         lambda: u1_metropolis_2d_minimal(th, 2.0, g), 3 * reps, dev))
    report(f"u1 2D L={L} B={B} heat-bath (von Mises)", n,
           _timeit(lambda: heatbath_sweep(th, "u1", 2.0, g), reps, dev))
    report(f"u1 2D L={L} B={B} HMC 10 steps (vs autograd)", n,
           _timeit(lambda: hmc_trajectory(th, "u1", 2.0, g, 0.1, 10), reps, dev),
           _timeit(lambda: u1_hmc_autograd_minimal(th, 2.0, g), reps, dev))
    # SU(2) 4D
    B, L = (4, 4) if args.quick else (8, 8)
    U = hot_start("su2", B, (L,) * 4, g, device=dev)
    n = B * L**4 * 4
    report(f"su2 4D L={L} B={B} metropolis (1 hit)", n,
           *_interleaved(lambda: metropolis_sweep(U, "su2", 2.3, g, 0.5, 1),
                         lambda: su2_metropolis_minimal(U, 2.3, g), 3 * reps, dev))
    report(f"su2 4D L={L} B={B} heat-bath (KP)", n,
           _timeit(lambda: heatbath_sweep(U, "su2", 2.3, g), reps, dev))
    report(f"su2 4D L={L} B={B} HMC 10 steps", n,
           _timeit(lambda: hmc_trajectory(U, "su2", 2.3, g, 0.05, 10), reps, dev))

    # L-CNN throughput
    print(f"\n{'L-CNN (channels [4, 8], K=1)':<44} {'configs/s fwd':>14} {'configs/s fwd+bwd':>18}")
    for group, shape, B in [("u1", (32, 32), 32), ("su2", (16, 16), 16), ("su2", (8,) * 4, 4)]:
        if args.quick:
            shape, B = tuple(max(4, s // 2) for s in shape), max(2, B // 4)
        model = make_learner("lcnn", group, len(shape), channels=[4, 8]).to(dev)
        cnn = make_learner("gauge_cnn", group, len(shape)).to(dev) if len(shape) <= 3 else None
        V = hot_start(group, B, shape, g, device=dev)

        def fwd(m=model, V=V):
            with torch.no_grad():
                m(V)

        def fb(m=model, V=V):
            m.zero_grad()
            m(V).sum().backward()

        tf, tb = _timeit(fwd, reps, dev), _timeit(fb, reps, dev)
        print(f"{'lcnn ' + group + ' ' + str(shape) + f' B={B}':<44} {B / tf:>14.1f} "
              f"{B / tb:>18.1f}")
        if cnn is not None:
            tb2 = _timeit(lambda m=cnn, V=V: m(V).sum().backward(), reps, dev)
            print(f"{'plain cnn ' + group + ' ' + str(shape):<44} {'':>14} {B / tb2:>18.1f}")


if __name__ == "__main__":
    main()
