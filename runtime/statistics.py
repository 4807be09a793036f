"""Honest error bars for Markov-chain averages: binning analysis and jackknife.

A series of measurements ``x[t, c]`` (time t, independent chain c) is autocorrelated along t and
independent across c. The binning analysis averages the chain-mean series in blocks of doubling
size; the standard error of the mean grows with the block size until blocks are longer than the
autocorrelation time, then plateaus. The plateau value is the honest standard error, and
``tau_int = (stderr_plateau / stderr_naive)^2 / 2`` the integrated autocorrelation time
(in units of the measurement interval).

Functions of several averages (specific heat, susceptibility, Binder cumulant) get their errors
from a jackknife over the same blocks, so the autocorrelation is accounted for there too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_BLOCKS = 16
MIN_SPREAD_CHAINS = 8  # chains needed before their spread is a usable error estimate


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and integrated autocorrelation time."""

    mean: float
    stderr: float
    tau_int: float = 0.5

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "stderr": self.stderr, "tau_int": self.tau_int}


def _chain_mean_series(series: np.ndarray) -> tuple[np.ndarray, int]:
    """(T,) or (T, C) -> the chain-averaged series (T,) and the number of chains C."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        return x, 1
    if x.ndim != 2:
        raise ValueError(f"series must have shape (T,) or (T, chains), got {x.shape}")
    return x.mean(axis=1), x.shape[1]


def _naive_stderr(series: np.ndarray) -> float:
    """Standard error treating every entry as independent."""
    x = np.asarray(series, dtype=np.float64).reshape(len(series), -1)
    n = x.size
    if n < 2:
        return 0.0
    return float(x.std(ddof=1) / np.sqrt(n))


def binning_curve(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of the mean against block size (1, 2, 4, ...) while >= MIN_BLOCKS blocks.

    ``series``: (T,) or (T, chains). Returns (block_sizes, stderrs).
    """
    x, chains = _chain_mean_series(series)
    sizes, errors = [], []
    size = 1
    while len(x) // size >= MIN_BLOCKS:
        n_blocks = len(x) // size
        blocks = x[: n_blocks * size].reshape(n_blocks, size).mean(axis=1)
        sizes.append(size)
        errors.append(blocks.std(ddof=1) / np.sqrt(n_blocks))
        size *= 2
    return np.array(sizes), np.array(errors)


def binning_analysis(series: np.ndarray) -> Estimate:
    """Mean, plateau standard error and tau_int of an autocorrelated series.

    ``series``: (T,) for one chain or (T, chains) for independent chains. The error is the
    largest blocked error over the block sizes that keep at least MIN_BLOCKS blocks, which is
    the plateau value once T spans many autocorrelation times (and a conservative estimate
    otherwise).
    """
    raw = np.asarray(series, dtype=np.float64)
    x, chains = _chain_mean_series(raw)
    mean = float(x.mean()) if x.size else float("nan")
    if len(x) < MIN_BLOCKS:
        # Too short to bin: chains are independent, so their spread still gives an error.
        err = _naive_stderr(raw) if chains > 1 else float("nan")
        return Estimate(mean, err, float("nan"))
    _, errors = binning_curve(x)
    stderr = float(errors.max())
    if chains >= MIN_SPREAD_CHAINS:
        # Independent chains give a second, model-free error: the spread of their means. It
        # exceeds the binned one when the run is shorter than the autocorrelation time (near a
        # transition) or chains are trapped in different states; the larger one is honest.
        stderr = max(stderr, float(raw.mean(axis=0).std(ddof=1) / np.sqrt(chains)))
    naive = float(x.std(ddof=1) / np.sqrt(len(x)))
    tau = 0.5 * (stderr / naive) ** 2 if naive > 0 else 0.5
    return Estimate(mean, stderr, float(tau))


def split_rhat(series: np.ndarray) -> float:
    """Split-chain Gelman-Rubin R-hat of a (T, C) series: ~1 when the chains sample the same
    distribution, > 1.1 when they disagree (metastable domains, too short a run). Each chain is
    split in halves so that drifts within a chain count too."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    t = x.shape[0] // 2
    if t < 2:
        return float("nan")
    halves = np.concatenate([x[:t], x[t : 2 * t]], axis=1)  # (t, 2C)
    w = halves.var(axis=0, ddof=1).mean()
    b = t * halves.mean(axis=0).var(ddof=1)
    if w <= 0:
        return float("nan") if b > 0 else 1.0
    return float(np.sqrt(((t - 1) / t * w + b / t) / w))


def between_chain_excess(series: np.ndarray) -> float:
    """Chains that sample one equilibrium scatter their means by the error of one chain; chains
    trapped in different states (metastable domains) scatter them far more than the binning
    error of the chain average admits. Returns the ratio of the two standard errors of the
    mean, (std of chain means / sqrt C) / binning stderr, for a (T, C) series (NaN if C < 2)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < MIN_BLOCKS:
        return float("nan")
    between = x.mean(axis=0).std(ddof=1) / np.sqrt(x.shape[1])
    _, errors = binning_curve(x)
    within = float(errors.max())
    if not within > 0:
        return float("nan") if between > 0 else 1.0
    return float(between / within)


def excess_limit(chains: int, p: float = 1e-4) -> float:
    """The ratio :func:`between_chain_excess` exceeds with probability ~p for mixed chains
    (chi-square with chains - 1 degrees of freedom, widened by 1.5 for the noise of the binning
    error itself)."""
    from scipy.stats import chi2

    return float(np.sqrt(1.5 * chi2.ppf(1 - p, chains - 1) / (chains - 1)))


def jackknife(
    function: Callable[..., float],
    series: Sequence[np.ndarray],
    n_blocks: int = 32,
) -> Estimate:
    """Jackknife estimate of ``function(mean(a), mean(b), ...)`` over time blocks.

    ``series``: several (T,) or (T, chains) measurement series sampled at the same times
    (e.g. E and E^2). Blocks along T are chosen no shorter than twice the largest tau_int among
    the inputs, so that blocks are nearly independent.
    """
    xs = [_chain_mean_series(s)[0] for s in series]
    T = len(xs[0])
    full = float(function(*[x.mean() for x in xs]))
    if T < 2 * MIN_BLOCKS:
        return Estimate(full, float("nan"), float("nan"))
    tau = max(binning_analysis(x).tau_int for x in xs)
    block = max(1, int(np.ceil(2 * tau)))
    n = min(n_blocks, T // block)
    n = max(n, MIN_BLOCKS if T // MIN_BLOCKS >= 1 else 2)
    size = T // n
    blocked = [x[: n * size].reshape(n, size).mean(axis=1) for x in xs]
    totals = [b.sum() for b in blocked]
    leave_one_out = np.array(
        [function(*[(tot - b[k]) / (n - 1) for tot, b in zip(totals, blocked)]) for k in range(n)]
    )
    stderr = float(np.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean()) ** 2).sum()))
    return Estimate(full, stderr, float(tau))
