"""The standard benchmark objectives of global optimisation as batched torch callables.

Each ``f(x)`` takes points ``x`` of shape ``(K, n)`` and returns ``(K,)``; a
:class:`TestFunction` carries the global minimum value ``f_star``, its location ``x_star(n)`` and
the standard search box ``[lower, upper]^n`` of the literature (Yao, Liu & Lin 1999; the
MQHOA papers use the same boxes):

=============  ==================  =====================  =====================
name           box                 x*                     f*
=============  ==================  =====================  =====================
sphere         [-100, 100]         0                      0
rastrigin      [-5.12, 5.12]       0                      0
ackley         [-32.768, 32.768]   0                      0
griewank       [-600, 600]         0                      0
rosenbrock     [-5, 10]            1                      0
schwefel       [-500, 500]         420.9687...            0   (Schwefel 2.26)
=============  ==================  =====================  =====================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[torch.Tensor], torch.Tensor]

# Schwefel 2.26: f = 418.98... d - sum x_i sin(sqrt|x_i|); the constant is the maximum of
# x sin(sqrt|x|) on [-500, 500], reached at x = 420.968746...
SCHWEFEL_CONSTANT = 418.9828872724338
SCHWEFEL_X_STAR = 420.968746


def sphere(x: torch.Tensor) -> torch.Tensor:
    """sum_i x_i^2."""
    return (x * x).sum(-1)


def rastrigin(x: torch.Tensor) -> torch.Tensor:
    """10 n + sum_i (x_i^2 - 10 cos(2 pi x_i)): a parabola with a lattice of local minima."""
    return 10.0 * x.shape[-1] + (x * x - 10.0 * torch.cos(2 * math.pi * x)).sum(-1)


def ackley(x: torch.Tensor) -> torch.Tensor:
    """-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2 pi x) + 20 + e."""
    r = torch.sqrt((x * x).mean(-1))
    c = torch.cos(2 * math.pi * x).mean(-1)
    return -20.0 * torch.exp(-0.2 * r) - torch.exp(c) + 20.0 + math.e


def griewank(x: torch.Tensor) -> torch.Tensor:
    """1 + sum x_i^2 / 4000 - prod cos(x_i / sqrt(i)), i = 1..n."""
    i = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    return 1.0 + (x * x).sum(-1) / 4000.0 - torch.cos(x / torch.sqrt(i)).prod(-1)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2: a curved narrow valley."""
    a, b = x[..., :-1], x[..., 1:]
    return (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum(-1)


def schwefel(x: torch.Tensor) -> torch.Tensor:
    """Schwefel 2.26: 418.98 n - sum x_i sin(sqrt|x_i|); the best minimum is far from the next
    best ones, near the corner of the box."""
    return SCHWEFEL_CONSTANT * x.shape[-1] - (x * torch.sin(torch.sqrt(x.abs()))).sum(-1)


@dataclass(frozen=True)
class TestFunction:
    """An objective with its known minimum and standard box (the same bound on every axis)."""

    __test__ = False  # not a pytest test class

    name: str
    f: Objective
    lower: float
    upper: float
    x_star_value: float
    f_star: float = 0.0

    def x_star(self, n: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float64) -> torch.Tensor:  # fmt: skip
        """The global minimiser in n dimensions, (n,)."""
        return torch.full((n,), self.x_star_value, device=device, dtype=dtype)

    def box(self, n: int, device: torch.device | str = "cpu",
            dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(lower (n,), upper (n,))."""
        return (torch.full((n,), self.lower, device=device, dtype=dtype),
                torch.full((n,), self.upper, device=device, dtype=dtype))  # fmt: skip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


TEST_FUNCTIONS: dict[str, TestFunction] = {
    t.name: t
    for t in (
        TestFunction("sphere", sphere, -100.0, 100.0, 0.0),
        TestFunction("rastrigin", rastrigin, -5.12, 5.12, 0.0),
        TestFunction("ackley", ackley, -32.768, 32.768, 0.0),
        TestFunction("griewank", griewank, -600.0, 600.0, 0.0),
        TestFunction("rosenbrock", rosenbrock, -5.0, 10.0, 1.0),
        TestFunction("schwefel", schwefel, -500.0, 500.0, SCHWEFEL_X_STAR),
    )
}
