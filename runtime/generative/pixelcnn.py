"""PixelCNN: a masked convolutional network (van den Oord et al., ICML 2016; as used for spin
systems by Wu, Wang, Zhang, PRL 122, 080602 (2019)) as an exactly normalised autoregressive
distribution over an L0 x L1 grid of cells with q values each, in raster (row-major) order:

    q(s) = prod_x q(s_x | s_y for y < x),    site x = i0 * L1 + i1,

with q(. | s_<x) = softmax(logits_x(s_<x)). Configurations are (B, N) int64 value indices, the
interface of ``MADE`` (``n_sites``, ``conditional_logits``, ``log_prob``, ``sample``).

Encoding: for q = 2 the value index k enters as the spin 2k - 1 = +-1 (one channel); for q > 2 as
a one-hot vector (q channels), of a (B, L0, L1, C) image (channels last). Zero padding ("same")
at the borders, so that a border is distinguishable from any value.

Architecture: a masked convolution of type A (kernel ``kernel`` x ``kernel``; the rows above the
centre and, in the centre row, the cells left of the centre) to ``width`` channels with tanh;
then ``depth - 1`` residual blocks h <- h + tanh(conv_B(h)), conv_B a masked convolution of type
B (type A plus the centre); then a 1x1 convolution to q logits per cell (q of them for q = 2 too).
tanh as in MADE: smooth and bounded, so the residual stack keeps its scale at initialisation.

Exactness: a masked convolution here is not a full convolution multiplied by a 0/1 mask but a
gather of the allowed taps only (shifted views of the padded image, concatenated along the
channels) followed by one matrix product with a (out, taps * in) weight. A masked input never
enters any product, so the autoregressive property holds bitwise on every backend, whatever
algorithm a convolution library would choose (Winograd or FFT convolutions mix the inputs of a
tile before the product and would leak rounding-level information from later sites).
The price is memory: the gathered input is (taps) times the activation, like the im2col buffer
of a CPU convolution.

Sampling: N evaluations, one per site, batched over B. The logits of cell (i0, i1) depend only on
the input rows i0 - R .. i0 and columns i1 - R .. i1 + R, R = depth * (kernel // 2) (every masked
layer reaches kernel // 2 cells up, left and right, never down). Each evaluation therefore runs on
that cone only: the input window, and each masked layer's output on the window shrunk by
kernel // 2 cells at the top and the sides (clipped at the grid, where the zero padding is the
real one), down to the one cell whose logits are read. Every value computed is the one of the
whole-grid evaluation (up to the rounding of a matrix product of another shape), at a fraction of
its cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .autoregressive import draw_site, log_prob_of

__all__ = ["MaskedConv2d", "PixelCNN"]


def _taps(kernel: int, mask_type: str) -> list[tuple[int, int]]:
    """Allowed offsets (dy, dx) into the image padded by p = kernel // 2 on the top, left and
    right: all of the rows above the centre (dy < p), and in the centre row (dy = p) the cells
    left of the centre (type A) or up to and including it (type B)."""
    p = kernel // 2
    last = p if mask_type == "B" else p - 1
    return [(dy, dx) for dy in range(p + 1) for dx in range(kernel) if dy < p or dx <= last]


class MaskedConv2d(torch.nn.Module):
    """A raster-order masked convolution on channel-last images (B, H, W, in) -> (B, H, W, out),
    zero padding ("same"). Only the allowed taps are gathered and multiplied, so an output never
    depends on a masked input, not even through rounding."""

    def __init__(self, n_in: int, n_out: int, kernel: int, mask_type: str, *,
                 dtype: torch.dtype, device: torch.device | str,
                 generator: torch.Generator | None) -> None:  # fmt: skip
        super().__init__()
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        self.n_in, self.n_out, self.kernel, self.mask_type = n_in, n_out, kernel, mask_type
        self.pad = kernel // 2
        self.taps = _taps(kernel, mask_type)
        fan_in = len(self.taps) * n_in
        # uniform +-1/sqrt(fan-in), the fan-in counted over the allowed taps only
        bound = 1.0 / fan_in**0.5
        w = (2.0 * torch.rand(n_out, fan_in, dtype=torch.float64, generator=generator,
                              device="cpu") - 1.0) * bound  # fmt: skip
        b = (2.0 * torch.rand(n_out, dtype=torch.float64, generator=generator,
                              device="cpu") - 1.0) * bound  # fmt: skip
        self.weight = torch.nn.Parameter(w.to(dtype=dtype, device=device))
        self.bias = torch.nn.Parameter(b.to(dtype=dtype, device=device))

    def forward(self, x: torch.Tensor, crop: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
        """x (B, H, W, in) -> (B, H - top, W - left - right, out) for crop = (top, left, right),
        each in 0..p (p = kernel // 2): the outputs at the cells of x less ``top`` rows at the
        top and ``left``/``right`` columns at the sides, the cells beyond the edges of x read as
        zero padding. crop = (0, 0, 0): the "same" convolution of the whole of x."""
        top, left, right = crop
        h, w = x.shape[1] - top, x.shape[2] - left - right
        p = self.pad
        # channels: none; width: p - left, p - right; height: p - top above, none below
        xp = F.pad(x, (0, 0, p - left, p - right, p - top, 0))
        cols = torch.cat([xp[:, dy : dy + h, dx : dx + w] for dy, dx in self.taps], dim=-1)
        return F.linear(cols, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.n_in}, {self.n_out}, kernel={self.kernel}, type={self.mask_type}, "
                f"taps={len(self.taps)}")  # fmt: skip


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution on channel-last images, (B, H, W, in) -> (B, H, W, out)."""

    def __init__(self, n_in: int, n_out: int, *, dtype: torch.dtype, device: torch.device | str,
                 generator: torch.Generator | None) -> None:  # fmt: skip
        super().__init__()
        bound = 1.0 / n_in**0.5
        w = (2.0 * torch.rand(n_out, n_in, dtype=torch.float64, generator=generator,
                              device="cpu") - 1.0) * bound  # fmt: skip
        b = (2.0 * torch.rand(n_out, dtype=torch.float64, generator=generator,
                              device="cpu") - 1.0) * bound  # fmt: skip
        self.weight = torch.nn.Parameter(w.to(dtype=dtype, device=device))
        self.bias = torch.nn.Parameter(b.to(dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class PixelCNN(torch.nn.Module):
    """Masked convolutional autoregressive network (PixelCNN, van den Oord et al. 2016; as used for
    spin systems by Wu, Wang & Zhang, PRL 122, 080602 (2019)) over an L0 x L1 grid in raster order:
    q(s) = prod_x q(s_x | sites before x in row-major order), exactly normalised.

    Configurations are (B, N) int64 value indices 0..q-1, N = L0 * L1, site x = i0 * L1 + i1.
    Weights are drawn on the CPU from ``generator`` (construction is deterministic given its
    state) and then moved to ``device``. ``kernel`` is odd and >= 3; ``depth`` >= 1 counts the
    masked layers (the type-A layer and depth - 1 type-B residual blocks)."""

    def __init__(self, cells: tuple[int, int], q: int = 2, width: int = 64, depth: int = 3,
                 kernel: int = 3, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        cells = tuple(int(c) for c in cells)
        if len(cells) != 2 or min(cells) < 1:
            raise ValueError(f"PixelCNN needs cells = (L0, L1) with L0, L1 >= 1, got {cells}")
        if q < 2 or width < 1 or depth < 1:
            raise ValueError(f"PixelCNN needs q >= 2, width >= 1 and depth >= 1 "
                             f"(got q={q}, width={width}, depth={depth})")  # fmt: skip
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"PixelCNN needs an odd kernel >= 3, got {kernel!r}")
        self.cells = cells
        self.n_sites = cells[0] * cells[1]
        self.q, self.width, self.depth, self.kernel = q, width, depth, kernel
        self.dtype = dtype
        kw = {"dtype": dtype, "device": device, "generator": generator}
        self.input = MaskedConv2d(1 if q == 2 else q, width, kernel, "A", **kw)
        self.blocks = torch.nn.ModuleList(
            MaskedConv2d(width, width, kernel, "B", **kw) for _ in range(depth - 1))
        self.output = _Pointwise(width, q, **kw)  # the 1x1 convolution to the logits

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def _encode(self, s: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 -> (B, H, W, C) in the module's dtype."""
        if self.q == 2:
            return (2 * s - 1).to(self.dtype).unsqueeze(-1)
        return F.one_hot(s, self.q).to(self.dtype)

    def _logits_image(self, s: torch.Tensor,
                      crops: list[tuple[int, int, int]] | None = None) -> torch.Tensor:  # fmt: skip
        """(B, H, W) int64 (the whole grid or a window of it) -> (B, H', W', q) logits; crops:
        one (top, left, right) per masked layer (MaskedConv2d.forward), None: no cropping."""
        crops = crops or [(0, 0, 0)] * self.depth
        h = torch.tanh(self.input(self._encode(s), crops[0]))
        for block, (top, left, right) in zip(self.blocks, crops[1:]):
            h = h[:, top:, left : h.shape[2] - right] + torch.tanh(block(h, (top, left, right)))
        return self.output(h)

    def _cone(self, i0: int, i1: int) -> tuple[tuple[int, int, int], list[tuple[int, int, int]]]:
        """The cells that the logits of cell (i0, i1) depend on: the input region (rows r0..i0,
        columns c0..c1 - 1) and the crops that shrink it, layer by layer, to the cell itself.
        The output of masked layer l (1..depth) is needed on rows i0 - (depth - l) p .. i0 and
        columns i1 -+ (depth - l) p (clipped to the grid), p = kernel // 2."""
        p, d, l1 = self.kernel // 2, self.depth, self.cells[1]
        regions = [(max(0, i0 - k * p), max(0, i1 - k * p), min(l1, i1 + k * p + 1))
                   for k in range(d, -1, -1)]  # fmt: skip
        crops = [(b[0] - a[0], b[1] - a[1], a[2] - b[2]) for a, b in zip(regions, regions[1:])]
        return regions[0], crops

    def _as_grid(self, s: torch.Tensor) -> torch.Tensor:
        if s.dim() != 2 or s.shape[1] != self.n_sites:
            raise ValueError(f"s must be (B, {self.n_sites}), got {tuple(s.shape)}")
        return s.to(device=self.device, dtype=torch.int64).reshape(-1, *self.cells)

    def conditional_logits(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B, N, q) logits; those of site x depend only on the sites before x
        in raster order (site 0: a learned constant)."""
        return self._logits_image(self._as_grid(s)).reshape(s.shape[0], self.n_sites, self.q)

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 -> (B,) exact log q(s) in the module's dtype."""
        return log_prob_of(self.conditional_logits(s), s)

    @torch.no_grad()
    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Exact ancestral sampling in raster order: u (B, N) uniforms in [0, 1) -> s (B, N)
        int64. Site x takes the smallest k with u[:, x] < CDF_x(k), CDF_x the cumulative softmax
        of the logits of site x given the sites already drawn; N evaluations (each on the cone
        of cells that the logits of x depend on only), batched over B."""
        if u.dim() != 2 or u.shape[1] != self.n_sites:
            raise ValueError(f"u must be (B, {self.n_sites}), got {tuple(u.shape)}")
        # the inverse CDF in float64 whatever the module dtype, so that a float64 u is not rounded
        u = u.to(device=self.device, dtype=torch.float64)
        l0, l1 = self.cells
        s = torch.zeros((u.shape[0], l0, l1), dtype=torch.int64, device=self.device)
        for i0 in range(l0):
            for i1 in range(l1):
                (r0, c0, c1), crops = self._cone(i0, i1)
                logits = self._logits_image(s[:, r0 : i0 + 1, c0:c1], crops)[:, 0, 0]
                s[:, i0, i1] = draw_site(logits, u[:, i0 * l1 + i1])
        return s.reshape(u.shape[0], self.n_sites)

    def extra_repr(self) -> str:
        return (f"cells={self.cells}, q={self.q}, width={self.width}, depth={self.depth}, "
                f"kernel={self.kernel}")  # fmt: skip
