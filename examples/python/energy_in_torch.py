"""The compiled energy inside your own torch code: differentiate through it.

``physml_lang.compile(path, **params)`` returns a program whose model is compiled to torch: a
lattice model's ``.energy`` is a ``torch.nn.Module`` (state -> energy per configuration), and a
field model's action ``S(phi)`` and its derived force ``dS/dphi`` are torch functions. They take
batches, run on the device of their inputs and are differentiable, so they compose with
autograd, optimisers and your own modules.

This script checks, in float64:

1. the 2D Ising energy (examples/ising2d.phys) with spins relaxed to real values: autograd's
   dE/ds equals -J * (sum of the four neighbours) - h, and gradient descent through it (a
   user's own loop) lowers the energy;
2. the phi^4 action (stdlib Phi4, examples/phi4_hmc.phys): autograd's dS/dphi equals the force
   the compiler derived symbolically, and both equal central finite differences.

    python3 examples/python/energy_in_torch.py       # prints the checks; exit 1 if one fails
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import physml_lang

EXAMPLES = Path(__file__).resolve().parents[1]


def ising_gradient(J: float = 1.0, h: float = 0.3, L: int = 6) -> float:
    """The largest deviation of autograd's dE/ds from -J * (neighbour sum) - h."""
    program = physml_lang.compile(EXAMPLES / "ising2d.phys", L=L, J=J, h=h)
    energy = program.energy  # a torch.nn.Module: {"s": (B, L, L)} -> (B,)
    generator = torch.Generator().manual_seed(0)
    s = (2 * torch.rand(3, L, L, generator=generator, dtype=torch.float64) - 1).requires_grad_()
    (grad,) = torch.autograd.grad(energy({"s": s}).sum(), s)
    neighbours = sum(torch.roll(s, shift, dim) for shift in (1, -1) for dim in (1, 2))
    return (grad - (-J * neighbours - h)).abs().max().item()


def relax_ising(J: float = 1.0, h: float = 0.3, L: int = 6, steps: int = 50) -> tuple[float, float]:
    """A user's own loop: spins s = tanh(a), Adam on a; the energy per site before and after."""
    energy = physml_lang.compile(EXAMPLES / "ising2d.phys", L=L, J=J, h=h).energy
    generator = torch.Generator().manual_seed(1)
    a = (0.1 * torch.randn(1, L, L, generator=generator, dtype=torch.float64)).requires_grad_()
    optimiser = torch.optim.Adam([a], lr=0.1)
    start = energy({"s": torch.tanh(a)}).item() / L**2
    for _ in range(steps):
        optimiser.zero_grad()
        loss = energy({"s": torch.tanh(a)}).sum()
        loss.backward()
        optimiser.step()
    return start, energy({"s": torch.tanh(a)}).item() / L**2


def phi4_force(kappa: float = 0.3, lam: float = 1.145, L: int = 4) -> tuple[float, float]:
    """Deviations of autograd's dS/dphi from the derived force, and of the derived force from
    central finite differences."""
    model = physml_lang.compile(EXAMPLES / "phi4_hmc.phys", L=L, kappa=kappa, lam=lam).compiled
    generator = torch.Generator().manual_seed(2)
    phi = torch.randn(2, L, L, generator=generator, dtype=torch.float64).requires_grad_()
    (autograd,) = torch.autograd.grad(model.action(phi).sum(), phi)
    derived = model.grad(phi.detach())
    eps = 1e-6
    finite = torch.zeros_like(derived)
    with torch.no_grad():
        for index in range(L * L):
            step = torch.zeros(L * L, dtype=torch.float64)
            step[index] = eps
            step = step.view(1, L, L)
            diff = (model.action(phi + step) - model.action(phi - step)) / (2 * eps)
            finite.view(2, -1)[:, index] = diff
    return (autograd - derived).abs().max().item(), (derived - finite).abs().max().item()


def main() -> int:
    torch.set_num_threads(1)
    checks = []
    ising = ising_gradient()
    checks.append(("Ising: autograd dE/ds = -J * neighbours - h", ising, ising < 1e-12))
    before, after = relax_ising()
    checks.append(("Ising: gradient descent lowers E/N", after - before, after < before - 0.5))
    auto, finite = phi4_force()
    checks.append(("phi^4: autograd dS/dphi = derived force", auto, auto < 1e-10))
    checks.append(("phi^4: derived force = finite differences", finite, finite < 1e-6))
    for what, value, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {value:.3g}")
    print(f"relaxed Ising energy per site: {before:.4f} -> {after:.4f}")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
