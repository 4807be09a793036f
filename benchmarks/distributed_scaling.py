"""Scaling of parallel tempering and VMC with processes (torch.distributed, gloo on the CPU).

Runs the same program with ``physml run --nproc N`` for N = 1, 2 (and more with ``--nproc``),
each in fresh processes with one thread, and reports the run's own time (``elapsed_s`` of
summary.json: from the driver's start, after the processes have met), the speed-up over one
process, the work per exchange on each rank and what crosses between processes per exchange.
The rows of every N are checked to be those of one process, bit for bit.

    python benchmarks/distributed_scaling.py [--nproc 1 2] [--repeat 2] [--quick]

Parallel tempering: a 2D Ising ladder of 16 temperatures x 4 chains at L = 64, replicas
exchanged every 40 sweeps (``--exchange``); per exchange the ranks gather the energies (one float64 per
replica) and, when a swap was accepted, the configurations (L^2 float32 per replica).
VMC: a CNN state of a 1D transverse-field Ising chain, 2048 samples per iteration; per
iteration the ranks gather the local energies and the log-derivatives O (samples x
parameters), and repeat the SR solve on the whole sample. On a machine whose cores are busy
with other work, the figures measure the load, not physml: run it on idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPERING = """
model Ising(L: int = 64, J: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
}

run tempering {
    model Ising(L = SIZE)
    sampler metropolis(chains = 4, sweeps = SWEEPS, burn_in = 50, exchange = EXCHANGE)
    scan T in linspace(1.8, 3.0, 16)
    measure energy_per_site = energy / sites, specific_heat
}
"""

VMC = """
model TFIM(L: int = 16, J: real = 1.0, g: real = 1.0) {
    lattice chain(L, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = -J * sum(Z[i] * Z[j] for (i, j) in bonds) - g * sum(X[i] for i in sites)
    symmetry translation, spin_flip
}

learner conv = cnn(channels = [8, 8], kernel_size = 5)

run vmc {
    model TFIM(L = 16)
    learner conv
    sampler metropolis(chains = 256, sweeps = 1)
    optimize conv via sr(lr = 0.02, diag_shift = 0.01)
    iterations ITERATIONS
    samples 2048, final = 2048
    reference none
    measure energy
}
"""


def run(source: str, nproc: int) -> tuple[float, list[dict]]:
    """(the run's elapsed seconds, its rows) on ``nproc`` processes."""
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "bench.phys", Path(folder) / "out"
        path.write_text(source)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(path), "--out", str(out),
               "--quiet", "--nproc", str(nproc)]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        summary = json.loads((out / "summary.json").read_text())
        return float(summary["elapsed_s"]), summary["rows"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2, help="runs per N (the fastest counts)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--exchange", type=int, default=40, help="sweeps between exchanges")
    ap.add_argument("--sweeps", type=int, default=4000, help="measured sweeps of tempering")
    args = ap.parse_args()
    size, sweeps, iterations = (16, 200, 5) if args.quick else (64, args.sweeps, 30)
    cases = {
        "tempering": TEMPERING.replace("SIZE", str(size)).replace("SWEEPS", str(sweeps))
                              .replace("EXCHANGE", str(args.exchange)),
        "vmc": VMC.replace("ITERATIONS", str(iterations)),
    }
    replicas, sites = 16 * 4, size * size
    exchanges = (50 + sweeps) // args.exchange
    for name, source in cases.items():
        times, reference = {}, None
        for n in args.nproc:
            best = None
            for _ in range(args.repeat):
                elapsed, rows = run(source, n)
                best = elapsed if best is None else min(best, elapsed)
                reference = rows if reference is None else reference
                assert rows == reference, f"{name}: rows on {n} processes differ from one's"
            times[n] = best
        base = times[args.nproc[0]]
        for n, t in times.items():
            line = f"{name:9s} nproc {n}: {t:7.2f} s, speed-up {base / t:4.2f}x"
            if name == "tempering":
                work = base / exchanges / n * 1e3  # one process's work per exchange, shared
                moved = replicas * (8 + 4 * sites) if n > 1 else 0
                line += (f"; {work:6.1f} ms of work per exchange on each rank, "
                         f"{moved / 1e6:.2f} MB gathered per exchange")  # fmt: skip
            else:
                line += f"; {t / iterations * 1e3:6.1f} ms per iteration"
            print(line, flush=True)
        print(f"{name}: rows identical on {args.nproc} processes", flush=True)


if __name__ == "__main__":
    main()
