"""Lattice gauge-equivariant CNNs (L-CNN, Favoni et al., PRL 128, 032003 (2022)) and a plain
CNN baseline.

Features are complex matrices W (B, L..., C, N, N) transforming like plaquettes,
W_x -> Omega_x W_x Omega_x^dag. Links enter as matrices M = group.as_matrix(U),
(B, L..., d, N, N) (u1 as 1x1 complex phases, z2 as 1x1 +-1, su2 as 2x2).

- ``LConv``: W'_{x,i} = sum_{j, o} w_{ijo} T_o[W_j](x) over the offsets o = 0 and +-k e_mu
  (k = 1..K), T_{+k mu}[W](x) = U_{x -> x+k mu} W_{x+k mu} U_{x -> x+k mu}^dag (parallel
  transport along the straight path), built recursively T_{+k} = T_{+1} o T_{+(k-1)}.
- ``LBilin``: W''_{x,i} = sum_{jk} a_{ijk} W_{x,j} W'_{x,k}, with the identity appended to both
  inputs so linear terms and a constant are included.
- ``LAct``: W -> sigmoid(a Re tr W / N + b) W (gate is gauge invariant, so covariance holds).
- ``LTrace``: (Re tr W / N, Im tr W / N) per channel -- gauge invariant.
Weights are shared across sites (translation equivariance by construction; shifts are rolls).

Training (``RegressorTraining``): Adam on the mean squared error, one epoch per step of a scan
point, so that the run driver checkpoints it and ``--resume`` continues it; the minibatch order
comes from the point's random streams.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.gauge import LCNNOptions, PlainCNNOptions
from physml_lang.compiler.lower.groups import GaugeGroup, get_group
from physml_lang.compiler.lower.links import planes, shift
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span

from ..checkpoint import Checkpoint
from ..device import HOST
from ..driver import ScanPoint
from ..random import RandomStreams
from .checkpoints import loaded, stored

Tensor = torch.Tensor


def _dag(m: Tensor) -> Tensor:
    return m.conj().transpose(-1, -2)


def _cparam(*shape: int, scale: float, generator: torch.Generator | None) -> nn.Parameter:
    re = torch.randn(shape, generator=generator, device=HOST) * scale
    im = torch.randn(shape, generator=generator, device=HOST) * scale
    return nn.Parameter(torch.complex(re, im))


def link_matrices(U: Tensor, group: str | GaugeGroup) -> Tensor:
    """Storage links -> (B, L..., d, N, N) complex matrices."""
    return get_group(group).as_matrix(U)


def plaquette_features(M: Tensor) -> Tensor:
    """Plaquette matrices of every plane as channels: (B, L..., n_planes, N, N) from link
    matrices M (B, L..., d, N, N). Each transforms as Omega_x P Omega_x^dag."""
    d = M.dim() - 4
    Ul = [M.select(1 + d, mu) for mu in range(d)]
    ps = [Ul[mu] @ shift(Ul[nu], mu) @ _dag(shift(Ul[mu], nu)) @ _dag(Ul[nu])
          for mu, nu in planes(d)]  # fmt: skip
    return torch.stack(ps, dim=1 + d)


class LConv(nn.Module):
    """Parallel-transport convolution, kernel reach K along each axis (see module docstring)."""

    def __init__(self, c_in: int, c_out: int, d: int, kernel_size: int = 1,
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.d, self.K = d, kernel_size
        n_off = 1 + 2 * d * kernel_size
        self.weight = _cparam(c_out, c_in, n_off, scale=1 / math.sqrt(c_in * n_off),
                              generator=generator)  # fmt: skip

    def forward(self, W: Tensor, M: Tensor) -> Tensor:
        d = self.d
        feats = [W]
        for mu in range(d):
            u = M.select(1 + d, mu).unsqueeze(-3)  # (B, L..., 1, N, N): broadcast over channels
            ud = _dag(u)
            fwd, bwd = W, W
            for _ in range(self.K):
                fwd = u @ shift(fwd, mu, 1) @ ud  # U_mu(x) T(x+mu) U_mu(x)^dag
                bwd = shift(ud @ bwd @ u, mu, -1)  # U_mu(x-mu)^dag T(x-mu) U_mu(x-mu)
                feats += [fwd, bwd]
        X = torch.stack(feats, dim=-3)  # (B, L..., C, n_off, N, N)
        return torch.einsum("...jonm,ijo->...inm", X, self.weight.to(X.dtype))


class LBilin(nn.Module):
    """Bilinear channel mixing W''_i = sum_jk a_ijk W_j W'_k (identity appended to both)."""

    def __init__(self, c1: int, c2: int, c_out: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = _cparam(c_out, c1 + 1, c2 + 1, scale=1 / math.sqrt((c1 + 1) * (c2 + 1)),
                              generator=generator)  # fmt: skip

    @staticmethod
    def _with_identity(W: Tensor) -> Tensor:
        eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
        return torch.cat([W, eye.expand(*W.shape[:-3], 1, *W.shape[-2:])], dim=-3)

    def forward(self, W1: Tensor, W2: Tensor) -> Tensor:
        a = self._with_identity(W1).unsqueeze(-3)  # (..., C1, 1, N, N)
        b = self._with_identity(W2).unsqueeze(-4)  # (..., 1, C2, N, N)
        prod = a @ b  # (..., C1, C2, N, N)
        return torch.einsum("...jknm,ijk->...inm", prod, self.weight.to(prod.dtype))


class LAct(nn.Module):
    """Covariant activation W -> sigmoid(a Re tr W / N + b) W, per channel."""

    def __init__(self, channels: int):
        super().__init__()
        # Start near the identity (constant gate): the polynomial L-Conv/L-Bilin stack then
        # represents products of loops exactly, and the gate is learned from there.
        self.a = nn.Parameter(torch.zeros(channels, device=HOST))
        self.b = nn.Parameter(torch.full((channels,), 2.0, device=HOST))

    def forward(self, W: Tensor) -> Tensor:
        N = W.shape[-1]
        retr = torch.diagonal(W, dim1=-2, dim2=-1).sum(-1).real / N
        gate = torch.sigmoid(self.a.to(retr.dtype) * retr + self.b.to(retr.dtype))
        return W * gate[..., None, None]


class LTrace(nn.Module):
    """Invariant readout: (B, L..., C, N, N) -> (B, L..., 2C) = (Re tr / N, Im tr / N)."""

    def forward(self, W: Tensor) -> Tensor:
        tr = torch.diagonal(W, dim1=-2, dim2=-1).sum(-1) / W.shape[-1]
        return torch.cat([tr.real, tr.imag], dim=-1)


class LCNN(nn.Module):
    """L-CNN: plaquette channels -> [LConv -> LBilin(conv, input) -> LAct] x layers ->
    LTrace -> per-site MLP -> density (B, L..., out) -> sum / mean over sites (or the field).

    Gauge invariant and translation equivariant for every lattice size (weights per site).
    """

    def __init__(self, group: str | GaugeGroup, d: int, channels: list[int] | None = None,
                 kernel_size: int = 1, hidden: int = 16, out_features: int = 1,
                 readout: str = "mean", generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.group = get_group(group)
        self.d, self.readout = d, readout
        channels = channels or [4, 8]
        c = d * (d - 1) // 2
        self.convs, self.bilins, self.acts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for c_out in channels:
            self.convs.append(LConv(c, c_out, d, kernel_size, generator))
            self.bilins.append(LBilin(c_out, c, c_out, generator))
            self.acts.append(LAct(c_out))
            c = c_out
        self.trace = LTrace()
        self.head = nn.Sequential(nn.Linear(2 * c, hidden, device=HOST), nn.Tanh(),
                                  nn.Linear(hidden, out_features, device=HOST))  # fmt: skip

    def features(self, U: Tensor) -> Tensor:
        """Covariant features (B, L..., C, N, N) before the trace."""
        M = link_matrices(U, self.group)
        M = M.to(torch.complex64 if self.head[0].weight.dtype == torch.float32
                 else torch.complex128)  # fmt: skip
        W = plaquette_features(M)
        for conv, bil, act in zip(self.convs, self.bilins, self.acts):
            W = act(bil(conv(W, M), W))
        return W

    def density(self, U: Tensor) -> Tensor:
        """Invariant per-site outputs (B, L..., out_features)."""
        return self.head(self.trace(self.features(U)))

    def forward(self, U: Tensor) -> Tensor:
        rho = self.density(U)
        if self.readout == "none":
            return rho
        dims = tuple(range(1, 1 + self.d))
        return rho.sum(dims) if self.readout == "sum" else rho.mean(dims)


class PlainCNN(nn.Module):
    """Baseline: circular CNN on raw link components (u1: cos, sin of theta; su2: the 8 real
    numbers; z2: the sign) per direction, global mean/sum readout. d = 1, 2 or 3.

    Translation equivariant but not gauge equivariant.
    """

    def __init__(self, group: str | GaugeGroup, d: int, channels: list[int] | None = None,
                 kernel_size: int = 3, out_features: int = 1, readout: str = "mean"):  # fmt: skip
        super().__init__()
        self.group = get_group(group)
        self.d, self.readout = d, readout
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d]
        per_link = {"z2": 1, "u1": 2, "su2": 8}[self.group.name]
        c = d * per_link
        layers: list[nn.Module] = []
        for c_out in channels or [16, 32]:
            layers += [conv(c, c_out, kernel_size, padding=kernel_size // 2,
                            padding_mode="circular", device=HOST), nn.ReLU()]  # fmt: skip
            c = c_out
        layers.append(conv(c, out_features, 1, device=HOST))
        self.net = nn.Sequential(*layers)

    def inputs(self, U: Tensor) -> Tensor:
        d = self.d
        if self.group.name == "u1":
            x = torch.stack([torch.cos(U), torch.sin(U)], -1)
        elif self.group.name == "su2":
            x = torch.view_as_real(U).flatten(-3)
        else:
            x = U[..., None]
        x = x.flatten(1 + d)  # (B, L..., d * per_link)
        return x.movedim(-1, 1).to(self.net[0].weight.dtype)

    def forward(self, U: Tensor) -> Tensor:
        rho = self.net(self.inputs(U))  # (B, out, L...)
        if self.readout == "none":
            return rho.movedim(1, -1)
        dims = tuple(range(2, 2 + self.d))
        return rho.sum(dims) if self.readout == "sum" else rho.mean(dims)


# ---------------------------------------------------------------- catalogue implementations


def build_lcnn(group: str | GaugeGroup, d: int, o: LCNNOptions,
               generator: torch.Generator | None = None) -> LCNN:  # fmt: skip
    """The ``lcnn`` learner entry's implementation."""
    return LCNN(group, d, o.channels, o.kernel_size, o.hidden, o.out_features, o.readout,
                generator)  # fmt: skip


def build_gauge_cnn(group: str | GaugeGroup, d: int, o: PlainCNNOptions,
                    generator: torch.Generator | None = None) -> PlainCNN:  # fmt: skip
    """The ``gauge_cnn`` learner entry's implementation (torch's default initialisers: the
    generator is not used)."""
    return PlainCNN(group, d, o.channels, o.kernel_size, o.out_features, o.readout)


def make_learner(name: str, group: str | GaugeGroup, d: int,
                 generator: torch.Generator | None = None, **options) -> nn.Module:  # fmt: skip
    """A gauge learner of the catalogue by name, options validated with its pydantic schema."""
    entry = CATALOGUE.learners.get(name, "gauge")
    if entry is None:
        raise KeyError(f"unknown gauge learner {name!r}; known: "
                       f"{sorted(CATALOGUE.learners.names('gauge'))}")  # fmt: skip
    factory = CATALOGUE.learners.implementation(name, "gauge")
    return factory(group, d, entry.schema(**options), generator=generator)


def bind(catalogue: Catalogue) -> None:
    """Attach the gauge learners to their catalogue entries (called by the gauge tasks' bind)."""
    catalogue.learners.bind("lcnn", build_lcnn, family="gauge")
    catalogue.learners.bind("gauge_cnn", build_gauge_cnn, family="gauge")


class RegressorTraining(ScanPoint):
    """Adam on MSE(model(U), y) as a scan point: one ``step`` = one epoch over the data in
    minibatches of ``batch_size``, in a random order drawn from ``streams`` (the same order on
    every device). U (n, L..., d, *group_shape), y (n, out), on the model's device. The mean
    loss per epoch stays on the device (no host sync per epoch); ``history`` reads it.
    ``tensors``/``restore``: the parameters, Adam's moments and step counts, the losses (the
    driver adds the streams' draw counter); ``rows`` is the task's (a subclass)."""

    CHECK_EVERY = 16  # epochs between checks of the losses' finiteness

    def __init__(self, model: nn.Module, U: Tensor, y: Tensor, streams: RandomStreams,
                 epochs: int = 50, batch_size: int = 32, lr: float = 3e-3,
                 path: Path | None = None, span: Span | None = None):  # fmt: skip
        self.model, self.U, self.y, self.streams = model, U, y, streams
        self.batch_size, self.path, self.span = batch_size, path, span
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.total, self.done = epochs, 0
        self.losses = torch.zeros(epochs, dtype=torch.float64, device=U.device)

    def step(self) -> None:
        """One epoch."""
        n, opt = self.U.shape[0], self.optimizer
        order = self.streams.permutation(n).to(self.U.device)
        total = torch.zeros((), dtype=torch.float64, device=self.U.device)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            pred = self.model(self.U[idx])
            loss = torch.mean((pred - self.y[idx].to(pred.dtype)) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(idx)
        self.losses[self.done] = total / n
        self.done += 1
        if self.done % self.CHECK_EVERY == 0 or self.done == self.total:
            self._check_finite()

    def _check_finite(self) -> None:
        """A located P700 at the first non-finite epoch loss since the last check (one host
        sync per CHECK_EVERY epochs)."""
        start = (self.done - 1) // self.CHECK_EVERY * self.CHECK_EVERY
        finite = torch.isfinite(self.losses[start : self.done])
        if bool(finite.all()):
            return
        bad = start + int((~finite).nonzero()[0, 0])
        raise PhysmlError(Diagnostic(
            "P700", f"the training loss of learner {getattr(self, 'name', 'regressor')} became "
            f"non-finite at epoch {bad + 1} of {self.total}", self.span, "lower lr or use a "
            "smaller batch_size; rows of learners trained before were kept"))  # fmt: skip

    @property
    def history(self) -> list[float]:
        """The mean loss of every epoch done."""
        return self.losses[: self.done].tolist()

    def tensors(self) -> dict[str, Tensor]:
        out = {f"model/{k}": stored(v) for k, v in self.model.state_dict().items()}
        for i, moments in self.optimizer.state_dict()["state"].items():
            out.update({f"adam/{i}/{k}": stored(v) for k, v in moments.items()})
        out["losses"] = self.losses[: self.done]
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this training (a tensor that does not fit is a P602)."""
        t, path, span = saved.tensors, self.path, self.span
        self.done = int(saved.state["done"])
        self.model.load_state_dict({k: loaded(t, f"model/{k}", v, path, span)
                                    for k, v in self.model.state_dict().items()})  # fmt: skip
        state = {}
        for i, p in enumerate(self.model.parameters()):  # Adam's indices: parameter order
            if f"adam/{i}/step" in t:  # a parameter without a gradient yet has no moments
                state[i] = {"step": t[f"adam/{i}/step"]}
                state[i].update({k: loaded(t, f"adam/{i}/{k}", p.detach(), path, span)
                                 for k in ("exp_avg", "exp_avg_sq")})  # fmt: skip
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.losses[: self.done] = loaded(t, "losses", self.losses[: self.done], path, span)


def train_regressor(model: nn.Module, U: Tensor, y: Tensor, streams: RandomStreams,
                    epochs: int = 50, batch_size: int = 32, lr: float = 3e-3) -> list[float]:  # fmt: skip
    """Adam on MSE(model(U), y) for ``epochs`` epochs (``RegressorTraining`` stepped to its
    end, without the driver); U (n, L..., d, *group_shape), y (n, out). Returns the mean loss
    per epoch."""
    training = RegressorTraining(model, U, y, streams, epochs, batch_size, lr)
    while training.done < training.total:
        training.step()
    return training.history


__all__ = ["LAct", "LBilin", "LCNN", "LConv", "LTrace", "PlainCNN", "RegressorTraining",
           "build_gauge_cnn", "build_lcnn", "make_learner", "link_matrices", "plaquette_features",
           "train_regressor"]  # fmt: skip
