"""Spin updates per nanosecond: compiled checkerboard Metropolis vs a hand-written one.

Both run in the same process on the same device, interleaved, on the Ising model
E = -sum_<ij> s_i s_j near its critical temperature, on the periodic L x L square lattice and
on the honeycomb lattice of L x L cells (two sites per cell: the geometry's bond types and
sublattice colouring). The hand-written samplers are the usual vectorised torch checkerboards
(roll-based neighbour sums, same acceptance rule). The ratio compiled / hand-written measures
what the compiler and the geometry cost at run time (targets: >= 0.9 on the square lattice;
within 1.2x, i.e. >= 0.83, through a lattice with a basis). Also reports parse + check +
lower time of every stdlib model.

    python benchmarks/ising_checkerboard.py                 # L = 256 .. 2048 (CPU)
    python benchmarks/ising_checkerboard.py --sizes 256 4096 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import physml_lang
from physml_lang.api import stdlib_index
from physml_lang.runtime.random import RandomStreams
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


HONEYCOMB = """
model Honeycomb(L: int = 64) {
    lattice honeycomb(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
"""


def hand_written_honeycomb(L: int, beta: float, device, generator, dtype, streams=None):
    """Honeycomb checkerboard by hand: sublattice A at (n, 0) meets B at n, n - a1, n - a2.
    ``streams``: draw the uniforms from the runs' counter-based streams (the compiled sampler's
    source) instead of torch's generator, so that the ratio isolates the geometry."""
    s = (torch.randint(0, 2, (1, L, L, 2), generator=generator, device=device) * 2 - 1).to(dtype)
    b = torch.tensor(beta, device=device)

    def uniform(shape):
        if streams is not None:
            return streams.uniform(shape, dtype)
        return torch.rand(shape, generator=generator, device=device)

    def update(mine, other, sign, u):
        nb = other + torch.roll(other, sign, 1) + torch.roll(other, sign, 2)
        p = parallel_acceptance(b, 2 * mine * nb)
        return torch.where(u < p, -mine, mine)

    def sweep(s):
        u = uniform(tuple(s.shape))
        a = update(s[..., 0], s[..., 1], 1, u[..., 0])
        bb = update(s[..., 1], a, -1, u[..., 1])
        return torch.stack([a, bb], -1)

    return s, sweep


def hand_written_honeycomb_streams(L: int, beta: float, device, generator, dtype):
    return hand_written_honeycomb(L, beta, device, generator, dtype,
                                  RandomStreams(0, device=device))  # fmt: skip


def compiled(L: int, beta: float, device, seed: int, source: str = ISING):
    program = physml_lang.compile(source, L=L)
    sampler = program.sampler("metropolis", beta=beta, chains=1, seed=seed, device=str(device),
                              update="checkerboard", kernel="torch")  # fmt: skip
    sampler.track_acceptance = False  # the same work as the hand-written sweep
    return sampler.initial_state(), sampler.sweep


def rate(step, state, n_sites: int, sweeps: int, device) -> float:
    """Spin updates per nanosecond over ``sweeps`` sweeps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(sweeps):
        state = step(state)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_sites * sweeps / (time.perf_counter() - t) / 1e9


def compare(name: str, hand_factory, source: str, sites_per_cell: int, beta: float,
            args, device) -> None:  # fmt: skip
    print(f"\n{name}: {'L':>6} {'compiled flips/ns':>18} {'hand-written':>13} {'ratio':>7}")
    for L in args.sizes:
        g = torch.Generator(device=device).manual_seed(0)
        s_hand, hand = hand_factory(L, beta, device, g, torch.float32)
        s_comp, comp = compiled(L, beta, device, 0, source)
        state = {"s": s_comp["s"]}
        n = L * L * sites_per_cell
        # warm up, and size the measurement to ~args.seconds
        t = time.perf_counter()
        s_hand = hand(s_hand)
        state = comp(state)
        per = max(time.perf_counter() - t, 1e-4) / 2
        sweeps = max(2, int(args.seconds / per))
        rc, rh = [], []
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            rc.append(rate(comp, state, n, sweeps, device))
            rh.append(rate(hand, s_hand, n, sweeps, device))
        c, h = statistics.median(rc), statistics.median(rh)
        print(f"{'':>{len(name) + 1}} {L:>6} {c:>18.4f} {h:>13.4f} {c / h:>7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="target time per measurement")
    ap.add_argument("--lattices", nargs="+", default=["square", "honeycomb"],
                    choices=["square", "honeycomb"])  # fmt: skip
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    if "square" in args.lattices:
        compare("square", hand_written, ISING, 1, 1 / 2.269185, args, device)
    if "honeycomb" in args.lattices:
        compare("honeycomb", hand_written_honeycomb, HONEYCOMB, 2, 1 / 1.518651, args, device)
        print("(hand-written drawing from the same counter-based streams as the compiled one)")
        compare("honeycomb", hand_written_honeycomb_streams, HONEYCOMB, 2, 1 / 1.518651, args,
                device)  # fmt: skip

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
