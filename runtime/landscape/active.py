"""Active learning of an objective over a box: a surrogate (:mod:`.surrogates`) proposes each
next measurement by an acquisition function, for B independent runs at once.

The loop of one run: ``initial`` points of a Latin hypercube, then, until the budget is spent,
fit the surrogate to the good points and measure where the acquisition is largest:

- ``ei``: expected improvement over the best posterior mean at the measured points (the
  noise-aware incumbent: a lucky noisy measurement is not the target to beat);
- ``ucb``: the lower confidence bound mu - sqrt(beta) sigma (we minimise);
- ``local``: the posterior mean within ``radius`` of the incumbent (exploitation: active
  learning near the optimum); ``local_every = k`` makes every k-th proposal local.

The acquisition is maximised over a batch of random candidates (uniform in the box, and
Gaussian around the incumbent at three scales), then a few Adam steps from the best few: no
loop over candidates. A failed measurement (``bad``, a non-finite value) gives the surrogate no
value; the acquisition is multiplied by prod_b (1 - exp(-|u - u_b|^2 / 2 l^2)) over the failed
points u_b (l: the surrogate's length scales), which steers proposals away from them.

A warm start pre-trains a GP on ``warm_evaluations`` points of a simulated model (not counted):
its posterior mean, scaled and shifted by a ridge fit to the real measurements, is the prior
mean of the surrogate of the real objective.

Shapes: B runs, d coordinates, T = budget; measured points u (B, T, d) in the unit box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..random import RandomStreams
from .errors import LandscapeError
from .experiments import Experiment, measure
from .optimisers import Objective, OptimiseResult, check_box
from .surrogates import DeepEnsemble, GaussianProcess

Tensor = torch.Tensor
ACQUISITIONS = ("ei", "ucb", "local")
_NORMAL = torch.distributions.Normal


@dataclass
class ActiveSettings:
    """The options of ``gaussian_process(...)`` and ``ensemble(...)`` the loop reads."""

    surrogate: str = "gaussian_process"
    initial: int = 10
    acquisition: str = "ei"
    beta: float = 4.0
    local_every: int = 0
    radius: float = 0.1
    candidates: int = 2000
    fit_steps: int = 60
    refit_every: int = 10
    guesses: int = 4
    members: int = 5
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    epochs: int = 200


@dataclass
class Measured:
    """The measurements of B runs: points u (B, T, d) in the unit box, the observed costs y,
    their known variances var, the noise-free values where known (``true``), and which slots
    hold a good measurement (``good``) or a failed one (``bad``)."""

    u: Tensor
    y: Tensor
    var: Tensor
    true: np.ndarray
    good: Tensor
    bad: Tensor
    count: np.ndarray  # (B,) measurements per run
    why: list[str] = field(default_factory=list)

    def head(self, t: int) -> Measured:
        """The first t slots of every run (views)."""
        return Measured(self.u[:, :t], self.y[:, :t], self.var[:, :t], self.true[:, :t],
                        self.good[:, :t], self.bad[:, :t], self.count, self.why)  # fmt: skip


def latin_hypercube(streams: RandomStreams, B: int, n: int, d: int, dtype) -> Tensor:
    """n points of a Latin hypercube in [0, 1)^d for each of B runs, (B, n, d): one point per
    stratum of every axis, strata matched by random permutations."""
    order = torch.argsort(streams.uniform((B, d * n), dtype).reshape(B, d, n), dim=-1)
    jitter = streams.uniform((B, d * n), dtype).reshape(B, d, n)
    return ((order.to(dtype) + jitter) / n).transpose(1, 2)


class Objectives:
    """What a run measures: the model's potential (batched; plus N(0, noise^2) measurement
    noise) or the experiment (one call per point)."""

    def __init__(self, f: Objective | None, experiment: Experiment | None, noise: float,
                 streams: RandomStreams):  # fmt: skip
        self.f, self.experiment, self.noise, self.streams = f, experiment, noise, streams

    def __call__(self, x: Tensor, rows: np.ndarray, B: int
                 ) -> tuple[Tensor, Tensor, Tensor, np.ndarray, list[str]]:  # fmt: skip
        """x (A, n) of the runs ``rows`` (A,) of B -> observed cost (A,), variance (A,), bad
        (A,), noise-free value (A,), why the bad ones failed. Run r's noise is stream r's."""
        A = x.shape[0]
        if self.experiment is not None:
            ms = [measure(self.experiment, p) for p in x.detach().cpu().numpy()]
            cost = torch.tensor([m.cost for m in ms], dtype=x.dtype, device=x.device)
            var = torch.tensor([m.uncer**2 for m in ms], dtype=x.dtype, device=x.device)
            bad = torch.tensor([m.bad for m in ms], device=x.device)
            return cost, var, bad, np.array([m.cost for m in ms]), [m.why for m in ms if m.bad]
        value = self.f(x)
        if not isinstance(value, Tensor) or value.shape != (A,):
            raise LandscapeError(f"the objective must map points (A, n) to (A,), got "
                                 f"{getattr(value, 'shape', type(value))}")  # fmt: skip
        value = value.to(x.dtype)
        bad = ~torch.isfinite(value)
        cost = value
        if self.noise > 0:
            draw = self.streams.normal((B,), x.dtype)[torch.as_tensor(rows, device=x.device)]
            cost = value + self.noise * draw
        true = value.detach().cpu().numpy()
        return cost, torch.zeros_like(cost), bad, true, []


def _standardise(m: Measured, prior: Tensor | None, sim_stats: tuple[Tensor, Tensor] | None
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Targets for the surrogate: z = (y - centre) / spread per run over the good points and
    the residual z - (a prior + b) (``prior`` (B, T): the warm model's mean at the points,
    a and b a ridge fit pulled to (1, 0)); returns residual, variances, centre, spread, (a, b)."""
    g = m.good.to(m.y.dtype)
    y = torch.where(m.good, m.y, torch.zeros_like(m.y))
    n = g.sum(-1).clamp_min(1)
    if sim_stats is None:
        centre = (y * g).sum(-1) / n
        spread = torch.sqrt(((y - centre[:, None]) ** 2 * g).sum(-1) / n)
        spread = torch.where(g.sum(-1) > 1, spread.clamp_min(1e-9), torch.ones_like(spread))
    else:
        centre, spread = sim_stats
    z = (y - centre[:, None]) / spread[:, None] * g
    var = m.var / spread[:, None] ** 2
    ab = torch.zeros(m.y.shape[0], 2, dtype=m.y.dtype, device=m.y.device)
    if prior is not None:
        # ridge: minimise sum g (z - a p - b)^2 + (a - 1)^2 + b^2 (one pseudo-measurement)
        p = prior * g
        A = torch.stack([torch.stack([(p * p).sum(-1) + 1, p.sum(-1)], -1),
                         torch.stack([p.sum(-1), n + 1], -1)], -2)  # fmt: skip
        rhs = torch.stack([(p * z).sum(-1) + 1, z.sum(-1)], -1)
        ab = torch.linalg.solve(A, rhs.unsqueeze(-1)).squeeze(-1)
        z = (z - ab[:, :1] * prior - ab[:, 1:]) * g
    return z, var, centre, spread, ab


def _good_probability(u: Tensor, bad_u: Tensor, bad: Tensor, lengths: Tensor) -> Tensor:
    """prod over failed points of 1 - exp(-|u - u_b|^2 / 2 l^2): u (B, C, d) -> (B, C)."""
    if not bool(bad.any()):
        return torch.ones(u.shape[:2], dtype=u.dtype, device=u.device)
    diff = (u.unsqueeze(-2) - bad_u.unsqueeze(-3)) / lengths[:, None, None, :]
    near = torch.exp(-0.5 * (diff * diff).sum(-1)) * bad.to(u.dtype).unsqueeze(-2)
    return torch.prod(1 - near, -1).clamp_min(1e-30)


class Acquisition:
    """The score to maximise at unit-box points u (B, C, d) for one proposal."""

    def __init__(self, model, prior: Callable[[Tensor], Tensor] | None, ab: Tensor,
                 incumbent: Tensor, mode: str, beta: float, m: Measured, lengths: Tensor):  # fmt: skip
        self.model, self.prior, self.ab, self.incumbent = model, prior, ab, incumbent
        self.mode, self.beta, self.m, self.lengths = mode, beta, m, lengths

    def mean_std(self, u: Tensor) -> tuple[Tensor, Tensor]:
        mu, sd = self.model.predict(u)
        if self.prior is not None:
            mu = mu + self.ab[:, :1] * self.prior(u) + self.ab[:, 1:]
        return mu, sd

    def __call__(self, u: Tensor) -> Tensor:
        mu, sd = self.mean_std(u)
        log_good = torch.log(_good_probability(u, self.m.u, self.m.bad, self.lengths))
        if self.mode == "ei":
            z = (self.incumbent[:, None] - mu) / sd
            n = _NORMAL(torch.zeros((), dtype=u.dtype, device=u.device),
                        torch.ones((), dtype=u.dtype, device=u.device))  # fmt: skip
            ei = sd * (z * n.cdf(z) + torch.exp(n.log_prob(z)))
            return torch.log(ei.clamp_min(1e-300)) + log_good
        if self.mode == "ucb":
            return -(mu - math.sqrt(self.beta) * sd) + log_good
        return -mu + log_good


def _propose(acq: Acquisition, centre: Tensor, streams: RandomStreams, C: int, radius: float,
             local: bool, refine_steps: int = 20, keep: int = 4) -> Tensor:  # fmt: skip
    """The maximiser of ``acq`` for every run, (B, d): C candidates (uniform, and Gaussian
    around ``centre`` (B, d) at scales radius, radius/10, radius/100; only the latter within
    ``radius`` when ``local``), then Adam steps from the best ``keep``."""
    B, d = centre.shape
    dt = centre.dtype
    near = C if local else C // 2
    scales = torch.tensor([radius, radius / 10, radius / 100], dtype=dt, device=centre.device)
    which = scales[torch.arange(near, device=centre.device) % 3]
    gauss = centre[:, None, :] + which[None, :, None] * streams.normal((B, near * d), dt).reshape(
        B, near, d)  # fmt: skip
    if local:
        lo, hi = (centre - radius).clamp(0, 1), (centre + radius).clamp(0, 1)
    else:
        lo = torch.zeros_like(centre)
        hi = torch.ones_like(centre)
    parts = [gauss]
    if C - near > 0:
        parts.append(streams.uniform((B, (C - near) * d), dt).reshape(B, C - near, d))
    cand = torch.minimum(torch.maximum(torch.cat(parts, 1), lo[:, None]), hi[:, None])
    with torch.no_grad():
        score = acq(cand)
    top = score.topk(min(keep, cand.shape[1]), dim=1).indices
    start = torch.gather(cand, 1, top.unsqueeze(-1).expand(-1, -1, d))
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.2 * radius)
    with torch.enable_grad():
        for _ in range(refine_steps):
            opt.zero_grad()
            s = acq(x)
            (-torch.nan_to_num(s, nan=-1e30).sum()).backward()
            x.grad = torch.nan_to_num(x.grad, nan=0.0)
            opt.step()
            with torch.no_grad():
                x.copy_(torch.minimum(torch.maximum(x, lo[:, None]), hi[:, None]))
    with torch.no_grad():
        both = torch.cat([start, x.detach()], 1)
        s = torch.nan_to_num(acq(both), nan=-math.inf)
        best = s.argmax(1)
    return both[torch.arange(B, device=centre.device), best]


def _new_model(s: ActiveSettings, B: int, d: int, device, dtype, streams: RandomStreams):
    if s.surrogate == "ensemble":
        return DeepEnsemble(B, d, s.members, list(s.hidden), device, dtype, streams)
    return GaussianProcess(B, d, device, dtype)


def _fit(model, s: ActiveSettings, step: int, u: Tensor, z: Tensor, good: Tensor, var: Tensor,
         streams: RandomStreams) -> None:  # fmt: skip
    """A full fit (several initial guesses) every ``refit_every`` proposals, a short one from the
    current hyperparameters or weights between."""
    B, _, d = u.shape
    full = step % max(s.refit_every, 1) == 0
    if s.surrogate == "ensemble":
        model.fit(u, z, good, var, steps=s.epochs if full else max(s.epochs // 4, 1))
        return
    draws = None
    if full and s.guesses > 1:
        draws = streams.uniform((B, (s.guesses - 1) * (d + 2)), u.dtype).reshape(
            B, s.guesses - 1, d + 2)  # fmt: skip
    model.fit(u, z, good, var, steps=s.fit_steps if full else max(s.fit_steps // 4, 1),
              draws=draws)  # fmt: skip


def _lengths(model, B: int, d: int, u: Tensor) -> Tensor:
    if isinstance(model, GaussianProcess):
        return model.lengths
    return torch.full((B, d), 0.05, dtype=u.dtype, device=u.device)


def warm_prior(g: Objective, lower: Tensor, upper: Tensor, streams: RandomStreams, B: int,
               evaluations: int, s: ActiveSettings
               ) -> tuple[Callable[[Tensor], Tensor], tuple[Tensor, Tensor]]:  # fmt: skip
    """A GP of the simulated model ``g`` on ``evaluations`` Latin-hypercube points per run: its
    posterior mean (in its standardised units) as a function of u (B, C, d), and the
    simulation's centre and spread (B,) that standardise the real costs."""
    d, dt = lower.numel(), lower.dtype
    u = latin_hypercube(streams, B, evaluations, d, dt)
    v = g((lower + (upper - lower) * u).reshape(-1, d)).to(dt).reshape(B, evaluations)
    good = torch.isfinite(v)
    if not bool(good.any(1).all()):
        raise LandscapeError("the warm-start model is not finite at any of its points",
                             "check the simulated model's potential on the box")  # fmt: skip
    zero = torch.zeros_like(v)
    m = Measured(u, torch.where(good, v, zero), zero, np.zeros(0), good,
                 torch.zeros_like(good), np.full(B, evaluations))  # fmt: skip
    z, var, centre, spread, _ = _standardise(m, None, None)
    gp = GaussianProcess(B, d, lower.device, dt)
    draws = streams.uniform((B, 3 * (d + 2)), dt).reshape(B, 3, d + 2)
    gp.fit(u, z, good, var, steps=max(s.fit_steps, 60), draws=draws)
    return (lambda x: gp.predict(x)[0]), (centre, spread)


def active_learning(f: Objective | None, lower: Tensor, upper: Tensor, streams: RandomStreams, *,
                    runs: int, max_evaluations: int, settings: ActiveSettings,
                    f_target: float | None = None, tol: float = 1e-4, noise: float = 0.0,
                    experiment: Experiment | None = None, warm: Objective | None = None,
                    warm_evaluations: int = 0) -> list[OptimiseResult]:  # fmt: skip
    """Minimise f (or measure ``experiment``) over [lower, upper] (n,) by active learning, R =
    ``runs`` independent runs of ``max_evaluations`` measurements each (run r draws from
    stream r); a run stops when its noise-free value (the measured cost for an experiment) is
    within ``tol`` of ``f_target``. Extras: ``bad`` failed measurements, ``recommended_x``
    the measured point of least posterior mean and ``recommended_f`` its noise-free value."""
    lower, upper = check_box(lower, upper)
    s = settings
    if s.acquisition not in ACQUISITIONS:
        raise LandscapeError(f"unknown acquisition {s.acquisition!r}",
                             f"use one of {', '.join(ACQUISITIONS)}")  # fmt: skip
    if not 1 <= s.initial < max_evaluations:
        raise LandscapeError(f"the budget of {max_evaluations} evaluations does not pay for "
                             f"{s.initial} initial points and a proposal",
                             "raise evaluations above initial")  # fmt: skip
    B, d, T = runs, lower.numel(), max_evaluations
    dev, dt = lower.device, lower.dtype
    design, noisy, search, fits = (streams.fork(k) for k in range(4))
    width = upper - lower
    objective = Objectives(f, experiment, noise, noisy)
    prior_fn, sim_stats = None, None
    if warm is not None and warm_evaluations > 0:
        prior_fn, sim_stats = warm_prior(warm, lower, upper, streams.fork(4), B,
                                         warm_evaluations, s)  # fmt: skip
    m = Measured(torch.full((B, T, d), 0.5, dtype=dt, device=dev),
                 torch.zeros(B, T, dtype=dt, device=dev), torch.zeros(B, T, dtype=dt, device=dev),
                 np.full((B, T), np.nan), torch.zeros(B, T, dtype=torch.bool, device=dev),
                 torch.zeros(B, T, dtype=torch.bool, device=dev), np.zeros(B, dtype=np.int64))
    hit = np.full(B, -1, dtype=np.int64)
    traces: list[list[tuple[int, float, float]]] = [[] for _ in range(B)]

    def record(rows: np.ndarray, u: Tensor) -> None:
        """Measure the runs ``rows`` at u (A, d) and book it."""
        t = int(m.count[rows[0]])  # runs in lockstep: every running run has t measurements
        cost, var, bad, true, why = objective(lower + width * u, rows, B)
        r = torch.as_tensor(rows, device=dev)
        m.u[r, t], m.var[r, t] = u, var
        m.y[r, t] = torch.where(bad, torch.zeros_like(cost), cost)
        m.good[r, t], m.bad[r, t] = ~bad, bad
        m.true[rows, t] = np.where(bad.cpu().numpy(), np.nan, true)
        m.count[rows] += 1
        m.why.extend(why)
        for run in rows:
            v = m.true[run, t]
            best = np.nanmin(m.true[run, : t + 1]) if np.isfinite(m.true[run, : t + 1]).any() \
                else math.nan
            if np.isfinite(v) and v <= best:
                traces[run].append((t + 1, float(v), math.nan))
            if f_target is not None and hit[run] < 0 and np.isfinite(v) \
                    and abs(v - f_target) < tol:
                hit[run] = t + 1

    start = latin_hypercube(design, B, s.initial, d, dt)
    for k in range(s.initial):
        running = np.nonzero(hit < 0)[0] if f_target is not None else np.arange(B)
        if len(running):
            record(running, start[torch.as_tensor(running, device=dev), k])
    model = _new_model(s, B, d, dev, dt, fits)
    step = 0
    while True:
        running = np.nonzero((hit < 0) & (m.count < T))[0]
        if not len(running):
            break
        if not bool(m.good.any(1).all()):
            # a run with no good point yet: measure another design point (uniform)
            u = design.uniform((B, d), dt)
            record(running, u[torch.as_tensor(running, device=dev)])
            continue
        mt = m.head(int(m.count.max()))  # the slots measured so far: the surrogate's data
        prior_at = None
        if prior_fn is not None:
            prior_at = prior_fn(mt.u).detach()
        z, var, _, _, ab = _standardise(mt, prior_at, sim_stats)
        _fit(model, s, step, mt.u, z, mt.good, var, fits)
        acq0 = Acquisition(model, prior_fn, ab, torch.zeros(B, dtype=dt, device=dev), "ei",
                           s.beta, mt, _lengths(model, B, d, mt.u))  # fmt: skip
        with torch.no_grad():
            mu, _ = acq0.mean_std(mt.u)
        mu = torch.where(mt.good, mu, torch.full_like(mu, math.inf))
        best_slot = mu.argmin(1)
        incumbent = mu[torch.arange(B, device=dev), best_slot]
        centre = mt.u[torch.arange(B, device=dev), best_slot]
        local = s.acquisition == "local" or (s.local_every > 0 and (step + 1) % s.local_every == 0)
        mode = "local" if local else s.acquisition
        acq = Acquisition(model, prior_fn, ab, incumbent, mode, s.beta, mt, acq0.lengths)
        u = _propose(acq, centre, search, s.candidates, s.radius, local)
        record(running, u.detach()[torch.as_tensor(running, device=dev)])
        step += 1
    return _results(m, hit, traces, model, prior_fn, sim_stats, lower, width, f, noise,
                    experiment, s)  # fmt: skip


def _results(m: Measured, hit: np.ndarray, traces, model, prior_fn, sim_stats, lower: Tensor,
             width: Tensor, f, noise: float, experiment, s: ActiveSettings
             ) -> list[OptimiseResult]:  # fmt: skip
    """One OptimiseResult per run; the recommendation is the measured point of least posterior
    mean (the surrogate refitted to all measurements)."""
    B = m.u.shape[0]
    dev = m.u.device
    rec_u = None
    m = m.head(int(m.count.max()))
    if bool(m.good.any(1).all()):
        prior_at = prior_fn(m.u).detach() if prior_fn is not None else None
        z, var, _, _, ab = _standardise(m, prior_at, sim_stats)
        if isinstance(model, GaussianProcess):
            model._condition(m.u, z, m.good, var)
        acq = Acquisition(model, prior_fn, ab, torch.zeros(B, dtype=m.u.dtype, device=dev),
                          "ei", s.beta, m, _lengths(model, B, m.u.shape[2], m.u))  # fmt: skip
        with torch.no_grad():
            mu, _ = acq.mean_std(m.u)
        mu = torch.where(m.good, mu, torch.full_like(mu, math.inf))
        rec_u = m.u[torch.arange(B, device=dev), mu.argmin(1)]
    rec_f = np.full(B, np.nan)
    if rec_u is not None:
        rec_x = lower + width * rec_u
        if experiment is None and f is not None and noise > 0:
            with torch.no_grad():
                rec_f = f(rec_x).detach().cpu().numpy()  # noise-free: a diagnostic, not counted
        else:
            slot = torch.cdist(rec_u.unsqueeze(1), m.u).squeeze(1).argmin(1).cpu().numpy()
            rec_f = m.true[np.arange(B), slot]
    out = []
    for r in range(B):
        vals = m.true[r, : m.count[r]]
        ok = np.isfinite(vals)
        j = int(np.nanargmin(np.where(ok, vals, np.inf))) if ok.any() else 0
        best_x = lower + width * m.u[r, j]
        trace = traces[r]
        if trace and trace[-1][0] != int(m.count[r]):
            trace.append((int(m.count[r]), trace[-1][1], math.nan))
        out.append(OptimiseResult(
            best_x=best_x.detach().clone(), best_f=float(vals[j]) if ok.any() else math.nan,
            evaluations=int(m.count[r]),
            evaluations_to_target=int(hit[r]) if hit[r] >= 0 else None, trace=trace,
            success=bool(hit[r] >= 0),
            extras={"bad": int(m.bad[r].sum()), "recommended_f": float(rec_f[r]),
                    "recommended_x": None if rec_u is None
                    else (lower + width * rec_u[r]).detach().cpu().tolist(),
                    "why": m.why[:5]}))  # fmt: skip
    return out


__all__ = ["ACQUISITIONS", "ActiveSettings", "active_learning", "latin_hypercube"]
