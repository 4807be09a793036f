"""The numbers read off classifier outputs: the P = 1/2 crossing with bootstrap errors, the
finite-size extrapolation T_c(L) = T_c + a L^(-1/nu), calibration (expected calibration error,
temperature scaling), principal components and the confusion W (numpy / torch, batched)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import curve_fit


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


__all__ = ["bootstrap_crossings", "crossing", "curve", "expected_calibration_error",
           "extrapolate", "peak", "peak_of_top", "principal_components", "temperature_scale"]
