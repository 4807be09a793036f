"""Optimisers as dynamics on a potential f(x) over a box: the result type, the bookkeeping of
batched independent runs (exact evaluation counts, best point, first hit of the target) and the
box reflection shared by :mod:`.mqhoa` and :mod:`.annealing` (re-exported here).

Shapes: a population of K points of n coordinates is ``(K, n)``; R independent runs (restarts,
seeds) are batched as ``(R, K, n)`` and flattened to ``(R K, n)`` to call ``f``, which maps
``(M, n) -> (M,)``. Every point ``f`` is called on is counted, and no point of a finished run is
evaluated: the set of running runs is read on the host once per iteration (one transfer of a few
numbers per run), which is what makes the counts exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import LandscapeError

Objective = Callable[[torch.Tensor], torch.Tensor]

# (evaluations, best f so far, scale sigma or temperature T at that point)
TraceRow = tuple[int, float, float]


@dataclass
class OptimiseResult:
    """One run of an optimiser.

    ``best_x`` (n,), ``best_f``: the best point evaluated; ``evaluations``: calls of f, point by
    point; ``evaluations_to_target``: the count at the first point with |f - f_target| < tol
    (None if never, or no target); ``trace``: rows (evaluations, best_f, scale or temperature);
    ``success``: the target was reached (False without a target); ``extras``: engine-specific
    outputs (population annealing: log Z ratios, family counts, effective population).
    """

    best_x: torch.Tensor
    best_f: float
    evaluations: int
    evaluations_to_target: int | None
    trace: list[TraceRow]
    success: bool
    extras: dict = field(default_factory=dict)


def check_box(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a box: 1-d tensors of equal length n >= 1 with lower < upper, finite."""
    lower = torch.as_tensor(lower, device=getattr(lower, "device", "cpu"))
    upper = torch.as_tensor(upper, device=lower.device, dtype=lower.dtype)
    if lower.ndim != 1 or lower.shape != upper.shape or lower.numel() == 0:
        raise LandscapeError(
            f"the box bounds must be two vectors of the same length n >= 1, got shapes "
            f"{tuple(lower.shape)} and {tuple(upper.shape)}",
            "give lower and upper as one value per coordinate")  # fmt: skip
    if not bool(torch.isfinite(lower).all() and torch.isfinite(upper).all()):
        raise LandscapeError("the box bounds must be finite",
                             "optimise over a bounded box [lower, upper]^n")  # fmt: skip
    if not bool((upper > lower).all()):
        bad = int(torch.nonzero(upper <= lower)[0, 0])
        raise LandscapeError(
            f"the box is empty along coordinate {bad}: lower = {float(lower[bad]):g} >= "
            f"upper = {float(upper[bad]):g}", "give lower < upper on every coordinate")  # fmt: skip
    return lower, upper


def check_positive(name: str, value: float, hint: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise LandscapeError(f"{name} must be a positive number, got {value!r}", hint)


def evaluate(f: Objective, x: torch.Tensor) -> torch.Tensor:
    """f on points (..., n), flattened to (M, n); returns (...) in x's dtype. A wrong shape from
    the user's f is a LandscapeError."""
    lead, n = x.shape[:-1], x.shape[-1]
    values = f(x.reshape(-1, n))
    if not isinstance(values, torch.Tensor) or values.shape != (math.prod(lead),):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values)
        raise LandscapeError(
            f"the objective must map points (M, n) = ({math.prod(lead)}, {n}) to values (M,), "
            f"got {shape}", "write f(x) as a batched function of x[:, i] returning one value "
            "per row")  # fmt: skip
    return values.to(x.dtype).reshape(lead)


class Runs:
    """Bookkeeping of R independent runs on the host: evaluations, best point and value, the
    first hit of the target, which runs still go, and their traces."""

    def __init__(self, runs: int, n: int, max_evaluations: int, f_target: float | None,
                 tol: float, device: torch.device, dtype: torch.dtype):  # fmt: skip
        if not (isinstance(max_evaluations, int) and max_evaluations > 0):
            raise LandscapeError(f"max_evaluations must be a positive integer, got "
                                 f"{max_evaluations!r}", "give a budget such as 10000 * n")  # fmt: skip
        check_positive("tol", tol, "give the success tolerance, e.g. tol = 1e-4")
        self.max_evaluations, self.f_target, self.tol = max_evaluations, f_target, tol
        self.evaluations = np.zeros(runs, dtype=np.int64)
        self.best_f = np.full(runs, math.inf)
        self.best_x = torch.zeros(runs, n, device=device, dtype=dtype)
        self.hit = np.full(runs, -1, dtype=np.int64)
        self.running = np.ones(runs, dtype=bool)
        self.traces: list[list[TraceRow]] = [[] for _ in range(runs)]

    def active(self) -> np.ndarray:
        return np.nonzero(self.running)[0]

    def can_afford(self, cost: int) -> None:
        """Stop the runs that cannot pay ``cost`` more evaluations."""
        self.running &= self.evaluations + cost <= self.max_evaluations

    def record(self, rows: np.ndarray, fx: torch.Tensor, x: torch.Tensor,
               scale: torch.Tensor | None = None, extra: torch.Tensor | None = None
               ) -> np.ndarray | None:  # fmt: skip
        """The runs ``rows`` (A,) evaluated points x (A, M, n) with values fx (A, M), in that
        order. Updates counts, best, target hits (exact: the index of the first hitting point
        within the batch) and stops the runs that hit. ``scale`` (A,) is written to the trace
        when a run improves; ``extra`` (A, E) comes back as numpy with the same transfer."""
        A, M = fx.shape
        if A == 0:
            return None
        bad = ~torch.isfinite(fx)
        fmin, jmin = torch.where(bad, math.inf, fx).min(1)
        cols = [fmin, jmin.to(fx.dtype), bad.any(1).to(fx.dtype)]
        if self.f_target is not None:
            hits = (fx - self.f_target).abs() < self.tol
            cols += [hits.any(1).to(fx.dtype), hits.to(torch.int8).argmax(1).to(fx.dtype)]
        if scale is not None:
            cols.append(scale.to(fx.dtype))
        k = len(cols)
        if extra is not None:
            cols += list(extra.to(fx.dtype).T)
        host = torch.stack(cols, 1).cpu().numpy()
        if host[:, 2].any():
            r = int(np.argmax(host[:, 2]))
            i = int(torch.nonzero(bad[r])[0, 0])
            point = x[r, i].tolist()
            raise LandscapeError(
                f"the objective returned {float(fx[r, i])} at x = {point[:6]}"
                f"{' ...' if len(point) > 6 else ''} (run {int(rows[r])})",
                "make f finite on the whole box, or shrink the box")  # fmt: skip
        before = self.evaluations[rows].copy()
        self.evaluations[rows] += M
        improved = host[:, 0] < self.best_f[rows]
        if improved.any():
            sel = np.nonzero(improved)[0]
            sel_t = torch.as_tensor(sel, device=x.device)
            j = torch.as_tensor(host[sel, 1].astype(np.int64), device=x.device)
            self.best_x[torch.as_tensor(rows[sel], device=x.device)] = x[sel_t, j]
            self.best_f[rows[sel]] = host[sel, 0]
        if self.f_target is not None:
            new = (host[:, 3] > 0) & (self.hit[rows] < 0)
            self.hit[rows[new]] = before[new] + host[new, 4].astype(np.int64) + 1
            self.running[rows[new]] = False
        for a in np.nonzero(improved)[0]:
            s = float(host[a, k - 1]) if scale is not None else math.nan
            self.trace_row(int(rows[a]), s)
        return host[:, k:] if extra is not None else None

    def trace_row(self, r: int, scale: float, force: bool = False) -> None:
        """Append (evaluations, best_f, scale) to run r's trace: always when ``force`` (a scale
        change, the end), else when |best_f - f_ref| fell by 1 % since the last row (a few
        thousand rows at most from 1e4 down to 1e-8)."""
        trace, best = self.traces[r], float(self.best_f[r])
        if trace and not force:
            ref = self.f_target if self.f_target is not None else 0.0
            if abs(best - ref) > 0.99 * abs(trace[-1][1] - ref):
                return
        trace.append((int(self.evaluations[r]), best, scale))

    def results(self, extras: list[dict] | None = None) -> list[OptimiseResult]:
        out = []
        for r in range(len(self.evaluations)):
            if self.traces[r] and self.traces[r][-1][0] != self.evaluations[r]:
                self.trace_row(r, self.traces[r][-1][2], force=True)
            hit = int(self.hit[r]) if self.hit[r] >= 0 else None
            out.append(OptimiseResult(
                best_x=self.best_x[r].clone(), best_f=float(self.best_f[r]),
                evaluations=int(self.evaluations[r]), evaluations_to_target=hit,
                trace=self.traces[r], success=hit is not None,
                extras=extras[r] if extras is not None else {}))  # fmt: skip
        return out


def uniform_in_box(streams, shape: tuple[int, ...], lower: torch.Tensor,
                   upper: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Points uniform in the box, (*shape, n); the leading axis is the stream axis."""
    n = lower.numel()
    u = streams.uniform((shape[0], math.prod(shape[1:]) * n), lower.dtype)
    return lower + (upper - lower) * u.reshape(*shape, n)
