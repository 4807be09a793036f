"""The phase classifiers and their training.

Configurations arrive as (B, *cells, basis) or (B, *cells) tensors of s = +-1 and are read as
(B, C, *cells) images with the basis sites as channels. ``ConvClassifier``: circular
convolutions (the lattice is periodic) with ReLU, global average pooling over the cells, then
a small head: translation-invariant by construction and blind to the lattice size.
``DenseClassifier``: fully connected on the flattened configuration (one size only).
Both return one logit per configuration (log-odds of "ordered").
"""

from __future__ import annotations

import math

import torch
from torch import nn

from physml_lang.catalogue.phases import ClassifierOptions

from ..random import RandomStreams

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def as_images(x: torch.Tensor, basis: int) -> torch.Tensor:
    """(B, *cells[, basis]) -> (B, C, *cells): basis sites as channels (C = basis)."""
    return x.movedim(-1, 1) if basis > 1 else x.unsqueeze(1)


class ConvClassifier(nn.Module):
    """Circular convolutions, ReLU, global average pooling, an MLP head: (B, C, *cells) ->
    (B,) logits; invariant under lattice translations."""

    def __init__(self, options: ClassifierOptions, dim: int, channels_in: int, device,
                 dtype: torch.dtype):  # fmt: skip
        super().__init__()
        k = options.kernel
        layers: list[nn.Module] = []
        c = channels_in
        for width in options.channels or []:
            layers += [CONV[dim](c, width, k, padding=k // 2, padding_mode="circular",
                                 device=device, dtype=dtype), nn.ReLU()]  # fmt: skip
            c = width
        self.features = nn.Sequential(*layers)
        self.head = _mlp(c, options.hidden if options.hidden is not None else [16], device,
                         dtype)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h.flatten(2).mean(-1)).squeeze(-1)


class DenseClassifier(nn.Module):
    """Fully connected on the flattened configuration: (B, C, *cells) -> (B,) logits."""

    def __init__(self, options: ClassifierOptions, n_inputs: int, device, dtype: torch.dtype):
        super().__init__()
        self.n_inputs = n_inputs
        self.net = _mlp(n_inputs, options.hidden if options.hidden is not None else [64],
                        device, dtype)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(-1)


class Ensemble(nn.Module):
    """Independently trained classifiers read as one: the logit of their mean probability,
    (B, C, *cells) -> (B,)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](x)
        p = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(0)
        return torch.logit(p, eps=1e-7)


def _mlp(n_in: int, hidden: list[int], device, dtype) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width, device=device, dtype=dtype), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, 1, device=device, dtype=dtype))
    return nn.Sequential(*layers)


def build(options: ClassifierOptions, shape: tuple[int, ...], basis: int,
          streams: RandomStreams, device, dtype=torch.float32) -> nn.Module:  # fmt: skip
    """The classifier for configurations of ``shape`` (cells[, basis]), its weights drawn from
    ``streams`` (uniform +-1/sqrt(fan_in), torch's default scale)."""
    cells = shape[:-1] if basis > 1 else shape
    if options.convolutional:
        net: nn.Module = ConvClassifier(options, len(cells), basis, device, dtype)
    else:
        net = DenseClassifier(options, math.prod(shape), device, dtype)
    g = streams.host_generator()
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else p.shape[0]
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64, device="cpu") * 2 - 1)
                    * bound)  # a host generator draws on the host
    return net


def accepts(net: nn.Module, shape: tuple[int, ...], basis: int) -> bool:
    """Can ``net`` read configurations of ``shape`` (without retraining)?"""
    if isinstance(net, Ensemble):
        return all(accepts(m, shape, basis) for m in net.members)
    if isinstance(net, ConvClassifier):
        first = next(m for m in net.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
                     ) if net.features else None  # fmt: skip
        cells = shape[:-1] if basis > 1 else shape
        return first is None or (first.in_channels == basis
                                 and len(cells) == len(first.kernel_size))  # fmt: skip
    return isinstance(net, DenseClassifier) and net.n_inputs == math.prod(shape)


def train_binary(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
                 batch: int, weight_decay: float, streams: RandomStreams,
                 loss_fn: nn.Module | None = None) -> float:  # fmt: skip
    """Minimise the binary cross-entropy of logits net(x) against labels y (0/1) with Adam
    (``loss_fn``: another loss, e.g. the squared error of a regression), minibatches in a fresh
    random order each epoch; returns the final epoch's mean loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss() if loss_fn is None else loss_fn
    n = x.shape[0]
    y = y.to(x.dtype)
    last = float("nan")
    for _ in range(epochs):
        order = streams.permutation(n).to(x.device)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        last = total / n
    if not math.isfinite(last):
        raise FloatingPointError("the training loss is not finite")
    return last


@torch.no_grad()
def logits(net: nn.Module, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """net(x) in batches: (B,) logits."""
    return torch.cat([net(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


__all__ = ["ConvClassifier", "DenseClassifier", "Ensemble", "accepts", "as_images", "build",
           "logits",
           "train_binary"]
