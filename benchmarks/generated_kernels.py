"""Spin flips per nanosecond of the generated local-update kernels, against baselines in the
same run, on whatever device is there.

2D Ising, periodic L x L, checkerboard Metropolis at T = 2. A flip is an attempted update,
random numbers included. Columns (flips/ns, median of --repeats interleaved measurements):

- generated: physml's sampler with its generated kernel (numba on the CPU, Triton on CUDA),
  as a run uses it (int8 codes held between sweeps, float values handed back each sweep);
- kernel only: the same kernel's calls alone on int8 codes (what the hardware does);
- torch path: the same sampler with ``kernel = torch`` (the lowered torch code);
- hand torch: a hand-written vectorised torch checkerboard (rolls, torch.rand);
- hand numba (CPU): a hand-written numba int8 checkerboard, acceptance table by local field,
  random numbers drawn inside the kernel (numba's own generator), one thread;
- hand xorshift (CPU): the same with an inline xorshift64* generator (the cheapest honest
  in-kernel generator); the last column is kernel only / the faster hand-written kernel.

Also printed: the device's measured copy bandwidth and the int8 bound it implies (3 bytes moved
per flip: the spin read and written, the neighbours mostly from cache), and the energy per site
at T = 2 from the generated kernel against Onsager's u = -1.745564 (3 sigma).

    python benchmarks/generated_kernels.py                         # CPU: L = 256 .. 4096
    python benchmarks/generated_kernels.py --sizes 1024 4096 16384 32768   # on a GPU
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from ising_checkerboard import rate  # the same timing (flips/ns, device synced)

import physml_lang
from physml_lang.runtime.samplers import parallel_acceptance

ISING = """
model Ising(L: int = 64) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
"""
ONSAGER_U_T2 = -1.745564  # energy per site of the infinite lattice at T = 2 (J = 1)
BYTES_PER_FLIP = 3


def sampler(L: int, beta: float, device: torch.device, kernel: str, chains: int = 1,
            start: str = "random"):  # fmt: skip
    program = physml_lang.compile(ISING, L=L)
    smp = program.sampler("metropolis", beta=beta, chains=chains, seed=0, device=str(device),
                          update="checkerboard", kernel=kernel, start=start)  # fmt: skip
    smp.track_acceptance = False
    return smp


def generated(L, beta, device):
    smp = sampler(L, beta, device, "auto")
    if smp.kernel is None:
        return None
    return smp.initial_state(), smp.sweep


def kernel_only(L, beta, device):
    smp = sampler(L, beta, device, "auto")
    k = smp.kernel
    if k is None:
        return None
    codes = k.codes(smp.initial_state()["s"])

    def sweep(codes):
        key = smp.streams.next_key()
        for c in range(k.n_colours):
            k._launch(codes, c, key, 0, 0, 0)
        return codes

    return codes, sweep


def torch_path(L, beta, device):
    smp = sampler(L, beta, device, "torch")
    return smp.initial_state(), smp.sweep


def hand_torch(L, beta, device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.arange(L, device=device)
    masks = [(x[:, None] + x[None, :]) % 2 == c for c in (0, 1)]
    s = (torch.randint(0, 2, (1, L, L), generator=g, device=device) * 2 - 1).float()
    b = torch.tensor(beta, device=device)

    def sweep(s):
        for mask in masks:
            nb = (torch.roll(s, 1, 1) + torch.roll(s, -1, 1) + torch.roll(s, 1, 2)
                  + torch.roll(s, -1, 2))  # fmt: skip
            accept = (torch.rand(s.shape, generator=g, device=device)
                      < parallel_acceptance(b, 2 * s * nb)) & mask  # fmt: skip
            s = torch.where(accept, -s, s)
        return s

    return s, sweep


_HAND: list = []


def _hand_numba_kernel():
    if not _HAND:
        from numba import njit

        @njit(cache=False, nogil=True)
        def sweep(s, table):
            L = s.shape[0]
            for c in range(2):
                for i in range(L):
                    ip = i + 1 if i + 1 < L else 0
                    im = i - 1 if i > 0 else L - 1
                    for j in range((i + c) % 2, L, 2):
                        jp = j + 1 if j + 1 < L else 0
                        jm = j - 1 if j > 0 else L - 1
                        h = s[ip, j] + s[im, j] + s[i, jp] + s[i, jm]
                        if np.random.random() < table[(s[i, j] * h + 4) // 2]:
                            s[i, j] = -s[i, j]

        @njit(cache=False, nogil=True)
        def sweep_xorshift(s, table, state):
            # the same loop with an inline xorshift64* generator (state: one uint64)
            L = s.shape[0]
            x = state[0]
            for c in range(2):
                for i in range(L):
                    ip = i + 1 if i + 1 < L else 0
                    im = i - 1 if i > 0 else L - 1
                    for j in range((i + c) % 2, L, 2):
                        jp = j + 1 if j + 1 < L else 0
                        jm = j - 1 if j > 0 else L - 1
                        h = s[ip, j] + s[im, j] + s[i, jp] + s[i, jm]
                        x ^= x >> np.uint64(12)
                        x ^= x << np.uint64(25)
                        x ^= x >> np.uint64(27)
                        r = (x * np.uint64(2685821657736338717)) >> np.uint64(40)
                        if np.float32(r) * np.float32(2.0**-24) < table[(s[i, j] * h + 4) // 2]:
                            s[i, j] = -s[i, j]
            state[0] = x

        _HAND.extend([sweep, sweep_xorshift])
    return _HAND


def hand_numba(L, beta, device, xorshift: bool = False):
    if device.type != "cpu":
        return None
    kernel, kernel_xorshift = _hand_numba_kernel()
    rng = np.random.default_rng(0)
    s = rng.choice(np.array([-1, 1], dtype=np.int8), size=(L, L))
    d = np.array([-8, -4, 0, 4, 8], dtype=np.float64)  # dE = 2 s h, h in -4..4 step 2
    table = np.where(d == 0, 0.5, np.minimum(1.0, np.exp(-beta * d)))

    state = np.array([0x9E3779B97F4A7C15], dtype=np.uint64)
    table32 = table.astype(np.float32)

    def sweep(s):
        if xorshift:
            kernel_xorshift(s, table32, state)
        else:
            kernel(s, table)
        return s

    return s, sweep


def hand_numba_xorshift(L, beta, device):
    return hand_numba(L, beta, device, xorshift=True)


def bandwidth(device: torch.device) -> float:
    """Measured copy bandwidth in bytes/s (read + write of a 256 MiB int8 buffer)."""
    n = 1 << 28 if device.type == "cuda" else 1 << 26
    a = torch.ones(n, dtype=torch.int8, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(5):
        b.copy_(a)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n * 5 / (time.perf_counter() - t)


def onsager_check(L: int, device: torch.device, sweeps: int) -> str:
    smp = sampler(L, 0.5, device, "auto", chains=4, start="ordered")
    state = smp.initial_state()
    for _ in range(sweeps // 4):
        state = smp.sweep(state)
    e = []
    for _ in range(sweeps):
        state = smp.sweep(state)
        e.append(smp.cm.energy(state).double() / (L * L))
    e = torch.stack(e).cpu().numpy()  # (sweeps, chains): chains independent
    means = e.mean(0)
    u, err = float(means.mean()), float(means.std(ddof=1) / math.sqrt(len(means)))
    z = abs(u - ONSAGER_U_T2) / err
    verdict = "ok" if z < 3 else "FAILS"
    return (f"u(T=2) = {u:.5f} +- {err:.5f} at L = {L} ({smp.kernel_note}); Onsager "
            f"{ONSAGER_U_T2} ({z:.1f} sigma: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser()
    cuda = torch.cuda.is_available()
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[1024, 4096, 16384, 32768] if cuda else [256, 1024, 4096])  # fmt: skip
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="target time per measurement")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1) if device.type == "cpu" else None
    bw = bandwidth(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"measured copy bandwidth {bw / 1e9:.1f} GB/s: int8 bound ~{bw / BYTES_PER_FLIP / 1e9:.2f}"
          f" flips/ns ({BYTES_PER_FLIP} bytes per flip)")  # fmt: skip
    columns = [("generated", generated), ("kernel only", kernel_only), ("torch path", torch_path),
               ("hand torch", hand_torch), ("hand numba", hand_numba),
               ("hand xorshift", hand_numba_xorshift)]  # fmt: skip
    print(f"{'L':>7} " + " ".join(f"{name:>12}" for name, _ in columns) + "   kernel/best hand numba")
    beta = 0.5
    for L in args.sizes:
        runs = []
        for _, factory in columns:
            made = factory(L, beta, device)
            if made is None:
                runs.append(None)
                continue
            state, step = made
            t = time.perf_counter()
            state = step(state)  # warm-up (compiles)
            t = time.perf_counter()
            state = step(state)
            per = max(time.perf_counter() - t, 1e-5)
            runs.append((state, step, max(2, int(args.seconds / per))))
        rates: list[list[float]] = [[] for _ in columns]
        for _ in range(args.repeats):  # interleaved: load changes hit every column alike
            for k, r in enumerate(runs):
                if r is not None:
                    rates[k].append(rate(r[1], r[0], L * L, r[2], device))
        med = [statistics.median(r) if r else float("nan") for r in rates]
        best_hand = max(med[4], med[5]) if not math.isnan(med[4]) else float("nan")
        ratio = med[1] / best_hand
        print(f"{L:>7} " + " ".join(f"{m:>12.4f}" for m in med) + f"   {ratio:>8.2f}")
    print(onsager_check(min(args.sizes[0], 256), device, 400))


if __name__ == "__main__":
    main()
