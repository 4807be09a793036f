"""The flagship scan on an idle machine and on a busy one, measured in the same run.

Runs ``physml run examples/ising2d.phys`` (the temperature scan, in a fresh process, default
threads) once with the machine idle, then again while background processes each run 2-thread
float64 matrix products (the load a shared machine sees), and prints the wall times and their
ratio. With the run's one thread, the ratio stays near the fair share: (threads of the
background + 1) / cores; a run that spawns a thread per core degrades far beyond it.

    python benchmarks/flagship_under_load.py [--background 2] [--set sweeps=500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD = """
import torch
torch.set_num_threads(2)
a = torch.randn(512, 512, dtype=torch.float64)
while True:
    a = torch.tanh(a @ a)
"""


def flagship(sets: list[str], extra: list[str]) -> float:
    """Wall seconds of the flagship scan in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(ROOT / "examples/ising2d.phys"),
               "--out", out, "--quiet", *[x for s in sets for x in ("--set", s)], *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--background", type=int, default=2, help="busy processes (2 threads each)")
    ap.add_argument("--set", action="append", default=[], help="--set passed to the flagship")
    ap.add_argument("--threads", type=int, help="--threads passed to the flagship")
    args = ap.parse_args()
    extra = ["--threads", str(args.threads)] if args.threads else []
    idle = flagship(args.set, extra)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    load = [subprocess.Popen([sys.executable, "-c", LOAD], env=env) for _ in range(args.background)]
    try:
        time.sleep(2.0)  # the load is running
        busy = flagship(args.set, extra)
    finally:
        for p in load:
            p.kill()
    cores = os.cpu_count() or 1
    print(f"flagship idle {idle:.1f} s, with {args.background} background 2-thread processes "
          f"{busy:.1f} s: {busy / idle:.2f}x slower (fair-share floor "
          f"{(2 * args.background + 1) / cores:.2f}x on {cores} cores)")


if __name__ == "__main__":
    main()
