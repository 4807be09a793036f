"""Learner throughput against hand-written torch in the same run.

1. RBM CD-1 training (784 visible, 256 hidden binary units, batch 128, SGD): samples per second
   of physml's derived trainer (free energy + block Gibbs from the .phys model) vs a hand-written
   torch RBM (sigmoid conditionals, softplus free energy, the same loss and optimiser).
2. Hopfield recall at N = 10^4, T = 0: sequential single-site steps per second (one chain),
   physml's sequential sweep (and the generic per-site local energies it replaced) vs a
   hand-written loop on h = W s.

    OMP_NUM_THREADS=2 python benchmarks/learners_rbm.py [--quick]
"""

from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

import physml_lang
from physml_lang.api import bind_runtime
from physml_lang.catalogue.boltzmann import CDOptions, ConstantOptions, SGDOptions
from physml_lang.runtime.learners.gibbs import GibbsSampler, draw
from physml_lang.runtime.learners.train import Trainer
from physml_lang.runtime.random import RandomStreams

QUICK = "--quick" in sys.argv
NV, NH, BATCH = 784, 256, 128
STEPS = 20 if QUICK else 100


def physml_rbm(data: torch.Tensor) -> float:
    program = physml_lang.load("import RBM\nrun r { train RBM via cd(1), data = x }")
    m = program.model("RBM", Nv=NV, Nh=NH)
    t = Trainer(m, data, "cd", CDOptions(k=1), "sgd", SGDOptions(lr=0.01), "constant",
                ConstantOptions(), 1, BATCH, RandomStreams(0))  # fmt: skip
    batches = data.split(BATCH)
    t.step(batches[0])
    start = time.perf_counter()
    for k in range(STEPS):
        t.step(batches[k % len(batches)])
    return STEPS * BATCH / (time.perf_counter() - start)


def torch_rbm(data: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(0)
    W = (0.01 * torch.randn(NV, NH, generator=g)).requires_grad_()
    a = torch.zeros(NV, requires_grad=True)
    b = torch.zeros(NH, requires_grad=True)
    opt = torch.optim.SGD([W, a, b], lr=0.01)

    def free_energy(v):
        return -(v @ a) - F.softplus(v @ W + b).sum(-1)

    def step(v0):
        with torch.no_grad():
            h = (torch.rand(len(v0), NH, generator=g) < torch.sigmoid(v0 @ W + b)).float()
            v1 = (torch.rand(len(v0), NV, generator=g) < torch.sigmoid(h @ W.T + a)).float()
        loss = free_energy(v0).mean() - free_energy(v1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    batches = data.split(BATCH)
    step(batches[0])
    start = time.perf_counter()
    for k in range(STEPS):
        step(batches[k % len(batches)])
    return STEPS * BATCH / (time.perf_counter() - start)


def hopfield(N: int, steps: int) -> tuple[float, float, float]:
    """(sweep path, per-step generic path, hand-written) single-site steps per second."""
    text = f"""
    model H(N: int = {N}, P: int = {N // 20}) {{
        graph complete(N)
        field s: spin on sites
        data xi: spin[P, N] = random(seed = 1)
        param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
        energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
    }}"""
    program = physml_lang.load(text)
    m = program.compile_ir(program.instantiate("H"), kind="boltzmann")
    m.freeze()
    g = RandomStreams(0)
    s = torch.tensor(m.model.data["xi"].values[:1], dtype=torch.float32)
    sampler = GibbsSampler(m, float("inf"), g)
    values = sampler.values["s"]

    # what recall runs: one sequential sweep (decomposition once, one row-dot per site)
    start = time.perf_counter()
    sampler.sweep({"s": s.clone()})
    sweep = N / (time.perf_counter() - start)
    # the generic per-site local energies (the path before the sweep decomposition)
    state = {"s": s.clone()}
    start = time.perf_counter()
    for k in range(steps):
        e = m.local_energies("s", state, k)
        state["s"][:, k] = draw(e, float("inf"), state["s"][:, k], values, g)
    generic = steps / (time.perf_counter() - start)
    W = m.matrices()[0]  # the same coupling matrix, hand-written update s_k = sign(h_k)
    x = s.clone()
    start = time.perf_counter()
    for k in range(N):
        h = x @ W[k]
        x[:, k] = torch.where(h == 0, x[:, k], torch.sign(-h))
    base = N / (time.perf_counter() - start)
    return sweep, generic, base


if __name__ == "__main__":
    bind_runtime()  # the Trainer finds its objective, optimiser and schedule in the catalogue
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(1024, NV, generator=g) < 0.2).float()
    ours, base = physml_rbm(data), torch_rbm(data)
    print(f"RBM CD-1 {NV}x{NH}, batch {BATCH}: physml {ours:,.0f} samples/s, hand-written "
          f"torch {base:,.0f} samples/s, ratio {ours / base:.2f}")
    N = 2000 if QUICK else 10_000
    sweep, generic, base = hopfield(N, 500 if QUICK else 3000)
    print(f"Hopfield T = 0 sequential recall, N = {N}: physml sweep {sweep:,.0f} steps/s "
          f"(ratio {sweep / base:.2f}), generic per-site local energies {generic:,.0f} steps/s "
          f"(ratio {generic / base:.2f}, the path before), hand-written {base:,.0f} steps/s")
