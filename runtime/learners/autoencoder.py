"""Deep autoencoders from pretrained deep belief networks (Hinton & Salakhutdinov, Science 313,
504 (2006)).

The DBN's layers are unrolled: the encoder maps the visible features x(v) up through
h_l = sigmoid(h_{l-1} W_l + b_l) to the code (linear in the top layer when its RBM has Gaussian
hidden units), and the decoder maps the code back down through sigmoid(h_l W_l^T + a_l) to the
visible field of the data's units. Encoder and decoder start from the same (tied) weights and
are then fine-tuned separately by backpropagation (Adam) of the cross-entropy of the data
under the decoder's output distribution. Reconstruction errors are squared errors per example
on the [0, 1] representation of the units (binary values, (s + 1) / 2, one-hot), the measure
PCA's error is given in (:func:`~physml_lang.runtime.learners.dbn.pca_reconstruction`).
Shapes: values (B, n), features and reconstructions (B, n q), codes (B, k).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..random import RandomStreams
from .dbn import DBN, Units
from .train import Divergence


class DeepAutoencoder(nn.Module):
    """Encoder and decoder of a DBN's layers, initialised from them (tied weights, untied
    afterwards)."""

    def __init__(self, dbn: DBN):
        super().__init__()
        self.units: Units = dbn.units
        layers = list(dbn.layers)
        self.linear_code = layers[-1].gaussian
        self.enc_W = nn.ParameterList([nn.Parameter(L.W.detach().clone()) for L in layers])
        self.enc_b = nn.ParameterList([nn.Parameter(L.b.detach().clone()) for L in layers])
        self.dec_W = nn.ParameterList([nn.Parameter(L.W.detach().T.clone()) for L in layers])
        self.dec_a = nn.ParameterList([nn.Parameter(L.a.detach().clone()) for L in layers])

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """The code of values v (B, n) -> (B, k)."""
        h = self.units.features(v)
        last = len(self.enc_W) - 1
        for l, (W, b) in enumerate(zip(self.enc_W, self.enc_b)):
            z = h @ W + b
            h = z if (l == last and self.linear_code) else torch.sigmoid(z)
        return h

    def decode_field(self, code: torch.Tensor) -> torch.Tensor:
        """The visible field (logits) of the data's units given a code, (B, n q)."""
        h = code
        for l in reversed(range(len(self.dec_W))):
            z = h @ self.dec_W[l] + self.dec_a[l]
            h = torch.sigmoid(z) if l > 0 else z
        return h

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """E[unit01(v)] under the decoder's output distribution, (B, n q)."""
        return self.units.mean01(self.decode_field(self.encode(v)))

    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy -log p(v | decoder(encoder(v))) per example."""
        return self.units.cross_entropy(self.decode_field(self.encode(v)), v).mean()

    @torch.no_grad()
    def squared_error(self, v: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error per example (B,)."""
        return (self.reconstruct(v) - self.units.unit01(v)).pow(2).sum(-1)


class FineTuner:
    """Backpropagation of the reconstruction cross-entropy (Adam, minibatches of a random
    order drawn from ``streams``): ``run_epoch`` is one pass over ``data`` (N, n)."""

    def __init__(self, net: DeepAutoencoder, data: torch.Tensor, lr: float, batch: int,
                 streams: RandomStreams):  # fmt: skip
        self.net, self.data = net, data
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        self.batch, self.streams = max(1, min(batch, len(data))), streams
        self.epoch = 0

    def run_epoch(self) -> dict:
        n = len(self.data)
        perm = self.streams.permutation(n).to(self.data.device)
        losses = []
        for k in range(max(1, n // self.batch)):
            loss = self.net.loss(self.data[perm[k * self.batch : (k + 1) * self.batch]])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise Divergence("non-finite fine-tuning loss")
            losses.append(value)
        self.epoch += 1
        return {"epoch": self.epoch, "loss": sum(losses) / len(losses)}


__all__ = ["DeepAutoencoder", "FineTuner"]
