"""Supervised phase classification at one lattice size (Carrasquilla & Melko 2017), with the
controls and the sim-to-reality checks that sit beside it.

Configurations (n_T, n, *shape) are split by chain: the first chains train, the last
``test_fraction`` of them are held out (independent Markov chains). Labels come from the
training windows: T < ordered_below is ordered (1), T > disordered_above disordered (0).
P(ordered | T) is the mean output on the held-out configurations of each T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..plans.phases import Learner, PhasesPlan
from ..random import RandomStreams
from . import analysis, networks
from .sampling import Configurations


@dataclass
class Split:
    """Training and held-out configurations as images (n_T, n_part, C, *cells) split by
    whole chains, all of them (``every``, (n_T, n, C, *cells)), ``unseen`` (n_T, chains) the
    chains never trained on (every chain outside the windows, the held-out ones inside), the
    window masks over the temperatures (ordered, disordered)."""

    train: torch.Tensor
    test: torch.Tensor
    every: torch.Tensor
    unseen: np.ndarray
    per_chain: int
    ordered: torch.Tensor
    disordered: torch.Tensor
    ts: np.ndarray
    basis: int
    shape: tuple[int, ...]


def split(conf: Configurations, test_fraction: float, below: float, above: float) -> Split:
    """Split by chain (the sampler's configurations are chain-major within a temperature):
    the last ``test_fraction`` of the chains of every temperature are held out."""
    x, k = conf.x, conf.per_chain
    n = x.shape[1]
    chains = n // k
    n_test = min(chains - 1, max(1, int(round(chains * test_fraction)))) if chains > 1 else 0
    cut = (chains - n_test) * k if n_test else n - max(1, int(round(n * test_fraction)))
    flat = x.reshape(-1, *conf.shape)
    images = networks.as_images(flat, conf.basis)
    images = images.reshape(x.shape[0], n, *images.shape[1:])
    ts = conf.temperatures.numpy().round(12)
    ordered, disordered = ts < below - 1e-12, ts > above + 1e-12
    unseen = np.ones((x.shape[0], max(chains, 1)), dtype=bool)
    if n_test:
        unseen[ordered | disordered, : chains - n_test] = False
    else:  # one chain: blocks are single configurations
        unseen = np.ones((x.shape[0], n), dtype=bool)
        unseen[ordered | disordered, :cut] = False
        k = 1
    return Split(images[:, :cut], images[:, cut:], images, unseen, k,
                 torch.from_numpy(ordered), torch.from_numpy(disordered), ts, conf.basis,
                 conf.shape)  # fmt: skip


def chain_means(probs: torch.Tensor, sp: Split, every_chain: bool = False) -> list[np.ndarray]:
    """P(ordered) of the configurations ``probs`` (n_T, n) averaged over each chain never
    trained on (``every_chain``: the classifier was trained on other configurations): one
    array of chain means per temperature (the independent blocks)."""
    p = probs.double().cpu().numpy()
    blocks = p[:, : sp.unseen.shape[1] * sp.per_chain].reshape(p.shape[0], -1, sp.per_chain)
    use = np.ones_like(sp.unseen) if every_chain else sp.unseen
    return [b.mean(1)[u] for b, u in zip(blocks, use, strict=True)]


def window_data(part: torch.Tensor, ordered: torch.Tensor, disordered: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Configurations of the two windows (M, C, *cells) and their labels (M,) (1: ordered)."""
    a, b = part[ordered.to(part.device)], part[disordered.to(part.device)]
    x = torch.cat([a.flatten(0, 1), b.flatten(0, 1)])
    y = torch.cat([torch.ones(a.shape[0] * a.shape[1], device=part.device),
                   torch.zeros(b.shape[0] * b.shape[1], device=part.device)])  # fmt: skip
    return x, y


def train(learner: Learner, sp: Split, opts, streams: RandomStreams, device,
          labels: torch.Tensor | None = None, members: int = 1) -> torch.nn.Module:  # fmt: skip
    """A fresh classifier trained on the windows of the training split (``labels``: replace
    the window labels, e.g. shuffled); ``members`` of them, independently initialised, read
    as one (their mean probability)."""
    x, y = window_data(sp.train, sp.ordered, sp.disordered)
    nets = []
    for _ in range(members):
        net = networks.build(learner.options, sp.shape, sp.basis, streams, device)
        networks.train_binary(net, x, y if labels is None else labels, epochs=opts.epochs,
                              lr=opts.lr, batch=opts.batch, weight_decay=opts.weight_decay,
                              streams=streams)  # fmt: skip
        nets.append(net)
    return nets[0] if members == 1 else networks.Ensemble(nets)


def probabilities(net: torch.nn.Module, part: torch.Tensor) -> torch.Tensor:
    """P(ordered) of every configuration: (n_T, n_part)."""
    n_t, n = part.shape[:2]
    return torch.sigmoid(networks.logits(net, part.flatten(0, 1))).reshape(n_t, n)


def accuracy(probs: torch.Tensor, sp: Split) -> float:
    """Held-out accuracy on the two windows."""
    right = torch.cat([(probs[sp.ordered] >= 0.5).flatten(), (probs[sp.disordered] < 0.5).flatten()])
    return float(right.float().mean())


def curve_rows(plan: PhasesPlan, name: str, L, net: torch.nn.Module, sp: Split,
               streams: RandomStreams, every_chain: bool = False
               ) -> tuple[dict, dict, np.ndarray, list[np.ndarray]]:  # fmt: skip
    """The size row of one learner (T_c(L) where P(ordered | T) = 1/2 on every configuration
    it was not trained on, with its error from a bootstrap over chains; the held-out
    accuracy), its curve, the bootstrap crossings and the chain means of every T."""
    means = chain_means(probabilities(net, sp.every), sp, every_chain)
    c = plan.classify
    gen = np.random.default_rng(int(streams.host_generator().initial_seed()) % (1 << 63))
    p, err = analysis.curve(means)
    tc = analysis.crossing(sp.ts, p, err, c.crossing_fit)
    reps = analysis.bootstrap_crossings(sp.ts, means, c.bootstrap, gen, c.crossing_fit)
    ok = reps[np.isfinite(reps)]
    row = {"kind": "size", "method": plan.method, "learner": name, "L": L, "T_c": tc,
           "T_c_err": float(np.std(ok, ddof=1)) if ok.size > 1 else None,
           "accuracy": accuracy(probabilities(net, sp.test), sp),
           "crossing": tc is not None}  # fmt: skip
    _deviation(row, c.exact)
    curve = {"T": sp.ts.tolist(), "P": p.tolist(), "P_err": err.tolist()}
    return row, curve, reps, means


def _deviation(row: dict, exact: float | None) -> None:
    if exact is not None:
        row["exact"] = exact
        if row.get("T_c") is not None:
            row["deviation"] = (row["T_c"] - exact) / exact


def controls(plan: PhasesPlan, sp: Split, L, streams: RandomStreams, device) -> list[dict]:
    """Shuffled labels (every learner): no phase to learn, accuracy ~ 1/2 and no crossing;
    the signed magnetisation alone through a logistic regression: by the spin-flip symmetry
    the ordered phase holds m and -m alike, so a monotone function of m cannot tell it."""
    rows = []
    _, y = window_data(sp.train, sp.ordered, sp.disordered)
    for lr in plan.learners:
        shuffled = y[streams.permutation(y.numel()).to(y.device)]
        net = train(lr, sp, plan.options, streams, device, labels=shuffled)
        probs = probabilities(net, sp.test)
        tc = analysis.crossing(sp.ts, probs.double().mean(1).cpu().numpy())
        rows.append({"kind": "control", "method": "shuffled_labels", "learner": lr.name, "L": L,
                     "accuracy": accuracy(probs, sp), "T_c": tc, "crossing": tc is not None})
    x, y = window_data(sp.train, sp.ordered, sp.disordered)
    m = x.flatten(1).mean(1, keepdim=True)
    logistic = torch.nn.Sequential(torch.nn.Linear(1, 1, device=device), torch.nn.Flatten(0))
    with torch.no_grad():
        for w in logistic.parameters():
            w.zero_()
    networks.train_binary(logistic, m, y, epochs=plan.options.epochs, lr=10 * plan.options.lr,
                          batch=plan.options.batch, weight_decay=0.0, streams=streams)  # fmt: skip
    mt = sp.test.flatten(2).mean(2, keepdim=True)
    with torch.no_grad():
        probs = torch.sigmoid(logistic(mt)).reshape(mt.shape[:2])
    tc = analysis.crossing(sp.ts, probs.double().mean(1).cpu().numpy())
    rows.append({"kind": "control", "method": "magnetisation", "learner": "logistic(m)", "L": L,
                 "accuracy": accuracy(probs, sp), "T_c": tc, "crossing": tc is not None})
    return rows


def noisy(plan: PhasesPlan, nets: dict, sp: Split, L, streams: RandomStreams) -> list[dict]:
    """Sim-to-reality: the classifiers trained on clean configurations read held-out ones with
    each spin flipped with probability ``noise``: accuracy, expected calibration error before
    and after temperature scaling (fitted on half of the noisy windows, scored on the other
    half), and T_c(L) from the noisy curve."""
    p = plan.classify.noise
    flips = torch.where(streams.uniform(sp.test.shape).to(sp.test.device) < p, -1.0, 1.0)
    x = sp.test * flips
    rows = []
    for name, net in nets.items():
        clean = probabilities(net, sp.test)
        n_t, n = x.shape[:2]
        z = networks.logits(net, x.flatten(0, 1)).reshape(n_t, n)
        probs = torch.sigmoid(z)
        half = n // 2
        zv, yv = _window_logits(z[:, :half], sp)
        zs, ys = _window_logits(z[:, half:], sp)
        tau = analysis.temperature_scale(zv, yv)
        ps = torch.sigmoid(zs.double())
        tc = analysis.crossing(sp.ts, probs.double().mean(1).cpu().numpy())
        row = {"kind": "noise", "method": plan.method, "learner": name, "L": L, "noise": p,
               "accuracy_clean": accuracy(clean, sp), "accuracy": accuracy(probs, sp),
               "ece": analysis.expected_calibration_error(torch.sigmoid(zs.double()), ys.double()),
               "ece_scaled": analysis.expected_calibration_error(torch.sigmoid(zs.double() / tau),
                                                                 ys.double()),
               "scale": tau, "confidence": float(torch.maximum(ps, 1 - ps).mean()), "T_c": tc,
               "crossing": tc is not None}  # fmt: skip
        _deviation(row, plan.classify.exact)
        rows.append(row)
    return rows


def _window_logits(z: torch.Tensor, sp: Split) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = z[sp.ordered].flatten(), z[sp.disordered].flatten()
    return torch.cat([a, b]), torch.cat([torch.ones_like(a), torch.zeros_like(b)])


def perturbed(plan: PhasesPlan, nets: dict, sp: Split, L, streams: RandomStreams) -> list[dict]:
    """Sim-to-reality: the classifiers, trained on the model as declared, read every
    configuration of the perturbed model (``perturbed`` = ``perturbed_value``) without
    retraining: held-out accuracy on the training windows; with ``perturbed_exact``, the
    accuracy against the true phase (T < T_c' ordered) at every T and the expected calibration
    error there before and after temperature scaling (fitted on half of the chains, scored on
    the other half); T_c' where P = 1/2 against the perturbed model's exact value."""
    c = plan.classify
    n_t, n = sp.every.shape[:2]
    truth = None if c.perturbed_exact is None else torch.from_numpy(sp.ts < c.perturbed_exact)
    half = (n // sp.per_chain // 2) * sp.per_chain or n // 2
    rows = []
    for name, net in nets.items():
        z = networks.logits(net, sp.every.flatten(0, 1)).reshape(n_t, n).double()
        probs = torch.sigmoid(z)
        means = chain_means(probs, sp, every_chain=True)
        p, err = analysis.curve(means)
        tc = analysis.crossing(sp.ts, p, err, c.crossing_fit)
        right = torch.cat([(probs[sp.ordered] >= 0.5).flatten(),
                           (probs[sp.disordered] < 0.5).flatten()])  # fmt: skip
        row = {"kind": "perturbed", "method": plan.method, "learner": name, "L": L,
               "parameter": c.perturbed, "value": c.perturbed_value,
               "accuracy_windows": float(right.float().mean()), "T_c": tc,
               "crossing": tc is not None}  # fmt: skip
        if truth is not None:
            y = truth.to(z.device)[:, None].expand(n_t, n).double()
            tau = analysis.temperature_scale(z[:, :half].flatten(), y[:, :half].flatten())
            zs, ys = z[:, half:].flatten(), y[:, half:].flatten()
            row.update({"accuracy": float(((probs >= 0.5).double() == y).double().mean()),
                        "ece": analysis.expected_calibration_error(torch.sigmoid(zs), ys),
                        "ece_scaled": analysis.expected_calibration_error(
                            torch.sigmoid(zs / tau), ys),
                        "scale": tau})  # fmt: skip
        _deviation(row, c.perturbed_exact)
        rows.append(row)
    return rows


PSEUDO_ITERATIONS = 60  # Newton steps of the pseudo-likelihood (vectorised over configurations)


def pseudo_likelihood_temperature(delta: torch.Tensor) -> torch.Tensor:
    """T per configuration from its flip energies ``delta`` (M, N) = E(s with s_i flipped) -
    E(s): the beta maximising sum_i log sigmoid(beta delta_i) (P(s_i | the rest) of the
    Boltzmann weight: Besag's pseudo-likelihood, consistent as N grows), by damped Newton
    steps; beta kept within [1e-3, 1e3]."""
    d = delta.double()
    beta = torch.ones(d.shape[0], dtype=d.dtype, device=d.device)
    for _ in range(PSEUDO_ITERATIONS):
        s = torch.sigmoid(-beta[:, None] * d)
        grad = (d * s).sum(1)
        hess = (d**2 * s * (1 - s)).sum(1).clamp_min(1e-12)
        step = (grad / hess).clamp(-0.5 * beta, 2.0 * beta)
        beta = (beta + step).clamp(1e-3, 1e3)
    return 1.0 / beta


def one_side(plan: PhasesPlan, sp: Split, L, streams: RandomStreams, device,
             delta: torch.Tensor) -> list[dict]:  # fmt: skip
    """A physics-blind model trained on one side of the transition: a dense net (the first
    fully connected learner, else the first learner, as a regressor) fitted to T by squared
    error on the training chains of the temperatures below T_c (``exact``, else the ordered
    window's edge) only, then scored (root-mean-square error of T) on held-out chains on both
    sides; beside it the physics-aware estimate (the model's energy: maximum pseudo-likelihood
    from the flip energies ``delta`` (n_T, n, N) of a chain's configurations), which fits
    nothing. Both are scored per held-out chain (the mean prediction of its configurations).
    """
    c, o = plan.classify, plan.options
    lr = next((x for x in plan.learners if not x.options.convolutional), plan.learners[0])
    edge = c.exact if c.exact is not None else plan.ordered_below
    below = torch.from_numpy(sp.ts < edge)
    ts = torch.from_numpy(sp.ts).to(sp.train.device)
    t_mean, t_std = float(ts[below].mean()), float(ts[below].std()) if below.sum() > 1 else 1.0
    x = sp.train[below].flatten(0, 1)
    y = ((ts[below] - t_mean) / t_std)[:, None].expand(-1, sp.train.shape[1]).flatten()
    net = networks.build(lr.options, sp.shape, sp.basis, streams, device)
    networks.train_binary(net, x, y.to(x.dtype), epochs=o.epochs, lr=o.lr, batch=o.batch,
                          weight_decay=o.weight_decay, streams=streams,
                          loss_fn=torch.nn.MSELoss())  # fmt: skip
    n_t, n = sp.test.shape[:2]
    k = sp.per_chain if n % sp.per_chain == 0 else 1
    blind = networks.logits(net, sp.test.flatten(0, 1)).reshape(n_t, n // k, k).double()
    blind = blind.mean(-1) * t_std + t_mean  # per held-out chain: the mean of its predictions
    cut = sp.every.shape[1] - n  # the held-out chains' configurations
    pooled = delta[:, cut:].reshape(n_t * (n // k), -1)  # a chain's configurations pooled
    aware = pseudo_likelihood_temperature(pooled).reshape(n_t, n // k)
    truth = ts.double()[:, None].expand(n_t, n // k)

    def rmse(pred: torch.Tensor, side: torch.Tensor) -> float:
        return float(((pred[side] - truth[side]) ** 2).mean().sqrt())

    above = ~below
    rows = []
    for method, learner, pred in (("regression_of_T", lr.name, blind),
                                  ("pseudo_likelihood", "energy", aware)):  # fmt: skip
        inside, outside = rmse(pred, below), rmse(pred, above)
        rows.append({"kind": "one_side", "method": method, "learner": learner, "L": L,
                     "trained_below": edge, "rmse_inside": inside, "rmse_outside": outside,
                     "ratio": outside / inside if inside > 0 else None,
                     "T_max_predicted": float(pred[above].mean(1).max()),
                     "T_max": float(sp.ts[-1])})  # fmt: skip
    return rows


__all__ = ["Split", "accuracy", "chain_means", "controls", "curve_rows", "noisy", "one_side",
           "perturbed", "probabilities", "pseudo_likelihood_temperature", "split", "train",
           "window_data"]
