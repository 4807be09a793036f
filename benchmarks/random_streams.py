"""What counter-based random streams cost in a sweep.

The flagship's sweep (2D Ising, checkerboard Metropolis, L = 32, 21 temperatures x 16 chains
as one batch of 336 chains) runs three ways in one process, interleaved:

- ``streams``: as shipped: uniforms from ``RandomStreams`` (keyed by seed and chain);
- ``torch``: the same sampler drawing from a ``torch.Generator`` on the device (the baseline:
  fast, but its numbers depend on the device and on the batch);
- ``draws only``: the random numbers a sweep needs (one uniform per site), alone.

Reported: streams / torch (the sweep's slow-down from keyed streams) and draws / sweep (the
share of a sweep spent drawing).

    python benchmarks/random_streams.py                    # CPU, one thread
    python benchmarks/random_streams.py --device cuda --sizes 32 256 1024
    python benchmarks/random_streams.py --device cuda --eager   # without the fused CUDA kernel
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import physml_lang
from physml_lang.runtime import random as streams_module
from physml_lang.runtime.random import RandomStreams

ISING = """
model Ising(L: int = 32) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
"""


def _timed(step, sync, seconds: float) -> float:
    """Seconds per call of ``step``, measured over about ``seconds``."""
    step()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n % 8 == 0:
            sync()
            if time.perf_counter() - t0 > seconds:
                return (time.perf_counter() - t0) / n


def measure(L: int, chains: int, device: torch.device, seconds: float, repeats: int) -> dict:
    program = physml_lang.compile(ISING, L=L)
    keyed = program.sampler("metropolis", T=2.269, chains=chains, device=str(device),
                            update="checkerboard")  # fmt: skip
    plain = program.sampler("metropolis", T=2.269, chains=chains, device=str(device),
                            update="checkerboard")  # fmt: skip
    gen = torch.Generator(device=device).manual_seed(0)
    plain.uniform = lambda shape: torch.rand(shape, generator=gen, device=device,
                                             dtype=plain.cm.dtype)  # fmt: skip
    streams = RandomStreams(0, device)
    shape = (chains, L, L)
    state = {"keyed": keyed.initial_state(), "plain": plain.initial_state()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def sweep_keyed():
        state["keyed"] = keyed.sweep(state["keyed"])

    def sweep_plain():
        state["plain"] = plain.sweep(state["plain"])

    def draws_only():
        streams.uniform(shape, keyed.cm.dtype)

    times: dict[str, list[float]] = {"streams": [], "torch": [], "draws": []}
    with torch.no_grad():
        for _ in range(repeats):
            times["streams"].append(_timed(sweep_keyed, sync, seconds))
            times["torch"].append(_timed(sweep_plain, sync, seconds))
            times["draws"].append(_timed(draws_only, sync, seconds))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"L": L, "chains": chains, **{f"{k}_ms": 1e3 * v for k, v in med.items()},
            "slowdown": med["streams"] / med["torch"], "draw_share": med["draws"] / med["streams"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--chains", type=int, default=336)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eager", action="store_true", help="CUDA: the eager rounds, not fused")
    a = ap.parse_args()
    if a.eager:
        streams_module._FUSED[:] = [None]
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    fused = device.type == "cuda" and streams_module._fused_finalise() is not None
    print(f"device {device}, {a.chains} chains, {a.threads} thread(s), "
          f"{'fused' if fused else 'eager'} rounds")  # fmt: skip
    print(f"{'L':>6} {'streams ms':>11} {'torch ms':>9} {'draws ms':>9} {'slow-down':>10} "
          f"{'draw share':>11}")  # fmt: skip
    for L in a.sizes:
        r = measure(L, a.chains, device, a.seconds, a.repeats)
        print(f"{L:>6} {r['streams_ms']:>11.3f} {r['torch_ms']:>9.3f} {r['draws_ms']:>9.3f} "
              f"{r['slowdown']:>10.3f} {r['draw_share']:>11.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
