"""The numbers read off classifier outputs: the P = 1/2 crossing with bootstrap errors, the
finite-size extrapolation T_c(L) = T_c + a L^(-1/nu), calibration (expected calibration error,
temperature scaling), principal components and the confusion W (numpy / torch, batched)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import curve_fit, least_squares


def crossing(ts: np.ndarray, p: np.ndarray, err: np.ndarray | None = None,
             method: str = "linear", level: float = 0.5) -> float | None:
    """Where p(T) (falling with T) crosses ``level``; None when it never does.

    ``linear``: interpolated between the two temperatures around it (where noise makes p
    cross several times, the median crossing). ``logistic``: a weighted straight-line fit of
    logit p(T) over every temperature with ``band`` < p < 1 - ``band`` (weights from ``err``),
    which uses all the points of a fine grid near the transition rather than two; it falls
    back to ``linear`` with fewer than three such points or a fit that does not fall."""
    d = p - level
    idx = np.nonzero((d[:-1] >= 0) & (d[1:] < 0) | (d[:-1] > 0) & (d[1:] <= 0))[0]
    if idx.size == 0:
        return None
    if method == "logistic":
        tc = _logit_fit(ts, p, err, level)
        if tc is not None:
            return tc
    i = idx[len(idx) // 2] if idx.size % 2 else idx[len(idx) // 2 - 1]
    t0, t1, d0, d1 = ts[i], ts[i + 1], d[i], d[i + 1]
    return float(t0 + (t1 - t0) * d0 / (d0 - d1)) if d0 != d1 else float(t0)


BAND = 0.1  # the logistic fit uses 0.1 < P < 0.9: away from the flat, noisy tails


def _logit_fit(ts: np.ndarray, p: np.ndarray, err: np.ndarray | None,
               level: float) -> float | None:  # fmt: skip
    """T where the weighted least-squares line through logit p(T) reaches logit(level)."""
    m = (p > BAND) & (p < 1 - BAND)
    if m.sum() < 3:
        return None
    t, q = ts[m], p[m]
    z = np.log(q / (1 - q)) - math.log(level / (1 - level))
    e = np.maximum(err[m], 1e-3) if err is not None else np.full(q.shape, 0.05)
    w = (q * (1 - q) / e) ** 2  # 1 / var(logit p) by the delta method
    tm = (w * t).sum() / w.sum()
    slope = (w * (t - tm) * z).sum() / (w * (t - tm) ** 2).sum()
    if not slope < 0:
        return None
    tc = tm - (w * z).sum() / w.sum() / slope
    step = float(np.diff(ts).max())
    return float(tc) if t[0] - step <= tc <= t[-1] + step else None


def curve(chain_means: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """P(T) and its standard error from the chain means of every temperature."""
    p = np.array([c.mean() for c in chain_means])
    err = np.array([c.std(ddof=1) / math.sqrt(c.size) if c.size > 1 else 0.0
                    for c in chain_means])  # fmt: skip
    return p, err


def bootstrap_crossings(ts: np.ndarray, chain_means: list[np.ndarray], resamples: int,
                        generator: np.random.Generator, method: str = "linear") -> np.ndarray:
    """Crossings of P(T) with the chains of every temperature resampled (a chain's
    configurations are correlated; chains are independent); nan where a resample does not
    cross: (resamples,)."""
    if resamples == 0:
        return np.empty(0)
    _, err = curve(chain_means)
    means = np.stack([np.take(c, generator.integers(0, c.size, size=(resamples, c.size))).mean(1)
                      for c in chain_means], 1)  # fmt: skip
    return np.array([np.nan if (c := crossing(ts, m, err, method)) is None else c
                     for m in means])  # fmt: skip


def extrapolate(sizes: np.ndarray, tc: np.ndarray, err: np.ndarray, nu: float | None,
                replicas: np.ndarray | None = None) -> dict:  # fmt: skip
    """Fit T_c(L) = T_c + a L^(-1/nu) (weighted by ``err``): ``nu`` fixed, or fitted (None, with
    >= 4 sizes). The error of T_c: the spread of the fits of bootstrap ``replicas`` (R, n_L)
    where they are given, else the fit's covariance. Returns T_c, T_c_err, a, nu, nu_err."""
    sigma = np.where(err > 0, err, max(float(np.nanmax(err)) if err.size else 0.0, 1e-3))

    def fixed(L, t, a):
        return t + a * L ** (-1.0 / nu)

    def free(L, t, a, inv_nu):
        return t + a * L ** (-inv_nu)

    if nu is not None:
        p, cov = curve_fit(fixed, sizes, tc, p0=[tc[-1], 0.0], sigma=sigma, absolute_sigma=True)
        out = {"T_c": float(p[0]), "T_c_err": float(math.sqrt(cov[0, 0])), "a": float(p[1]),
               "nu": nu, "nu_err": 0.0}  # fmt: skip
        if replicas is not None and len(replicas) > 1:
            fits = []
            for r in replicas:
                if np.all(np.isfinite(r)):
                    fits.append(curve_fit(fixed, sizes, r, p0=p, sigma=sigma)[0][0])
            if len(fits) > 1:
                out["T_c_err"] = float(np.std(fits, ddof=1))
        return out
    p, cov = curve_fit(free, sizes, tc, p0=[tc[-1], 0.0, 1.0], sigma=sigma, absolute_sigma=True,
                       bounds=([0, -np.inf, 0.05], [np.inf, np.inf, 10.0]), maxfev=20000)  # fmt: skip
    if not 0.051 < p[2] < 9.99:  # the exponent ran to a bound: the sizes do not fix it
        raise ValueError("the fitted exponent is at its bound")
    perr = np.sqrt(np.clip(np.diag(cov), 0, None))
    nu_fit = 1.0 / p[2]
    return {"T_c": float(p[0]), "T_c_err": float(perr[0]), "a": float(p[1]), "nu": nu_fit,
            "nu_err": float(perr[2] / p[2] ** 2)}  # fmt: skip


def _logit_and_var(p: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    var = (np.maximum(err, 1e-3) / (q * (1 - q))) ** 2  # the delta method
    return np.log(q / (1 - q)), var


def pair_crossing(ts: np.ndarray, p1: np.ndarray, e1: np.ndarray, p2: np.ndarray,
                  e2: np.ndarray, band: float = BAND) -> float | None:  # fmt: skip
    """Where the curves P_1(T) and P_2(T) of two sizes cross: the root of a weighted straight
    line through logit P_1 - logit P_2 over the temperatures where both lie within
    ``band`` < P < 1 - ``band`` (near the transition each logit is nearly linear in T, with
    slopes ~ L^(1/nu), so their difference is too); None without three such temperatures, a
    difference that does not fall (the larger size must be the steeper), or a root outside
    them by more than a grid step."""
    m = (p1 > band) & (p1 < 1 - band) & (p2 > band) & (p2 < 1 - band)
    if m.sum() < 3:
        return None
    z1, v1 = _logit_and_var(p1[m], e1[m])
    z2, v2 = _logit_and_var(p2[m], e2[m])
    t, d, w = ts[m], z2 - z1, 1.0 / (v1 + v2)
    tm = (w * t).sum() / w.sum()
    slope = (w * (t - tm) * d).sum() / (w * (t - tm) ** 2).sum()
    if not slope < 0:
        return None
    root = tm - (w * d).sum() / w.sum() / slope
    step = float(np.diff(ts).max())
    return float(root) if t[0] - step <= root <= t[-1] + step else None


def _resample(chain_means: list[np.ndarray], resamples: int,
              generator: np.random.Generator) -> np.ndarray:  # fmt: skip
    """P(T) of ``resamples`` bootstrap resamples of the chains of every temperature:
    (resamples, n_T)."""
    return np.stack([np.take(c, generator.integers(0, c.size, size=(resamples, c.size))).mean(1)
                     for c in chain_means], 1)  # fmt: skip


def size_crossings(ts: np.ndarray, per_size: list[list[np.ndarray]], resamples: int,
                   generator: np.random.Generator) -> tuple[list, np.ndarray]:  # fmt: skip
    """The crossings of the P(T) curves of successive sizes (chain means ``per_size``, smallest
    L first), then their common crossing (every size but the smallest when there are >= 4),
    and their bootstrap replicas (the chains of every size and temperature resampled
    independently): (crossings (n_L,), None where the curves do not cross; replicas
    (resamples, n_L), nan where a resample does not cross)."""
    curves = [curve(m) for m in per_size]
    out = [pair_crossing(ts, *curves[i], *curves[i + 1]) for i in range(len(curves) - 1)]
    first = 1 if len(curves) >= 4 else 0  # the smallest size carries the largest corrections
    out.append(common_crossing(ts, curves[first:]))
    reps = np.full((resamples, len(out)), np.nan)
    if resamples:
        boot = [_resample(m, resamples, generator) for m in per_size]
        for r in range(resamples):
            cs = [(boot[i][r], curves[i][1]) for i in range(len(curves))]
            for i in range(len(out) - 1):
                c = pair_crossing(ts, *cs[i], *cs[i + 1])
                reps[r, i] = np.nan if c is None else c
            c = common_crossing(ts, cs[first:])
            reps[r, -1] = np.nan if c is None else c
    return out, reps


def common_crossing(ts: np.ndarray, curves: list[tuple[np.ndarray, np.ndarray]],
                    band: float = BAND) -> float | None:  # fmt: skip
    """The one temperature where the P(T) curves of several sizes cross: logit P_L(T) =
    c + b_L (T - T*) fitted to every size at once (weighted least squares over ``band`` < P <
    1 - ``band``, a common value c at the crossing, one slope per size); None when a size has
    fewer than two such temperatures, the fit fails, a slope does not fall, or T* lies
    outside the fitted temperatures by more than a grid step."""
    t, z, sd, k = [], [], [], []
    for i, (p, err) in enumerate(curves):
        m = (p > band) & (p < 1 - band)
        if m.sum() < 2:
            return None
        zi, vi = _logit_and_var(p[m], err[m])
        t.append(ts[m])
        z.append(zi)
        sd.append(np.sqrt(vi))
        k.append(np.full(int(m.sum()), i))
    t, z, sd, k = (np.concatenate(a) for a in (t, z, sd, k))
    n = len(curves)

    def resid(q):
        return (q[1] + q[2:][k] * (t - q[0]) - z) / sd

    q0 = np.array([float(np.median(t)), 0.0] + [-20.0] * n)
    fit = least_squares(resid, q0)
    step = float(np.diff(ts).max())
    inside = t.min() - step <= fit.x[0] <= t.max() + step
    if not fit.success or np.any(fit.x[2:] >= 0) or not inside:
        return None
    return float(fit.x[0])


COLLAPSE_ORDER = 3  # the scaling function: sigmoid of a cubic in x = L^(1/nu) (T - T_c) / T_c


def collapse(ts: np.ndarray, sizes: np.ndarray, p: np.ndarray, err: np.ndarray,
             start: tuple[float, float], band: float = 0.02) -> dict | None:  # fmt: skip
    """Fit the data collapse P(T, L) = f(L^(1/nu) (T - T_c) / T_c) over every size at once
    (``p``, ``err``: (n_L, n_T)), f = sigmoid of a cubic, T_c and 1/nu free, weighted least
    squares in logit P over ``band`` < P < 1 - ``band``; ``start`` = (T_c, nu). Returns T_c,
    nu, chi2 per degree of freedom, or None when the fit fails or nu runs to a bound."""
    m = (p > band) & (p < 1 - band)
    if m.sum() < COLLAPSE_ORDER + 4:
        return None
    z, var = _logit_and_var(p[m], err[m])
    Ls = np.broadcast_to(sizes[:, None], p.shape)[m]
    t = np.broadcast_to(ts[None, :], p.shape)[m]
    sw = 1.0 / np.sqrt(var)

    def resid(q):
        x = Ls ** q[1] * (t - q[0]) / q[0]
        return (np.polynomial.polynomial.polyval(x, q[2:]) - z) * sw

    q0 = np.array([start[0], 1.0 / start[1], 0.0, -10.0] + [0.0] * (COLLAPSE_ORDER - 1))
    try:
        fit = least_squares(resid, q0, bounds=([0.5 * start[0], 0.1] + [-np.inf] * (
            COLLAPSE_ORDER + 1), [2.0 * start[0], 5.0] + [np.inf] * (COLLAPSE_ORDER + 1)))
    except ValueError:
        return None
    if not fit.success or not 0.101 < fit.x[1] < 4.99:
        return None
    dof = max(int(m.sum()) - len(q0), 1)
    return {"T_c": float(fit.x[0]), "nu": float(1.0 / fit.x[1]),
            "chi2": float((fit.fun**2).sum() / dof)}


def bootstrap_collapse(ts: np.ndarray, sizes: np.ndarray, per_size: list[list[np.ndarray]],
                       resamples: int, generator: np.random.Generator,
                       start: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """T_c of the collapse of bootstrap resamples of the chains (nan where a fit fails)."""
    err = np.stack([curve(m)[1] for m in per_size])
    boot = np.stack([_resample(m, resamples, generator) for m in per_size], 1)
    out = np.full(resamples, np.nan)
    for r in range(resamples):
        f = collapse(ts, sizes, boot[r], err, start)
        if f is not None:
            out[r] = f["T_c"]
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor,
                               bins: int = 10) -> float:  # fmt: skip
    """ECE of binary predictions: sum over confidence bins of |accuracy - confidence| weighted
    by the bin's share (confidence = max(p, 1 - p))."""
    conf = torch.maximum(probs, 1 - probs)
    correct = ((probs >= 0.5).to(labels.dtype) == labels).to(probs.dtype)
    b = torch.clamp(((conf - 0.5) * 2 * bins).long(), 0, bins - 1)
    count = torch.zeros(bins, dtype=probs.dtype, device=probs.device).index_add_(
        0, b, torch.ones_like(conf))  # fmt: skip
    acc = torch.zeros_like(count).index_add_(0, b, correct)
    cf = torch.zeros_like(count).index_add_(0, b, conf)
    return float(((acc - cf).abs()).sum() / max(probs.numel(), 1))


def temperature_scale(logit: torch.Tensor, labels: torch.Tensor) -> float:
    """The scale tau minimising the cross-entropy of sigmoid(logit / tau) (a grid in log tau,
    vectorised): temperature scaling on a validation split."""
    taus = torch.exp(torch.linspace(-4, 4, 321, dtype=torch.float64, device=logit.device))
    z = logit.double()[None] / taus[:, None]
    y = labels.double()[None]
    nll = torch.nn.functional.binary_cross_entropy_with_logits(z, y.expand_as(z),
                                                              reduction="none").mean(1)  # fmt: skip
    return float(taus[int(torch.argmin(nll))])


def principal_components(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, N) -> (projections (M, k) / sqrt(N), explained variance ratios (k,)) of the
    centred data."""
    xc = x.double() - x.double().mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    var = s**2
    k = min(k, vh.shape[0])
    return (xc @ vh[:k].T) / math.sqrt(x.shape[1]), (var[:k] / var.sum())


def peak(ts: np.ndarray, y: np.ndarray) -> float:
    """The location of the maximum of y(T), refined by a parabola through it and its neighbours
    (the end point itself when the maximum is at an end)."""
    i = int(np.argmax(y))
    if i == 0 or i == len(y) - 1:
        return float(ts[i])
    c = np.polyfit(ts[i - 1:i + 2], y[i - 1:i + 2], 2)
    if c[0] >= 0:
        return float(ts[i])
    return float(np.clip(-c[1] / (2 * c[0]), ts[i - 1], ts[i + 1]))


def peak_of_top(ts: np.ndarray, y: np.ndarray, base: float, frac: float = 0.8) -> float:
    """The vertex of a least-squares parabola through every point within the top
    ``1 - frac`` of a peak above ``base``: y >= base + frac (max y - base). For a broad,
    flat-topped peak this uses its whole top rather than the noisy maximum's neighbours;
    falls back to ``peak`` with fewer than three such points or a fit that is not concave."""
    top = y >= base + frac * (float(np.max(y)) - base)
    if top.sum() < 3:
        return peak(ts, y)
    c = np.polyfit(ts[top], y[top], 2)
    t = ts[top]
    if c[0] >= 0 or not t[0] <= -c[1] / (2 * c[0]) <= t[-1]:
        return peak(ts, y)
    return float(-c[1] / (2 * c[0]))


__all__ = ["bootstrap_collapse", "bootstrap_crossings", "collapse", "common_crossing",
           "crossing", "curve", "expected_calibration_error", "extrapolate", "pair_crossing",
           "peak", "peak_of_top", "principal_components", "size_crossings", "temperature_scale"]
