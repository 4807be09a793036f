"""Benchmark: HNN training throughput, physml vs a hand-written torch HNN (same run).

physml: ``runtime.dynamics.learners.HNN`` trained by ``train_vector_field`` (derivative MSE, Adam).
Hand-written: the same MLP (a copy of the same initial weights), x = cat(q, p) as a leaf,
``torch.autograd.grad(H(x).sum(), x, create_graph=True)``, vector field (dH/dp, -dH/dq), the
same loss, Adam with the same settings, the loss recorded every step (``loss.item()``) and a
final full-data loss (what physml's ``TrainResult`` holds). Both see identical data; the script
first checks that three steps of each, from the same weights, give the same losses.

Prints samples/s for a few batch sizes and the ratio physml / hand (1.0 = parity; > 1: physml
faster). Usage: python benchmarks/dynamics_hnn.py [--dtype float32] [--threads 1] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from physml_lang.api import bind_runtime
from physml_lang.runtime.dynamics.learners import HNN, train_vector_field
from physml_lang.runtime.random import RandomStreams


def hand_train(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, n: int,
               steps: int, lr: float) -> list[float]:
    """The textbook HNN loop: grad of sum(H) w.r.t. the input with create_graph, MSE, Adam."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    dq, dp = target[:, :n], target[:, n:]
    losses = []
    for _ in range(steps):
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xx).sum(), xx, create_graph=True)
        fq, fp = g[:, n:], -g[:, :n]
        loss = ((fq - dq) ** 2).mean() + ((fp - dp) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the final full-data loss, which physml's TrainResult also reports
    xx = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xx).sum(), xx)
    with torch.no_grad():
        losses.append(float(((g[:, n:] - dq) ** 2).mean() + ((g[:, :n] + dp) ** 2).mean()))
    return losses


def best_of(fns, repeats: int) -> list[float]:
    """Smallest wall time of each function over ``repeats`` interleaved rounds (after one warm-up
    each): robust against the load of a shared machine, which hits both alike."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--steps", type=int, default=20, help="optimisation steps per timed call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 200])
    ap.add_argument("--pairs", type=int, default=2, help="canonical pairs n")
    args = ap.parse_args()
    bind_runtime()  # runtime pieces find their implementations in the bound catalogue
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    n, steps, lr = args.pairs, args.steps, 1e-3
    print(f"HNN training, hidden {args.hidden}, n = {n} pairs, dtype {args.dtype}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, {steps} steps per call")
    print(f"{'batch':>7} {'physml samples/s':>17} {'hand samples/s':>15} {'physml/hand':>12}")
    for batch in (64, 256, 1024, 4096):
        gen = torch.Generator().manual_seed(batch)
        q = torch.randn(batch, n, generator=gen, dtype=dtype)
        p = torch.randn(batch, n, generator=gen, dtype=dtype)
        dq, dp = p.clone(), -q.clone()  # harmonic oscillator derivatives
        model = HNN(n, args.hidden, dtype=dtype, generator=torch.Generator().manual_seed(1))
        net = copy.deepcopy(model.H)
        x, target = torch.cat([q, p], -1), torch.cat([dq, dp], -1)

        streams = RandomStreams(batch)

        def physml(model=model, q=q, p=p, dq=dq, dp=dp, streams=streams):
            train_vector_field(model, q, p, dq, dp, streams, steps=steps, lr=lr)

        def hand(net=net, x=x, target=target):
            hand_train(net, x, target, n, steps, lr)

        # same arithmetic: one call each from the same initial weights gives the same losses
        m0, n0 = copy.deepcopy(model), copy.deepcopy(net)
        la = train_vector_field(m0, q, p, dq, dp, RandomStreams(batch), steps=3, lr=lr).losses
        lb = hand_train(n0, x, target, n, 3, lr)
        tol = 1e-9 if dtype == torch.float64 else 1e-4
        assert all(abs(a - b) <= tol * max(1.0, abs(b)) for a, b in zip(la, lb[:-1], strict=True)), (
            la, lb)
        tp, th = best_of([physml, hand], args.repeats)
        rp, rh = steps * batch / tp, steps * batch / th
        print(f"{batch:>7} {rp:>17.0f} {rh:>15.0f} {rp / rh:>12.2f}")


if __name__ == "__main__":
    main()
