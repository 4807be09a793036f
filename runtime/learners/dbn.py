"""Restricted Boltzmann machines as dense layers, and deep belief networks stacked from them.

One layer is an RBM with visible units of the data's domain and binary (or Gaussian) hidden
units,

    E(v, h) = -a . x(v) - b . h - x(v)^T W h            (+ h^2 / 2 for Gaussian hidden units)

where x(v) are the visible features: the values themselves for binary (0/1) and spin (+-1)
units, the one-hot encoding (n q entries) for categorical (Potts, softmax) units with q values.
Summing out h gives the free energy

    F(v) = -a . x(v) - sum_j softplus(b_j + (x(v) W)_j)        (binary h)
    F(v) = -a . x(v) - sum_j (b_j + (x(v) W)_j)^2 / 2          (Gaussian h, up to a constant)

and the conditionals p(h_j = 1 | v) = sigmoid(b_j + (x W)_j), p(v_i | h) = sigmoid
(binary), sigmoid(2 phi) for v = +1 (spin), softmax over the q values (Potts) of the field
phi = a + W h. Shapes: values (B, n), features (B, n q) (q = 1 for two-valued units), hidden
(B, m).

A deep belief network (Hinton, Osindero & Teh 2006) is trained greedily: the first RBM by
CD-k / PCD on the data, each next one on the hidden activations of the one below (samples
h ~ p(h|v), which keeps the variational bound on log p(v) valid, or their probabilities). It
generates by Gibbs sampling in the top RBM and down-passes through the directed layers below.

Every random number comes from :class:`~physml_lang.runtime.random.RandomStreams` with the
chain or example on the leading axis; optimisers and learning-rate schedules are the
catalogue's (``runtime/learners/train.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as fn
from pydantic import BaseModel
from torch import nn

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.boltzmann import FAMILY

from ..random import RandomStreams
from .train import Divergence, make_optimizer

# exact log Z enumerates min(q^n visible, 2^m hidden) states: at most 2^22
MAX_STATES = 1 << 22


@dataclass(frozen=True)
class Units:
    """The visible units of a layer: ``binary`` (0/1), ``spin`` (+-1) or ``potts`` (q values
    0 .. q-1, softmax units)."""

    kind: str
    q: int = 2

    @property
    def per_site(self) -> int:
        """Feature entries per unit: q for softmax units, else 1."""
        return self.q if self.kind == "potts" else 1

    def values(self) -> list[float]:
        return {"binary": [0.0, 1.0], "spin": [-1.0, 1.0]}.get(self.kind,
                                                              [float(k) for k in range(self.q)])  # fmt: skip

    def features(self, v: torch.Tensor) -> torch.Tensor:
        """x(v): (B, n) values -> (B, n q) features (one-hot for softmax units)."""
        if self.kind != "potts":
            return v
        return fn.one_hot(v.long(), self.q).reshape(v.shape[0], -1).to(v.dtype)

    def unit01(self, v: torch.Tensor) -> torch.Tensor:
        """The [0, 1] representation that reconstruction errors and PCA use: binary values,
        (s + 1) / 2 for spins, one-hot for softmax units; (B, n q)."""
        if self.kind == "spin":
            return (v + 1) / 2
        return self.features(v)

    def mean01(self, phi: torch.Tensor) -> torch.Tensor:
        """E[unit01(v) | h] from the visible field phi (B, n q)."""
        if self.kind == "binary":
            return torch.sigmoid(phi)
        if self.kind == "spin":
            return torch.sigmoid(2 * phi)
        B = phi.shape[0]
        return torch.softmax(phi.reshape(B, -1, self.q), -1).reshape(B, -1)

    def sample(self, phi: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
        """v ~ p(v | h) from the field phi (B, n q) -> values (B, n)."""
        B = phi.shape[0]
        if self.kind != "potts":
            p = self.mean01(phi)
            u = streams.uniform(p.shape, p.dtype)
            lo, hi = self.values()
            return torch.where(u < p, torch.full_like(p, hi), torch.full_like(p, lo))
        p = torch.softmax(phi.reshape(B, -1, self.q), -1)
        u = streams.uniform(p.shape[:2], p.dtype)
        k = (u.unsqueeze(-1) > torch.cumsum(p, -1)).sum(-1).clamp(max=self.q - 1)
        return k.to(phi.dtype)

    def log_partition(self, phi: torch.Tensor) -> torch.Tensor:
        """sum_i log sum_{v_i} exp(phi_i . x(v_i)) -> (B,): the visible units summed out."""
        B = phi.shape[0]
        if self.kind == "binary":
            return fn.softplus(phi).sum(-1)
        if self.kind == "spin":
            return torch.logaddexp(phi, -phi).sum(-1)
        return torch.logsumexp(phi.reshape(B, -1, self.q), -1).sum(-1)

    def cross_entropy(self, logits: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """-log p(v | logits) summed over units, (B,): the fine-tuning loss of an autoencoder
        whose output layer has visible field ``logits`` (B, n q)."""
        B = logits.shape[0]
        if self.kind == "potts":
            lp = torch.log_softmax(logits.reshape(B, -1, self.q), -1)
            return -(lp * self.features(v).reshape(B, -1, self.q)).sum((-1, -2))
        z = 2 * logits if self.kind == "spin" else logits
        return fn.binary_cross_entropy_with_logits(z, self.unit01(v), reduction="none").sum(-1)


BINARY = Units("binary")


def units_of(kind: str, q: int | None = None) -> Units:
    """The units of a data domain (``binary``, ``spin``, ``potts`` with q values)."""
    return Units(kind, int(q) if kind == "potts" and q else 2)


class RBMLayer(nn.Module):
    """One RBM: ``n_visible`` units of ``units``, ``n_hidden`` binary (or Gaussian) units;
    parameters W (n q, m), a (n q,), b (m,)."""

    def __init__(self, units: Units, n_visible: int, n_hidden: int, sigma: float,
                 generator: torch.Generator, dtype: torch.dtype = torch.float64,
                 gaussian: bool = False):  # fmt: skip
        super().__init__()
        self.units, self.n_visible, self.n_hidden = units, n_visible, n_hidden
        self.gaussian = gaussian
        D = n_visible * units.per_site
        w = torch.randn(D, n_hidden, generator=generator, dtype=torch.float64) * sigma
        self.W = nn.Parameter(w.to(dtype))
        self.a = nn.Parameter(torch.zeros(D, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    # ---------------------------------------------------------------- conditionals
    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """b + x(v) W -> (B, m)."""
        return self.units.features(v) @ self.W + self.b

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v] -> (B, m)."""
        z = self.hidden_field(v)
        return z if self.gaussian else torch.sigmoid(z)

    def sample_hidden(self, v: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
        """h ~ p(h | v) -> (B, m)."""
        z = self.hidden_field(v)
        if self.gaussian:
            return z + streams.normal(z.shape, z.dtype)
        return (streams.uniform(z.shape, z.dtype) < torch.sigmoid(z)).to(z.dtype)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """phi = a + W h -> (B, n q)."""
        return h @ self.W.T + self.a

    def sample_visible(self, h: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
        """v ~ p(v | h) -> values (B, n)."""
        return self.units.sample(self.visible_field(h), streams)

    def gibbs(self, v: torch.Tensor, streams: RandomStreams, k: int) -> torch.Tensor:
        """k block-Gibbs sweeps (h | v, then v | h) from v -> (B, n)."""
        for _ in range(k):
            v = self.sample_visible(self.sample_hidden(v, streams), streams)
        return v

    # ---------------------------------------------------------------- energies
    def free_energy(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """beta F_beta(v) with the hidden units summed out at inverse temperature beta,
        (B,) (Gaussian hidden units: without the constant -m log(2 pi / beta) / 2)."""
        x = self.units.features(v)
        z = beta * (x @ self.W + self.b)
        hidden = z.pow(2).sum(-1) / (2 * beta) if self.gaussian else fn.softplus(z).sum(-1)
        return -beta * (x @ self.a) - hidden

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) -> (B,)."""
        x = self.units.features(v)
        e = -(x @ self.a) - h @ self.b - ((x @ self.W) * h).sum(-1)
        return e + h.pow(2).sum(-1) / 2 if self.gaussian else e

    def states(self) -> int:
        """The states an exact log Z enumerates: the smaller side."""
        return min(self.units.q ** self.n_visible if self.units.kind == "potts"
                   else 2**self.n_visible, 2**self.n_hidden)  # fmt: skip

    @torch.no_grad()
    def exact_log_z(self) -> float:
        """log Z by enumerating the smaller of the visible (q^n) and hidden (2^m) spaces; the
        other layer is summed in closed form."""
        if self.gaussian:
            raise ValueError("exact log Z of Gaussian hidden units is not implemented")
        W, a, b = self.W.double(), self.a.double(), self.b.double()
        n_v = (self.units.q if self.units.kind == "potts" else 2) ** self.n_visible
        if n_v <= 2**self.n_hidden:
            v = torch.tensor(list(itertools.product(self.units.values(), repeat=self.n_visible)),
                             dtype=torch.float64, device=W.device)  # fmt: skip
            x = self.units.features(v)
            lw = x @ a + fn.softplus(x @ W + b).sum(-1)
        else:
            h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=self.n_hidden)),
                             dtype=torch.float64, device=W.device)  # fmt: skip
            lw = h @ b + self.units.log_partition(h @ W.T + a)
        return float(torch.logsumexp(lw, 0))

    @torch.no_grad()
    def ais_log_z(self, betas: int, chains: int, streams: RandomStreams) -> tuple[float, float]:
        """(log Z, stderr) by annealed importance sampling (Neal 2001; Salakhutdinov & Murray
        2008) from the uniform distribution (beta = 0: Z_0 = q^n 2^m) through
        p_k(v) ~ exp(-beta_k F_{beta_k}(v)), one block-Gibbs sweep at beta_k per step; chain b
        from stream b. The error is the delta-method error of the mean weight."""
        if self.gaussian:
            raise ValueError("AIS of Gaussian hidden units is not implemented")
        vals = torch.tensor(self.units.values(), dtype=torch.float64, device=self.W.device)
        v = vals[streams.integers(0, len(vals), (chains, self.n_visible))]
        log_z0 = self.n_visible * math.log(len(vals)) + self.n_hidden * math.log(2)
        logw = torch.zeros(chains, dtype=torch.float64, device=v.device)
        W, a, b = self.W.double(), self.a.double(), self.b.double()
        schedule = np.linspace(0.0, 1.0, betas + 1)
        for b0, b1 in zip(schedule[:-1], schedule[1:]):
            x = self.units.features(v)
            xa, z = x @ a, x @ W + b
            logw += (b1 - b0) * xa + fn.softplus(b1 * z).sum(-1) - fn.softplus(b0 * z).sum(-1)
            h = (streams.uniform(z.shape, torch.float64) < torch.sigmoid(b1 * z)).double()
            v = self.units.sample(b1 * (h @ W.T + a), streams)
        m = float(logw.max())
        w = torch.exp(logw - m)
        mean = float(w.mean())
        stderr = float(w.std() / math.sqrt(chains)) / mean if chains > 1 else float("nan")
        return log_z0 + m + math.log(mean), stderr


# ---------------------------------------------------------------- training one layer


class LayerTrainer:
    """CD-k or PCD training of one layer on ``data`` (N, n) values, with the catalogue's
    optimiser and learning-rate schedule: ``run_epoch`` is one pass in minibatches of a random
    order; the loss is mean F(v_data) - mean F(v_model), whose gradient (model samples held
    fixed) is the log-likelihood gradient's CD / PCD estimate."""

    def __init__(self, layer: RBMLayer, data: torch.Tensor, objective: tuple[str, BaseModel],
                 optimizer: tuple[str, BaseModel], schedule: tuple[str, BaseModel], epochs: int,
                 batch: int, streams: RandomStreams, max_weight: float = 1e4):  # fmt: skip
        self.layer, self.data = layer, data.to(layer.dtype)
        self.objective, self.oopts = objective
        self.persistent = self.objective == "pcd"
        self.lr_factor = CATALOGUE.schedules.implementation(schedule[0], FAMILY)
        self.sopts = schedule[1]
        self.optimizer = make_optimizer(optimizer[0], optimizer[1], list(layer.parameters()))
        self.base_lr = optimizer[1].lr
        self.epochs, self.batch = epochs, max(1, min(batch, len(data)))
        self.streams, self.max_weight = streams, max_weight
        self.epoch = 0
        self.chains = None
        if self.persistent:
            vals = torch.tensor(layer.units.values(), dtype=layer.dtype, device=self.data.device)
            self.chains = vals[streams.integers(0, len(vals), (self.oopts.chains, layer.n_visible))]

    def step(self, v: torch.Tensor) -> tuple[float, float]:
        """One optimiser step on a minibatch (B, n); (loss, reconstruction error per unit)."""
        layer = self.layer
        with torch.no_grad():
            if self.persistent:
                self.chains = layer.gibbs(self.chains, self.streams, self.oopts.k)
                neg = self.chains
            else:
                neg = layer.gibbs(v, self.streams, self.oopts.k)
            recon = layer.units.mean01(layer.visible_field(layer.hidden_mean(v)))
            err = float((recon - layer.units.unit01(v)).pow(2).mean())
        loss = layer.free_energy(v).mean() - layer.free_energy(neg).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            params = list(layer.parameters())
            if not math.isfinite(float(loss)) or not all(bool(torch.isfinite(p).all())
                                                          for p in params):  # fmt: skip
                raise Divergence("non-finite loss or parameter")
            big = max(float(p.abs().max()) for p in params)
            if big > self.max_weight:
                raise Divergence(f"a parameter reached |{big:.3g}| > max_weight = "
                                 f"{self.max_weight:g}")  # fmt: skip
        return float(loss.detach()), err

    def run_epoch(self) -> dict:
        """One pass over the data; the epoch's mean loss and reconstruction error per unit."""
        n = len(self.data)
        perm = self.streams.permutation(n).to(self.data.device)
        n_batches = max(1, n // self.batch)
        losses, errs = [], []
        for k in range(n_batches):
            factor = self.lr_factor(self.sopts, self.epoch + k / n_batches, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * factor
            loss, err = self.step(self.data[perm[k * self.batch : (k + 1) * self.batch]])
            losses.append(loss)
            errs.append(err)
        self.epoch += 1
        return {"epoch": self.epoch, "loss": sum(losses) / len(losses),
                "reconstruction": sum(errs) / len(errs)}  # fmt: skip


# ---------------------------------------------------------------- the stack


class DBN(nn.Module):
    """A stack of RBMs, ``sizes`` = [n_visible, m_1, m_2, ...]: layer l has m_{l-1} visible
    and m_l hidden units; the data's units at the bottom, binary units above (the top layer's
    hidden units Gaussian where ``gaussian_top``)."""

    def __init__(self, units: Units, sizes: list[int], sigma: float, generator: torch.Generator,
                 dtype: torch.dtype = torch.float64, gaussian_top: bool = False):  # fmt: skip
        super().__init__()
        self.units, self.sizes = units, list(sizes)
        top = len(sizes) - 2
        self.layers = nn.ModuleList([
            RBMLayer(units if l == 0 else BINARY, sizes[l], sizes[l + 1], sigma, generator,
                     dtype, gaussian=gaussian_top and l == top)
            for l in range(len(sizes) - 1)])  # fmt: skip

    def activations(self, v: torch.Tensor, upto: int, mode: str,
                    streams: RandomStreams | None) -> torch.Tensor:  # fmt: skip
        """The data passed up through layers 0 .. upto-1: samples h ~ p(h|v) layer by layer
        (``mode`` sample) or their probabilities (mean); (B, m_upto)."""
        x = v
        for layer in self.layers[:upto]:
            x = layer.sample_hidden(x, streams) if mode == "sample" else layer.hidden_mean(x)
        return x

    @torch.no_grad()
    def generate(self, chains: int, sweeps: int, streams: RandomStreams) -> torch.Tensor:
        """Samples of the DBN's visible units: ``sweeps`` block-Gibbs sweeps of the top RBM
        from random states, then a sampled down-pass through the layers below; (chains, n)."""
        top = self.layers[-1]
        vals = torch.tensor(top.units.values(), dtype=top.dtype, device=top.W.device)
        x = vals[streams.integers(0, len(vals), (chains, top.n_visible))]
        x = top.gibbs(x, streams, sweeps)
        for layer in reversed(self.layers[:-1]):
            x = layer.sample_visible(x, streams)
        return x

    @torch.no_grad()
    def updown(self, v: torch.Tensor) -> torch.Tensor:
        """The deterministic up-down reconstruction E[unit01(v)] (B, n q): probabilities up
        to the top hidden layer, then down."""
        x = self.activations(v, len(self.layers), "mean", None)
        for layer in reversed(self.layers[1:]):
            x = torch.sigmoid(layer.visible_field(x))
        return self.units.mean01(self.layers[0].visible_field(x))


@torch.no_grad()
def exact_bound(lower: RBMLayer, upper: RBMLayer, v: torch.Tensor) -> torch.Tensor:
    """The variational lower bound on log p(v) of a two-layer DBN (Hinton, Osindero & Teh
    2006), exactly by enumerating the 2^m hidden states of the lower layer, (B,):

        log p(v) >= sum_h q(h|v) [log p_upper(h) + log p_lower(v|h)] + H(q(.|v)),

    q(h|v) = p_lower(h|v), log p_upper(h) = -F_upper(h) - log Z_upper. With the upper RBM the
    lower one turned upside down (W^T, biases swapped) it equals the lower RBM's log p(v)."""
    m = lower.n_hidden
    H = torch.tensor(list(itertools.product([0.0, 1.0], repeat=m)), dtype=lower.dtype,
                     device=lower.W.device)  # (2^m, m)
    p = torch.sigmoid(lower.hidden_field(v))  # (B, m)
    log_q = (torch.log(p.clamp_min(1e-300)) @ H.T
             + torch.log((1 - p).clamp_min(1e-300)) @ (1 - H).T)  # (B, 2^m)
    log_prior = -upper.free_energy(H) - upper.exact_log_z()  # (2^m,)
    phi = H @ lower.W.T + lower.a  # (2^m, n q)
    x = lower.units.features(v)
    log_lik = x @ phi.T - lower.units.log_partition(phi)  # (B, 2^m)
    q = torch.exp(log_q)
    return (q * (log_prior + log_lik - log_q)).sum(-1)


def pca_reconstruction(train01: torch.Tensor, test01: torch.Tensor, k: int) -> torch.Tensor:
    """Squared reconstruction error per held-out example (B,) of PCA with ``k`` components,
    fitted to the training data (centred; torch.linalg.svd), on the [0, 1] representation."""
    mean = train01.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(train01 - mean, full_matrices=False)
    V = vh[:k].T
    rec = mean + (test01 - mean) @ V @ V.T
    return (rec - test01).pow(2).sum(-1)


OnEpoch = Callable[[int, dict], None]

__all__ = ["DBN", "LayerTrainer", "MAX_STATES", "RBMLayer", "Units", "exact_bound",
           "pca_reconstruction", "units_of"]
