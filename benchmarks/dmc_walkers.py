"""Walker-steps per second of diffusion Monte Carlo: the torch engine
(runtime.landscape.dmc.diffusion_monte_carlo) against a vectorised numpy implementation of the
same algorithm, measured in the same run.

Problem: hydrogen, V = -1/r, trial psi_T = exp(-0.9 r) (hand-written derivatives), dtau = 0.02,
float64. Both sides do per step: drift-diffusion proposal, Metropolis accept/reject with the
Green's function ratio, local energy, branching weights with dtau_eff (energies clipped at
E_est +- 2/sqrt(dtau), the engine's default), floor(w + u) copies
(torch.repeat_interleave / np.repeat), E_ref feedback. The numpy side draws from numpy's PCG64
(it is a baseline, not part of physml); the torch side from RandomStreams. Times exclude the
initial |psi_T|^2 sampling; the CPU runs are single-threaded (torch.set_num_threads(1)).

Usage: python benchmarks/dmc_walkers.py [--device cpu|cuda] [--sizes 1000 10000 100000]
       [--walker-steps 4000000] [--no-numpy]
With --device cuda the default sizes add 10^6 (the numpy column is still the CPU).

Measured on one thread of a shared 2-core CPU (load average ~3 from other jobs; medians of 3
interleaved repeats; walker-steps/s, torch / numpy): W = 10^3: 2.1e6 / 3.9e6 (0.55); 10^4:
5.9e6 / 5.8e6 (1.03); 10^5: 4.8e6 / 4.8e6 (1.01). Before the compiled CPU normals and the
one-gather accept/branch step the same machine gave 0.31, 0.66, 0.65. At 10^5 the normals cost
about as much as numpy's ziggurat now (one compiled pass for the SplitMix64 words of both
uniforms, then Box-Muller in torch's vectorised kernels, in place, in cache-sized blocks).
At 10^3 walkers a step is ~75 small tensor operations at ~3 us of dispatch each against numpy's
~1 us; only fusing the whole step (including the user's potential and trial) into one kernel
would close that. Not measured on a GPU (none was available).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from physml_lang.runtime.landscape.dmc import diffusion_monte_carlo
from physml_lang.runtime.random import RandomStreams

ALPHA, DTAU, D, FEEDBACK, CUTOFF = 0.9, 0.02, 0.5, 1.0, 2.0


def radius(x: torch.Tensor) -> torch.Tensor:
    """|x| per walker, (W, 3) -> (W,), as a matrix-vector product (faster than x.norm(dim=1))."""
    return torch.sqrt((x * x) @ torch.ones(3, device=x.device, dtype=x.dtype))


def hydrogen_potential(x: torch.Tensor) -> torch.Tensor:
    return -1.0 / radius(x)


class HydrogenTrial:
    """psi_T = exp(-alpha r): grad log psi = -alpha x / r, lap log psi = -2 alpha / r."""

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = radius(x)
        return -ALPHA * r, (-ALPHA / r).unsqueeze(1) * x, -2 * ALPHA / r

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return self.derivatives(x)[0]

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return self.derivatives(x)[1]

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return self.derivatives(x)[2]


def _numpy_local(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E_L, log psi, grad log psi) of hydrogen with exp(-alpha r)."""
    r = np.sqrt(np.einsum("wi,wi->w", x, x))
    grad = (-ALPHA / r)[:, None] * x
    lap = -2 * ALPHA / r
    return -D * (lap + ALPHA**2) - 1.0 / r, -ALPHA * r, grad


def numpy_dmc(walkers: int, steps: int, seed: int) -> tuple[float, int, float]:
    """The same algorithm in numpy; returns (mean mixed energy of the second half, walker-steps,
    seconds of propagation)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((walkers, 3))
    eloc, log_psi, grad = _numpy_local(x)
    e_ref, sigma, tau_d = float(eloc.mean()), math.sqrt(2 * D * DTAU), 2 * D * DTAU
    e_est, window = e_ref, CUTOFF / math.sqrt(DTAU)
    energies, prefix = np.zeros(steps), np.zeros(steps + 1)
    moved, proposed, walker_steps = 0.0, 0.0, 0
    start = time.perf_counter()
    for k in range(steps):
        size = x.shape[0]
        walker_steps += size
        step = tau_d * grad + sigma * rng.standard_normal((size, 3))
        xp = x + step
        ep, lp, gp = _numpy_local(xp)
        back = x - xp - tau_d * gp
        xi2 = np.einsum("wi,wi->w", step - tau_d * grad, step - tau_d * grad) / sigma**2
        log_ratio = 2 * (lp - log_psi) + 0.5 * xi2 - np.einsum("wi,wi->w", back, back) / (2 * tau_d)
        acc = np.log(rng.random(size)) < log_ratio
        sq = np.einsum("wi,wi->w", step, step)
        proposed += sq.sum()
        moved += sq[acc].sum()
        dtau_eff = DTAU * moved / proposed
        x_new = np.where(acc[:, None], xp, x)
        e_new = np.where(acc, ep, eloc)
        log_psi = np.where(acc, lp, log_psi)
        grad = np.where(acc[:, None], gp, grad)
        mean_e = 0.5 * (np.clip(eloc, e_est - window, e_est + window)
                        + np.clip(e_new, e_est - window, e_est + window))  # fmt: skip
        weight = np.exp(np.minimum(-dtau_eff * (mean_e - e_ref), 30.0))
        energies[k] = (weight * e_new).sum() / weight.sum()
        prefix[k + 1] = prefix[k] + energies[k]
        copies = np.floor(weight + rng.random(size)).astype(np.int64)
        x, eloc = np.repeat(x_new, copies, axis=0), np.repeat(e_new, copies)
        log_psi, grad = np.repeat(log_psi, copies), np.repeat(grad, copies, axis=0)
        half = (k + 1) // 2
        e_est = (prefix[k + 1] - prefix[half]) / (k + 1 - half)
        e_ref = e_est - FEEDBACK * math.log(x.shape[0] / walkers)
    seconds = time.perf_counter() - start
    return float(energies[steps // 2 :].mean()), walker_steps, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--walker-steps", type=float, default=8e6,
                        help="walker-steps per measurement (steps = this / walkers, >= 40)")
    parser.add_argument("--no-numpy", action="store_true")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved torch / numpy measurements per size (medians shown)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sizes = args.sizes or ([1000, 10000, 100000] + ([1000000] if device.type == "cuda" else []))
    trial = HydrogenTrial()
    # warm-up: allocator, kernels, (on CUDA) the fused random-number kernel
    diffusion_monte_carlo(hydrogen_potential, 3, 1000, DTAU, 20, 5, RandomStreams(0, device),
                          trial=trial)  # fmt: skip
    print(f"hydrogen DMC, psi_T = exp(-{ALPHA} r), dtau = {DTAU}, float64, device {device}")
    print(f"{'walkers':>9} {'steps':>6} {'torch walker-steps/s':>21} {'E torch':>10} "
          f"{'numpy walker-steps/s':>21} {'E numpy':>10} {'torch/numpy':>11}")
    for walkers in sizes:
        steps = max(40, int(args.walker_steps / walkers))
        torch_rates, numpy_rates = [], []
        for _ in range(args.repeats):  # interleaved: both sides see the same machine load
            r = diffusion_monte_carlo(hydrogen_potential, 3, walkers, DTAU, steps, steps // 2,
                                      RandomStreams(1, device), trial=trial)  # fmt: skip
            torch_rates.append(r.walker_steps / r.walltime)
            if not (args.no_numpy or walkers > 200000):
                e_np, ws_np, sec_np = numpy_dmc(walkers, steps, 1)
                numpy_rates.append(ws_np / sec_np)
        torch_rate = statistics.median(torch_rates)
        if not numpy_rates:
            print(f"{walkers:>9} {steps:>6} {torch_rate:>21.3g} {r.energy.mean:>10.5f}")
            continue
        numpy_rate = statistics.median(numpy_rates)
        print(f"{walkers:>9} {steps:>6} {torch_rate:>21.3g} {r.energy.mean:>10.5f} "
              f"{numpy_rate:>21.3g} {e_np:>10.5f} {torch_rate / numpy_rate:>11.2f}")


if __name__ == "__main__":
    main()
