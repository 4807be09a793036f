"""Minibatch training of the classifiers and the measures of their predictions.

Integer invariants (winding, Chern numbers) are learned by regression: the net outputs a real
number, its prediction is the nearest integer (so a net may predict values it never saw).
Impurity positions are learned by classification over pixels (cross-entropy of the logit map).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


class TrainingDiverged(Exception):
    """The loss became non-finite (``epoch`` where it did)."""

    def __init__(self, epoch: int):
        super().__init__(f"the loss is not finite at epoch {epoch}")
        self.epoch = epoch


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Callable, *, epochs: int,
          batch: int, lr: float, gen: torch.Generator,
          augment: Callable | None = None) -> list[float]:  # fmt: skip
    """Adam with a cosine learning rate over ``epochs`` passes of shuffled minibatches of
    (x [N, ...], y [N]), each transformed by ``augment(x, y, gen) -> (x, y)`` if given (a
    symmetry of the data: a fresh draw per minibatch); returns the mean loss of each epoch."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = x.shape[0]
    steps = epochs * math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
    history = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen, device=gen.device)
        total = torch.zeros((), device=x.device)
        for start in range(0, n, batch):
            idx = order[start:start + batch].to(x.device)
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb, yb = augment(xb, yb, gen)
            value = loss(net(xb), yb)
            opt.zero_grad()
            value.backward()
            opt.step()
            sched.step()
            total = total + value.detach() * idx.numel()
        mean = float(total) / n
        if not math.isfinite(mean):
            raise TrainingDiverged(epoch)
        history.append(mean)
    return history


def regression_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a real output [B, 1] against integer labels [B]."""
    return ((out[:, 0] - y.to(out.dtype)) ** 2).mean()


def pixel_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a logit map [B, P] against the target pixel [B]."""
    return nn.functional.cross_entropy(out, y)


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The net's outputs on x, in batches (no gradients)."""
    net.train(False)  # inference mode (no dropout or batch statistics)
    out = torch.cat([net(x[i:i + batch]) for i in range(0, x.shape[0], batch)])
    net.train()
    return out


def reliability(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Per equal-width confidence bin: the count, the accuracy and the mean confidence
    (confidence [N] in [0, 1], correct [N] bool -> three [bins] tensors; empty bins 0)."""
    edges = torch.linspace(0, 1, bins + 1, device=confidence.device, dtype=confidence.dtype)
    which = torch.bucketize(confidence, edges[1:-1])
    count = torch.zeros(bins, device=confidence.device, dtype=confidence.dtype)
    count = count.index_add(0, which, torch.ones_like(confidence))
    hits = torch.zeros_like(count).index_add(0, which, correct.to(confidence.dtype))
    conf = torch.zeros_like(count).index_add(0, which, confidence)
    safe = count.clamp(min=1)
    return count, hits / safe, conf / safe


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor,
                               bins: int = 10) -> float:  # fmt: skip
    """ECE = sum_b |B_b|/N |accuracy(B_b) - mean confidence(B_b)| over equal-width confidence
    bins: confidence [N] in [0, 1], correct [N] bool."""
    count, acc, conf = reliability(confidence, correct, bins)
    return float((count * (acc - conf).abs()).sum() / confidence.numel())


__all__ = ["TrainingDiverged", "expected_calibration_error", "pixel_loss", "predict",
           "regression_loss", "reliability", "train"]
