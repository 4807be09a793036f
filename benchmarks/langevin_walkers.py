"""Walkers moved per second by the Langevin engine, against a vectorised numpy step.

Overdamped Langevin x <- x - k x dtau + sqrt(2 D dtau) xi in d = 3 (harmonic force F = -k x),
W = 1e4, 1e5, 1e6 walkers, measured in one run, interleaved:

- ``torch``: ``runtime.landscape.langevin.langevin_walkers`` as shipped (counter-based
  RandomStreams noise, finiteness check every 64 steps), on ``--device``;
- ``numpy``: the same step written in numpy (``Generator.standard_normal`` noise, in place).

Reported: walker-steps per second of each and torch / numpy.

Measured on one thread of a shared 2-core CPU (load average ~3 from other jobs; medians of 3
interleaved repeats; torch / numpy walker-steps/s): W = 10^4: 3.5e7 / 2.1e7 (1.64); 10^5:
2.2e7 / 2.1e7 (1.06); 10^6: 1.6e7 / 1.6e7 (0.98). Before the compiled CPU normals (same numbers,
bit for bit) the same machine gave 0.63, 0.68, 0.27 (medians of 2).

    python benchmarks/langevin_walkers.py                      # CPU, one thread, < 60 s
    python benchmarks/langevin_walkers.py --device cuda --walkers 10000 100000 1000000 10000000
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from physml_lang.runtime.landscape.langevin import langevin_walkers
from physml_lang.runtime.random import RandomStreams

K, D, DTAU, DIM = 1.0, 0.5, 0.01, 3


def torch_rate(walkers: int, steps: int, device: torch.device) -> float:
    """Walker-steps per second of ``langevin_walkers`` (a run of ``steps`` steps)."""
    x0 = torch.zeros(walkers, DIM, dtype=torch.float64, device=device)
    streams = RandomStreams(0, device)
    langevin_walkers(lambda x: -K * x, x0, D, DTAU, 2, streams)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = langevin_walkers(lambda x: -K * x, x0, D, DTAU, steps, streams)
    float(out.positions[0, 0])  # waits for the device
    return walkers * steps / (time.perf_counter() - t0)


def numpy_rate(walkers: int, steps: int) -> float:
    """Walker-steps per second of the same step in numpy."""
    rng = np.random.default_rng(0)
    x = np.zeros((walkers, DIM))
    noise = np.empty_like(x)
    scale = math.sqrt(2 * D * DTAU)
    t0 = time.perf_counter()
    for _ in range(steps):
        rng.standard_normal(out=noise)
        x *= 1 - K * DTAU
        x += scale * noise
    return walkers * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--walkers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--work", type=float, default=1e7,
                    help="walker-steps per measurement (steps = work / W, at least 5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"device {device}, d = {DIM}, harmonic force, float64, {a.threads} thread(s)")
    print(f"{'walkers':>10} {'steps':>6} {'torch walkers/s':>16} {'numpy walkers/s':>16} "
          f"{'torch/numpy':>12}")  # fmt: skip
    for w in a.walkers:
        steps = max(5, int(a.work // w))
        rates: dict[str, list[float]] = {"torch": [], "numpy": []}
        for _ in range(a.repeats):
            rates["torch"].append(torch_rate(w, steps, device))
            rates["numpy"].append(numpy_rate(w, steps))
        t, n = statistics.median(rates["torch"]), statistics.median(rates["numpy"])
        print(f"{w:>10} {steps:>6} {t:>16.3e} {n:>16.3e} {t / n:>12.2f}")


if __name__ == "__main__":
    main()
