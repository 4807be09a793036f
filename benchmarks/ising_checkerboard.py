"""Spin updates per nanosecond: compiled checkerboard Metropolis vs a hand-written one.

Both run in the same process on the same device, interleaved, on the 2D Ising model
E = -sum_<ij> s_i s_j at T = 2.269 (periodic L x L). The hand-written sampler is the usual
vectorised torch checkerboard (roll-based neighbour sum, same acceptance rule). The ratio
compiled / hand-written measures what the compiler costs at run time (target: >= 0.9).
Also reports parse + check + lower time of every stdlib model.

    python benchmarks/ising_checkerboard.py                 # L = 256 .. 2048 (CPU)
    python benchmarks/ising_checkerboard.py --sizes 256 4096 --device cuda --dtype int8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import physml_lang
from physml_lang.api import stdlib_index
from physml_lang.runtime.samplers import parallel_acceptance

ISING = """
model Ising(L: int = 64) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
"""


def hand_written(L: int, beta: float, device, generator, dtype):
    """A plain vectorised torch checkerboard Metropolis sweep: returns (state, sweep)."""
    x = torch.arange(L, device=device)
    parity = (x[:, None] + x[None, :]) % 2
    masks = [parity == 0, parity == 1]
    s = (torch.randint(0, 2, (1, L, L), generator=generator, device=device) * 2 - 1).to(dtype)

    def sweep(s):
        for mask in masks:
            nb = (torch.roll(s, 1, 1) + torch.roll(s, -1, 1) + torch.roll(s, 1, 2)
                  + torch.roll(s, -1, 2))  # fmt: skip
            delta = 2 * s * nb
            p = parallel_acceptance(torch.tensor(beta, device=device), delta)
            accept = (torch.rand(s.shape, generator=generator, device=device) < p) & mask
            s = torch.where(accept, -s, s)
        return s

    return s, sweep


def compiled(L: int, beta: float, device, seed: int):
    program = physml_lang.compile(ISING, L=L)
    sampler = program.sampler("metropolis", beta=beta, chains=1, seed=seed, device=str(device),
                              update="checkerboard")  # fmt: skip
    sampler.track_acceptance = False  # the same work as the hand-written sweep
    return sampler.initial_state(), sampler.sweep


def rate(step, state, L: int, sweeps: int, device) -> float:
    """Spin updates per nanosecond over ``sweeps`` sweeps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(sweeps):
        state = step(state)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return L * L * sweeps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="target time per measurement")
    args = ap.parse_args()
    device = torch.device(args.device)
    beta = 1 / 2.269185
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'L':>6} {'compiled flips/ns':>18} {'hand-written':>13} {'ratio':>7}")
    for L in args.sizes:
        g = torch.Generator(device=device).manual_seed(0)
        s_hand, hand = hand_written(L, beta, device, g, torch.float32)
        s_comp, comp = compiled(L, beta, device, 0)
        state = {"s": s_comp["s"]}
        # warm up, and size the measurement to ~args.seconds
        t = time.perf_counter()
        s_hand = hand(s_hand)
        state = comp(state)
        per = max(time.perf_counter() - t, 1e-4) / 2
        sweeps = max(2, int(args.seconds / per))
        rc, rh = [], []
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            rc.append(rate(comp, state, L, sweeps, device))
            rh.append(rate(hand, s_hand, L, sweeps, device))
        c, h = statistics.median(rc), statistics.median(rh)
        print(f"{L:>6} {c:>18.4f} {h:>13.4f} {c / h:>7.3f}")

    print("\nfront end: parse + check + lower (compile) per stdlib model")
    for name in sorted(stdlib_index()):
        t = time.perf_counter()
        p = physml_lang.compile(f"import {name}\n")
        cm = p.model(name)
        dt = time.perf_counter() - t
        lattice = getattr(cm, "lattice", None)
        size = f"({lattice.n_sites} sites)" if lattice is not None else ""
        print(f"  {name:<18} {dt * 1e3:8.1f} ms   {size}")


if __name__ == "__main__":
    main()
