"""The two classifiers of the table family: a translation-equivariant convolutional net and a
fully connected net.

``ConvNet``: convolutions (circular padding: the k-grid of a band Hamiltonian is a circle or a
torus; images wrap too) with SiLU, a 1 x 1 convolution to the outputs, then either a sum over
positions (``pool = "sum"``: an extensive quantity, a winding or Chern number as a sum of local
contributions, which holds on any grid size and for any value) or the map itself (``pool =
"map"``: one logit per position, e.g. where an impurity is; works on images of any size).
``DenseNet``: the input flattened through hidden layers to fixed-size outputs (one size only).
"""

from __future__ import annotations

import torch
from torch import nn

# SiLU: smooth like tanh but unbounded, so a sum of local terms does not saturate where the
# local steps are larger than in training (tanh nets underestimate higher windings; ReLU nets
# were lopsided between +w and -w in our trials)
ACT = nn.SiLU


class ConvNet(nn.Module):
    """Conv net on [B, C, *grid] (1D or 2D) -> [B, outputs] (sum) or [B, outputs * prod(grid)]
    (map; outputs = 1).

    The first convolution has ``kernel`` (odd: centred on its site; even: the window from the
    site onwards, e.g. 2 = one plaquette k .. k + 1), later ones too unless ``pointwise``
    (then 1 x 1: the net is a local function of the first window, summed). With ``order`` > 1
    the first layer's features are products of ``order`` linear maps of the window (a
    polynomial of that degree, e.g. 3: the lowest order of an oriented quantity such as the
    solid angle of a plaquette's four unit vectors), in place of an activation."""

    def __init__(self, dim: int, in_channels: int, channels: list[int], kernel: int,
                 outputs: int, pool: str, *, pointwise: bool = False, order: int = 1,
                 device=None, dtype=torch.float32):  # fmt: skip
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        layers: list[nn.Module] = []
        width, size = in_channels, kernel
        for i, c in enumerate(channels):
            many = order if i == 0 else 1
            pad = size // 2 if size % 2 else 0  # even windows are padded before the conv
            layers.append(conv(width, c * many, size, padding=pad, padding_mode="circular",
                               device=device, dtype=dtype))  # fmt: skip
            layers.append(Product(order) if many > 1 else ACT())
            width, size = c, 1 if pointwise else kernel
        layers.append(conv(width, outputs, 1, device=device, dtype=dtype))
        self.body = nn.Sequential(*layers)
        self.pool, self.dim = pool, dim
        self.ahead = [kernel - 1 if kernel % 2 == 0 else 0]  # circular padding after the site
        self.ahead += [0 if pointwise or kernel % 2 else kernel - 1] * (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        convs = iter(self.ahead)
        for layer in self.body:
            if isinstance(layer, nn.Conv1d | nn.Conv2d):
                pad = next(convs, 0)
                if pad:
                    y = nn.functional.pad(y, (0, pad) * self.dim, mode="circular")
            y = layer(y)
        if self.pool == "sum":
            return y.flatten(2).sum(-1)
        return y.flatten(1)


class Product(nn.Module):
    """Channels [B, order * C, ...] -> their products in ``order`` groups [B, C, ...]."""

    def __init__(self, order: int):
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for part in x.chunk(self.order, 1):
            out = part if out is None else out * part
        return out


class DenseNet(nn.Module):
    """Fully connected net: [B, *shape] -> [B, outputs]."""

    def __init__(self, in_features: int, hidden: list[int], outputs: int, *, device=None,
                 dtype=torch.float32):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h, device=device, dtype=dtype), ACT()]
            width = h
        layers.append(nn.Linear(width, outputs, device=device, dtype=dtype))
        self.body = nn.Sequential(*layers)
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


__all__ = ["ConvNet", "DenseNet", "Product"]
