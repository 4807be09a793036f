"""Language-compiled dynamics vs hand-written torch, measured in the same run.

- Pendulum: leapfrog steps of a batch of pendulums with Hamilton's equations derived and lowered
  from the .phys declaration vs runtime/dynamics/system.pendulum (hand-written).
- phi^4: the derived, roll-stencil force dS/dphi vs runtime/dynamics/samplers.Phi4Action.grad.

Prints time per call and the ratio language / hand-written (1.0 = as fast as hand-written).
Run: OMP_NUM_THREADS=1 python benchmarks/dynamics_language.py
"""

import time

import torch

from physml_lang.api import bind_runtime, load
from physml_lang.runtime.dynamics.integrators import leapfrog_step
from physml_lang.runtime.dynamics.samplers import Phi4Action
from physml_lang.runtime.dynamics.system import as_system, pendulum


def bench(fn, repeat: int = 5, number: int = 50) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def main() -> None:
    bind_runtime()  # runtime pieces find their implementations in the bound catalogue
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    prog = load("import Pendulum, Phi4\n")
    lang = as_system(prog.model("Pendulum").system)
    hand = pendulum(1.0, 1.0, 3.0)
    for B in (1, 4096):
        q = torch.randn(B, 1, generator=gen, dtype=torch.float64)
        p = torch.randn(B, 1, generator=gen, dtype=torch.float64)
        tl = bench(lambda q=q, p=p: leapfrog_step(lang, q, p, 0.1))
        th = bench(lambda q=q, p=p: leapfrog_step(hand, q, p, 0.1))
        print(f"pendulum leapfrog step, batch {B:5d}: language {tl * 1e6:8.1f} us, "
              f"hand-written {th * 1e6:8.1f} us, ratio {tl / th:.2f}")
    for L in (16, 64):
        phi4 = prog.model("Phi4", L=L, kappa=0.25, lam=1.145)
        ref = Phi4Action(0.25, 1.145)
        x = torch.randn(16, L, L, generator=gen, dtype=torch.float64)
        tl = bench(lambda phi4=phi4, x=x: phi4.grad(x))
        th = bench(lambda ref=ref, x=x: ref.grad(x))
        print(f"phi^4 force, 16 chains x {L}^2: language {tl * 1e6:8.1f} us, hand-written "
              f"{th * 1e6:8.1f} us, ratio {tl / th:.2f}")


if __name__ == "__main__":
    main()
