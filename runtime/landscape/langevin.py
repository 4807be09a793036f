"""Overdamped Langevin walkers on a potential f(x), and a chi^2 test of their histogram.

A population of W walkers x (W, n) moves by the Euler-Maruyama step of dx = -grad f dtau +
sqrt(2 D) dW (the unadjusted Langevin algorithm, ULA):

    x <- x + F(x) dtau + sqrt(2 D dtau) xi,   F = -grad f,  xi ~ N(0, 1),

whose density solves Fokker-Planck with stationary density exp(-f/D)/Z up to an O(dtau) bias.
``adjust=True`` makes the step a Metropolis-adjusted proposal (MALA): accepted with probability
min(1, pi(y) q(x|y) / (pi(x) q(y|x))), pi = exp(-f/D), q(y|x) = N(x + F(x) dtau, 2 D dtau), so
exp(-f/D)/Z is stationary exactly at any dtau.

Box walls (``lower``, ``upper``): ULA reflects a step that leaves the box in the wall (mirror
x -> 2 wall - x, folded for any overshoot), the discrete form of a zero-flux wall; MALA rejects a
proposal outside the box, which is exact Metropolis for the density restricted to the box.
Walker w draws its noise from stream w of ``streams``, so its path does not depend on W.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ..statistics import binning_analysis
from .errors import LandscapeError
from .grid import reflect_into_box

Tensor = torch.Tensor
Force = Callable[[Tensor], Tensor]
Objective = Callable[[Tensor], Tensor]
_CHECK_EVERY = 64  # steps between finiteness checks (one host sync each)
_MIN_EXPECTED = 5.0  # Pearson's rule: a chi^2 cell needs >= 5 expected counts


@dataclass(frozen=True)
class LangevinResult:
    """``positions`` (W, n) at the end; ``samples`` (T, W, n) every ``record_every`` steps
    (from step 0) or None; ``times`` (T',) of ``mean_f`` (T',), the population mean of f (None
    without ``f``); ``acceptance`` the MALA acceptance rate (None for ULA)."""

    positions: Tensor
    samples: Tensor | None
    times: Tensor
    mean_f: Tensor | None
    acceptance: float | None


def _box(x0: Tensor, lower: Tensor | Sequence[float] | None,
         upper: Tensor | Sequence[float] | None) -> tuple[Tensor, Tensor] | None:  # fmt: skip
    if lower is None and upper is None:
        return None
    if lower is None or upper is None:
        raise LandscapeError("a box needs both lower and upper", "give both, or neither")
    n = x0.shape[1]
    lo = torch.as_tensor(lower, dtype=x0.dtype, device=x0.device).reshape(-1).expand(n)
    up = torch.as_tensor(upper, dtype=x0.dtype, device=x0.device).reshape(-1).expand(n)
    if not bool((up > lo).all()) or not bool(torch.isfinite(lo).all() & torch.isfinite(up).all()):
        raise LandscapeError(f"the box [{lo.tolist()}, {up.tolist()}] needs lower < upper, "
                             "finite", "fix the walls")  # fmt: skip
    outside = ((x0 < lo) | (x0 > up)).any(dim=1)
    if bool(outside.any()):
        w = int(torch.nonzero(outside)[0])
        raise LandscapeError(f"walker {w} starts at {x0[w].tolist()}, outside the box "
                             f"[{lo.tolist()}, {up.tolist()}]",
                             "start the walkers inside the box")  # fmt: skip
    return lo, up


def _checked_force(force: Force, x: Tensor) -> Tensor:
    F = force(x)
    if not isinstance(F, Tensor) or F.shape != x.shape:
        shape = tuple(F.shape) if isinstance(F, Tensor) else type(F).__name__
        raise LandscapeError(f"the force returned {shape} for walkers {tuple(x.shape)}",
                             "the force -grad f must return one vector per walker (W, n)")  # fmt: skip
    return F


def langevin_walkers(force: Force, x0: Tensor, D: float, dtau: float, steps: int, streams,
                     lower: Tensor | Sequence[float] | None = None,
                     upper: Tensor | Sequence[float] | None = None, record_every: int = 0, *,
                     f: Objective | None = None, adjust: bool = False) -> LangevinResult:  # fmt: skip
    """Move W walkers (W, n) ``steps`` Langevin steps (module docstring). ``force`` = -grad f:
    (W, n) -> (W, n); ``f``: (W, n) -> (W,), needed by ``adjust`` (MALA) and for mean_f;
    ``streams`` a RandomStreams on x0's device. Raises LandscapeError for bad settings or
    walkers that stop being finite (checked every 64 steps)."""
    for name, value in (("D", D), ("dtau", dtau)):
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise LandscapeError(f"{name} = {value} must be positive and finite",
                                 f"give a positive {name}")  # fmt: skip
    D, dtau, steps = float(D), float(dtau), int(steps)
    if steps < 0:
        raise LandscapeError(f"steps = {steps} is negative", "give steps >= 0")
    x = torch.as_tensor(x0, device=getattr(x0, "device", "cpu")).detach()
    if x.dim() != 2 or not x.is_floating_point():
        raise LandscapeError(f"x0 must be a float tensor (walkers, n), got shape "
                             f"{tuple(x.shape)}", "give x0 as (W, n)")  # fmt: skip
    if not bool(torch.isfinite(x).all()):
        raise LandscapeError("x0 has non-finite coordinates", "start the walkers at finite x")
    if torch.device(streams.device) != x.device:
        raise LandscapeError(f"the random streams are on {streams.device}, the walkers on "
                             f"{x.device}", "create RandomStreams(seed, x0.device)")  # fmt: skip
    if adjust and f is None:
        raise LandscapeError("adjust=True (MALA) needs the objective f for its acceptance",
                             "pass f, or adjust=False")  # fmt: skip
    box = _box(x, lower, upper)
    noise_scale = math.sqrt(2 * D * dtau)
    F = _checked_force(force, x)
    fx = f(x) if f is not None else None
    if fx is not None and (not isinstance(fx, Tensor) or fx.shape != x.shape[:1]):
        shape = tuple(fx.shape) if isinstance(fx, Tensor) else type(fx).__name__
        raise LandscapeError(f"f returned {shape} for walkers {tuple(x.shape)}",
                             "f must return one value per walker (W,)")  # fmt: skip
    accepted = torch.zeros((), dtype=x.dtype, device=x.device)
    trace_every = record_every if record_every > 0 else max(1, steps // 100)
    samples, means, marks = [], [], []

    def record(k: int) -> None:
        if record_every > 0 and k % record_every == 0:
            samples.append(x.clone())
        if k % trace_every == 0 or k == steps:
            marks.append(k)
            if fx is not None:
                means.append(fx.mean())

    record(0)
    for k in range(1, steps + 1):
        xi = streams.normal(x.shape, x.dtype)
        y = torch.add(x, F, alpha=dtau).add_(xi, alpha=noise_scale)
        if adjust:
            fy, Fy = f(y), force(y)
            back = x - y - dtau * Fy  # the reverse move's deviation from its drift
            log_ratio = (fx - fy) / D + ((xi * xi).sum(1) / 2 - (back * back).sum(1)
                                         / (4 * D * dtau))  # fmt: skip
            ok = torch.log1p(-streams.uniform((x.shape[0],), torch.float64)).to(x.dtype) < (
                log_ratio)  # fmt: skip
            if box is not None:
                ok &= ((y >= box[0]) & (y <= box[1])).all(dim=1)
            ok &= torch.isfinite(fy)  # an infinite f(y) is a wall: reject
            accepted += ok.sum()
            x = torch.where(ok[:, None], y, x)
            F = torch.where(ok[:, None], Fy, F)
            fx = torch.where(ok, fy, fx)
        else:
            x = reflect_into_box(y, *box) if box is not None else y
            F = force(x)
            if f is not None and (k % trace_every == 0 or k == steps):
                fx = f(x)
        if k % _CHECK_EVERY == 0 or k == steps:
            bad = ~torch.isfinite(x).all(dim=1)
            if bool(bad.any()):
                raise LandscapeError(f"{int(bad.sum())} of {x.shape[0]} walkers stopped being "
                                     f"finite by step {k} (tau = {k * dtau:.4g}, dtau = "
                                     f"{dtau:g})", "take a smaller dtau (the drift step "
                                     "dtau |grad f| must stay small) or confine the walkers "
                                     "with lower/upper")  # fmt: skip
        record(k)
    acceptance = float(accepted) / max(1, steps * x.shape[0]) if adjust else None
    times = torch.tensor(marks, dtype=x.dtype, device=x.device) * dtau
    return LangevinResult(x, torch.stack(samples) if samples else None, times,
                          torch.stack(means) if means else None, acceptance)  # fmt: skip


def _simpson_weights(m: int) -> np.ndarray:
    """Composite Simpson weights of m (even) sub-intervals of unit width: (m + 1,)."""
    w = np.ones(m + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def bin_probabilities(f: Objective, D: float, bins: Sequence[int], lower: Sequence[float],
                      upper: Sequence[float], subintervals: int = 16,
                      device: torch.device | str = "cpu") -> np.ndarray:  # fmt: skip
    """The probability of every bin under exp(-f/D)/Z restricted to the box, by composite
    Simpson quadrature with ``subintervals`` per bin and axis (f evaluated on ``device``);
    shape ``bins`` (1 or 2 axes)."""
    m = subintervals
    axes = [np.linspace(lo, up, b * m + 1) for lo, up, b in zip(lower, upper, bins, strict=True)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    with torch.no_grad():
        values = f(torch.as_tensor(mesh.reshape(-1, len(bins)), dtype=torch.float64,
                                   device=device))  # fmt: skip
    u = values.detach().cpu().numpy().astype(np.float64).reshape(mesh.shape[:-1]) / D
    if not np.isfinite(u).all():
        raise LandscapeError("f is not finite on the histogram's box",
                             "shrink the box to where f is finite")  # fmt: skip
    weight = np.exp(-(u - u.min()))
    w = _simpson_weights(m)
    if len(bins) == 1:
        cells = np.lib.stride_tricks.sliding_window_view(weight, m + 1)[::m]
        prob = cells @ w
    else:
        cells = np.lib.stride_tricks.sliding_window_view(weight, (m + 1, m + 1))[::m, ::m]
        prob = np.einsum("abij,i,j->ab", cells, w, w)
    return prob / prob.sum()


def thinned(samples: Tensor) -> Tensor:
    """(T, W, n) recorded samples -> (S, n) nearly independent ones: every s-th record,
    s = ceil(2 tau_int), the largest coordinate's integrated autocorrelation time (binning
    analysis over the walkers as independent chains)."""
    x = samples.detach().cpu().double().numpy()
    tau = max(binning_analysis(x[:, :, a]).tau_int for a in range(x.shape[2]))
    stride = max(1, math.ceil(2 * tau)) if math.isfinite(tau) else 1
    return torch.as_tensor(x[::stride].reshape(-1, x.shape[2]), device="cpu")


def histogram_chi2(samples: Tensor, f: Objective, D: float, bins: int | Sequence[int],
                   lower: float | Sequence[float], upper: float | Sequence[float]
                   ) -> tuple[float, int, float]:  # fmt: skip
    """Pearson's chi^2 of the samples' histogram against exp(-f/D)/Z in the box.

    ``samples``: (S, n) or (S,) independent draws (e.g. independent walkers' last positions),
    or (T, W, n) records, first thinned by their autocorrelation time (:func:`thinned`); n = 1
    or 2. Samples outside the box are dropped (the test is of the density conditioned on the
    box). Bins expecting < 5 counts are pooled into one cell. Returns (chi2, dof, p_value).
    """
    x = torch.as_tensor(samples, device=getattr(samples, "device", "cpu")).detach()
    device = x.device
    if x.dim() == 3:
        x = thinned(x)
    x = x.reshape(x.shape[0], -1).cpu().double().numpy()
    n = x.shape[1]
    if n not in (1, 2):
        raise LandscapeError(f"histogram_chi2 tests 1 or 2 coordinates, the samples have {n}",
                             "project the samples onto one or two coordinates")  # fmt: skip
    nbins = [int(bins)] * n if isinstance(bins, int) else [int(b) for b in bins]
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,))
    up = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,))
    counts, _ = np.histogramdd(x, bins=nbins, range=list(zip(lo, up, strict=True)))
    total = counts.sum()
    expected = bin_probabilities(f, D, nbins, lo, up, device=device).reshape(-1) * total
    observed = counts.reshape(-1)
    small = expected < _MIN_EXPECTED
    obs_cells = [*observed[~small]]
    exp_cells = [*expected[~small]]
    if small.any():
        obs_cells.append(observed[small].sum())
        exp_cells.append(expected[small].sum())
        if exp_cells[-1] < _MIN_EXPECTED and len(exp_cells) > 1:
            smallest = int(np.argmin(exp_cells[:-1]))  # too little even pooled: join a cell
            obs_cells[smallest] += obs_cells.pop()
            exp_cells[smallest] += exp_cells.pop()
    obs, exp = np.asarray(obs_cells), np.asarray(exp_cells)
    dof = len(obs) - 1
    if dof < 1:
        raise LandscapeError(f"{int(total)} samples fill fewer than two chi^2 cells",
                             "take more samples or fewer bins")  # fmt: skip
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return chi2, dof, float(stats.chi2.sf(chi2, dof))
