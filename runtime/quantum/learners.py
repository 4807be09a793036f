"""Neural quantum states: modules mapping configurations s (B, N) of +-1 to log psi(s) (B,).

Every learner returns ``log psi`` as a real tensor (positive amplitude) or a complex tensor
(``Re`` = log |psi|, ``Im`` = phase). Parameters are always real (a complex weight is stored as
real and imaginary parts), so VMC gradients use the real-parameter formulas everywhere.

Attributes the VMC driver reads: ``is_complex`` (output dtype) and, for autoregressive models,
``is_normalized = True`` with a ``sample(n, streams) -> (n, N)`` method for exact sampling
(sample b from stream b of a :class:`RandomStreams`; initial weights come from a host
``torch.Generator``). A learner is built on the host (every parameter and buffer created with
``device=HOST``, whatever torch's default device) and moved to the run's device by ``.to``.

Symmetries. A translation table ``T`` (G, N) acts as ``(T_g s) = s[:, T[g]]`` (see
``lattice.translation_table``); its rows must form a group.
- :class:`SymmetricRBM`: one weight vector per hidden feature applied to every translate of s
  (log psi = sum_g sum_f lncosh(b_f + W_f . T_g s) + a sum_i s_i): exactly invariant.
- :class:`ConvNet`: circular convolutions (equivariant) + a sum over sites (invariant).
- :class:`SymmetrizedAutoregressive`: |psi_sym(s)|^2 = mean_g |psi(T_g s)|^2, a normalised
  mixture, so exact sampling survives (sample g, sample s0 ~ |psi|^2, return T_g^{-1} s0).
- Spin flip: ``spin_flip=True`` on RBM/ConvNet removes every odd term (exact invariance, sector
  +1); :class:`SpinFlipSymmetric` wraps any model as psi(s) + parity psi(-s).
- Sign structure: :class:`MarshallSign` multiplies by (-1)^(N_up on sublattice A), the exact
  sign of the Heisenberg ground state on bipartite lattices (alternatively rotate H with
  ``compiler.derive.pauli.sublattice_rotation``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..device import HOST
from ..random import RandomStreams

LOG2 = math.log(2.0)


def lncosh(x: torch.Tensor) -> torch.Tensor:
    """log cosh x, overflow-free, for real or complex x (cosh is even: use Re x >= 0)."""
    if x.is_complex():
        x = torch.where(x.real < 0, -x, x)
        return x - LOG2 + torch.log1p(torch.exp(-2.0 * x))
    ax = x.abs()
    return ax - LOG2 + torch.log1p(torch.exp(-2.0 * ax))


def logaddexp_complex(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(exp a + exp b) for complex (or real) a, b: stable in the real parts."""
    if not (a.is_complex() or b.is_complex()):
        return torch.logaddexp(a, b)
    m = torch.maximum(a.real, b.real).detach()
    return torch.log(torch.exp(a - m) + torch.exp(b - m)) + m


@dataclass
class RBMForm:
    """A real RBM-like learner in canonical form, for the fast VMC kernels (``rbm_kernels``):

        log psi(s) = s . a + sum_m lncosh(b_m + sum_i s_i W_im)   (+ i pi N_up(A) if marshall)

    ``W`` (N, M), ``b`` (M,), ``a`` (N,): detached effective weights (a translation-symmetric
    RBM is an RBM with tied weights, M = G * alpha). ``jacobian(s, tanh_theta)`` -> (B, P): the
    closed-form O_k = d log psi / d theta_k in the order of ``model.parameters()``, given
    tanh(s W + b) (B, M). ``marshall``: (N,) float sublattice-A mask of a Marshall sign factor
    (its ratio between s and s' with flipped sites F is the constant (-1)^|F n A|), or None.
    """

    W: torch.Tensor
    b: torch.Tensor
    a: torch.Tensor
    jacobian: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    marshall: torch.Tensor | None = None


def rbm_weights(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(W (N, M), b (M,), a (N,)) of an RBM-like learner, real or complex, with which |psi(s)| =
    |exp(s . a) prod_m cosh(b_m + sum_i s_i W_im)| (a sign factor such as Marshall's does not
    change |psi|); None for every other learner."""
    fn = getattr(model, "rbm_weights", None)
    return fn() if callable(fn) else None


def rbm_form(model: nn.Module) -> RBMForm | None:
    """The canonical :class:`RBMForm` of a real RBM / SymmetricRBM (optionally inside
    :class:`MarshallSign`), or None for every other learner (generic autograd paths)."""
    fn = getattr(model, "rbm_form", None)
    return fn() if callable(fn) else None


def _parts(shape, complex: bool, init_std, generator, dtype) -> nn.ParameterDict:
    """A real parameter tensor, or its real and imaginary parts, of ``shape``."""
    parts = ("re", "im") if complex else ("re",)
    return nn.ParameterDict(
        {p: nn.Parameter(_randn(shape, init_std, generator, dtype)) for p in parts}
    )


def _randn(shape, std: float, generator: torch.Generator | None, dtype) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=HOST) * std


class RBM(nn.Module):
    """log psi(s) = a . s + sum_j lncosh(b_j + W_j . s), M = alpha N hidden units.

    ``complex=True``: a, b, W complex (stored as real + imaginary parameters) for non-stoquastic
    models. ``spin_flip=True``: no biases, so log psi(-s) = log psi(s) exactly.
    """

    def __init__(
        self,
        n_sites: int,
        alpha: float = 1.0,
        complex: bool = False,
        spin_flip: bool = False,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        m = max(1, int(round(alpha * n_sites)))
        self.n_sites, self.n_hidden, self.is_complex = n_sites, m, complex
        self.spin_flip = spin_flip
        self.W = _parts((m, n_sites), complex, init_std, generator, dtype)
        if not spin_flip:
            self.b = _parts((m,), complex, init_std, generator, dtype)
            self.a = _parts((n_sites,), complex, init_std, generator, dtype)

    def _get(self, d: nn.ParameterDict) -> torch.Tensor:
        return torch.complex(d["re"], d["im"]) if self.is_complex else d["re"]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        s = s.to(self.W["re"].dtype)
        W = self._get(self.W)
        if self.is_complex:
            s = s.to(W.dtype)
        theta = s @ W.T
        if self.spin_flip:
            return lncosh(theta).sum(-1)
        return s @ self._get(self.a) + lncosh(theta + self._get(self.b)).sum(-1)

    def rbm_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detached (W (N, M), b (M,), a (N,)), complex for a complex RBM."""
        with torch.no_grad():
            w = self._get(self.W).detach()
            m, n = w.shape
            if self.spin_flip:
                return w.T, torch.zeros(m, dtype=w.dtype, device=w.device), torch.zeros(
                    n, dtype=w.dtype, device=w.device)
            return w.T, self._get(self.b).detach(), self._get(self.a).detach()

    def rbm_form(self) -> RBMForm | None:
        if self.is_complex:
            return None
        w_t, b, a = self.rbm_weights()
        flip = self.spin_flip

        def jacobian(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            s = s.to(t.dtype)
            o_w = (t.unsqueeze(2) * s.unsqueeze(1)).reshape(s.shape[0], -1)  # (B, M N)
            return o_w if flip else torch.cat([o_w, t, s], dim=1)  # order: W, b, a

        return RBMForm(w_t, b, a, jacobian)


class SymmetricRBM(nn.Module):
    """Translation-symmetric RBM: log psi = a sum_i s_i + sum_{g,f} lncosh(b_f + W_f . T_g s).

    ``translations`` (G, N); alpha features -> alpha * N_params W of shape (alpha, N). Exactly
    invariant under every T_h of the group (the sum over g is permuted). ``spin_flip=True`` drops
    a and b (invariance under s -> -s as well).
    """

    def __init__(
        self,
        translations: torch.Tensor,
        alpha: int = 1,
        complex: bool = False,
        spin_flip: bool = False,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        g, n = translations.shape
        self.register_buffer("translations", translations.long())
        self.n_sites, self.alpha, self.is_complex, self.spin_flip = n, alpha, complex, spin_flip
        self.W = _parts((alpha, n), complex, init_std, generator, dtype)
        if not spin_flip:
            self.b = _parts((alpha,), complex, init_std, generator, dtype)
            self.a = _parts((), complex, init_std, generator, dtype)

    def _get(self, d: nn.ParameterDict) -> torch.Tensor:
        return torch.complex(d["re"], d["im"]) if self.is_complex else d["re"]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        W = self._get(self.W)
        s = s.to(W.dtype)
        st = s[:, self.translations]  # (B, G, N): all translates
        theta = torch.einsum("bgn,fn->bgf", st, W)
        if self.spin_flip:
            return lncosh(theta).sum((-1, -2))
        return self._get(self.a) * s.sum(-1) + lncosh(theta + self._get(self.b)).sum((-1, -2))

    def rbm_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tied weights as a plain RBM: theta[g, f] = sum_n W[f, n] s[T[g, n]] =
        sum_i s_i W[f, T^-1[g, i]]; (W_eff (N, G alpha), b (G alpha,), a (N,)), complex for a
        complex learner."""
        with torch.no_grad():
            w = self._get(self.W).detach()
            alpha, n = w.shape
            table = self.translations
            g = table.shape[0]
            inv = torch.argsort(table, dim=1)  # (G, N)
            w_eff = w[:, inv].permute(2, 1, 0).reshape(n, g * alpha)  # [i, (g, f)]
            zero = torch.zeros((), dtype=w.dtype, device=w.device)
            b = zero.expand(alpha) if self.spin_flip else self._get(self.b).detach()
            a = zero if self.spin_flip else self._get(self.a).detach()
            return w_eff, b.repeat(g), a.expand(n).clone()

    def rbm_form(self) -> RBMForm | None:
        if self.is_complex:
            return None
        w_eff, b, a = self.rbm_weights()
        table, g, alpha = self.translations, self.translations.shape[0], self.alpha
        flip = self.spin_flip

        def jacobian(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            s = s.to(t.dtype)
            tg = t.reshape(s.shape[0], g, alpha)
            o_w = torch.einsum("bgf,bgn->bfn", tg, s[:, table]).reshape(s.shape[0], -1)
            if flip:
                return o_w
            return torch.cat([o_w, tg.sum(1), s.sum(1, keepdim=True)], dim=1)  # W, b, a

        return RBMForm(w_eff, b, a, jacobian)


class ConvNet(nn.Module):
    """Translation-invariant CNN on a periodic lattice of cells (L,) or (L1, L2); the
    ``basis`` sites of a cell are the input channels, so the network is invariant under the
    lattice's translations, which move whole cells.

    Circular convolutions (equivariant) with lncosh after the first layer and tanh after the
    others, then log psi = sum over sites of the last layer (invariant). ``phase=True`` adds a
    second output channel used as the phase (complex log psi). ``spin_flip=True``: the first
    layer has no bias, so lncosh makes every feature even in s.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        channels: tuple[int, ...] = (8, 8),
        kernel_size: int = 3,
        phase: bool = False,
        spin_flip: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        basis: int = 1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd (centred circular stencil)")
        if len(shape) not in (1, 2):
            raise ValueError("ConvNet supports 1D and 2D lattices")
        self.shape, self.basis = tuple(shape), basis
        self.n_sites = int(math.prod(shape)) * basis
        self.is_complex = phase
        conv = nn.Conv1d if len(shape) == 1 else nn.Conv2d
        sizes = (basis, *channels, 2 if phase else 1)
        layers = []
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layer = conv(
                c_in,
                c_out,
                kernel_size,
                padding=kernel_size // 2,
                padding_mode="circular",
                bias=not (spin_flip and i == 0),
                dtype=dtype,
                device=HOST,
            )
            # Deterministic initialisation from the given generator (small weights).
            with torch.no_grad():
                fan_in = c_in * kernel_size ** len(shape)
                layer.weight.copy_(
                    _randn(layer.weight.shape, 1.0 / math.sqrt(fan_in), generator, dtype)
                )
                if layer.bias is not None:
                    layer.bias.zero_()
            layers.append(layer)
        with torch.no_grad():
            layers[-1].weight.mul_(0.1)
        self.layers = nn.ModuleList(layers)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = s.to(self.layers[0].weight.dtype).reshape(s.shape[0], *self.shape, self.basis)
        x = x.movedim(-1, 1)  # (B, basis, *cells)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == 0:
                x = lncosh(x)
            elif i < len(self.layers) - 1:
                x = torch.tanh(x)
        out = x.flatten(2).sum(-1)  # (B, 1 or 2)
        if self.is_complex:
            return torch.complex(out[:, 0], out[:, 1])
        return out[:, 0]


class SpinFlipSymmetric(nn.Module):
    """psi_sym(s) = psi(s) + parity * psi(-s) (parity +1 or -1): exact spin-flip eigenstate."""

    def __init__(self, model: nn.Module, parity: int = 1) -> None:
        super().__init__()
        self.model, self.parity = model, parity
        self.is_complex = model.is_complex or parity == -1
        self.n_sites = model.n_sites

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        a, b = self.model(s), self.model(-s)
        if self.parity == -1:
            b = (
                b.to(torch.complex128 if b.dtype == torch.float64 else torch.complex64)
                + 1j * math.pi
            )
        return logaddexp_complex(a, b)


class MarshallSign(nn.Module):
    """psi(s) -> (-1)^(N_up on sublattice A) psi(s): the Marshall sign of bipartite AFMs."""

    def __init__(self, model: nn.Module, sublattice: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("sublattice", sublattice.to(torch.float64))
        self.is_complex = True
        self.n_sites = model.n_sites
        for attr in ("is_normalized",):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def rbm_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        return rbm_weights(self.model)

    def rbm_form(self) -> RBMForm | None:
        inner = rbm_form(self.model)
        if inner is None:
            return None
        inner.marshall = self.sublattice.to(inner.W.dtype)
        return inner

    def phase(self, s: torch.Tensor) -> torch.Tensor:
        n_up = ((1.0 + s.to(torch.float64)) * 0.5) @ self.sublattice
        return math.pi * torch.remainder(n_up, 2.0)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        lp = self.model(s)
        ph = self.phase(s).to(lp.real.dtype)
        return torch.complex(lp.real, (lp.imag if lp.is_complex() else torch.zeros_like(lp)) + ph)

    def sample(self, n: int, streams: RandomStreams) -> torch.Tensor:
        return self.model.sample(n, streams)


def inverse_cdf(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Categorical draws (B,) from probabilities p (B, K) at uniforms u (B,): the first k with
    cdf_k > u * cdf_K. A state of probability 0 is never drawn (the clamp to the last possible
    state guards the rounding of u * cdf_K up to cdf_K)."""
    cdf = torch.cumsum(p, dim=1)
    k = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    last = p.shape[1] - 1 - torch.argmax(torch.flip(p > 0, [1]).to(torch.uint8), dim=1)
    return torch.minimum(k, last)


class GRUCell(nn.Module):
    """Plain GRU cell (torch.func/vmap friendly): h' = (1 - z) n + z h."""

    def __init__(self, n_in: int, n_hidden: int, generator: torch.Generator | None, dtype) -> None:
        super().__init__()
        std = 1.0 / math.sqrt(n_hidden)
        self.w_in = nn.Parameter(_randn((3 * n_hidden, n_in), std, generator, dtype))
        self.w_h = nn.Parameter(_randn((3 * n_hidden, n_hidden), std, generator, dtype))
        self.b = nn.Parameter(torch.zeros(3 * n_hidden, dtype=dtype, device=HOST))
        self.n_hidden = n_hidden

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gi = x @ self.w_in.T + self.b
        gh = h @ self.w_h.T
        hn = self.n_hidden
        r = torch.sigmoid(gi[..., :hn] + gh[..., :hn])
        z = torch.sigmoid(gi[..., hn : 2 * hn] + gh[..., hn : 2 * hn])
        n = torch.tanh(gi[..., 2 * hn :] + r * gh[..., 2 * hn :])
        return (1.0 - z) * n + z * h


class AutoregressiveGRU(nn.Module):
    """Normalised autoregressive wavefunction over unit cells: |psi(s)|^2 = prod_t p(c_t | c_<t).

    Sites are visited in ``order`` (default 0..N-1) in cells of ``cell_size`` consecutive sites;
    each step's conditional is a softmax over the 2^cell_size cell states computed from a GRU
    state fed with the previous cell's one-hot. log psi = 0.5 log p(s) + i phase(s).

    ``magnetization``: restrict to sum_i s_i = magnetization by masking cell states that cannot be
    completed (exact normalisation within the sector, as for U(1)-symmetric RNNs).
    ``phase``: "none" (positive, stoquastic models), "head" (phase = sum_t pi softsign(linear(h_t))
    at the chosen cell state; complex output). Combine with :class:`MarshallSign` for bipartite
    Heisenberg models.
    """

    is_normalized = True

    def __init__(
        self,
        n_sites: int,
        hidden: int = 32,
        cell_size: int = 1,
        order: torch.Tensor | None = None,
        magnetization: int | None = None,
        phase: str = "none",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if n_sites % cell_size:
            raise ValueError("cell_size must divide the number of sites")
        if phase not in ("none", "head"):
            raise ValueError("phase must be 'none' or 'head'")
        if magnetization is not None and (
            (n_sites + magnetization) % 2 or abs(magnetization) > n_sites
        ):
            raise ValueError(f"no states with magnetization {magnetization} on {n_sites} sites")
        self.n_sites, self.cell_size, self.n_cells = n_sites, cell_size, n_sites // cell_size
        self.n_states = 2**cell_size
        self.is_complex = phase == "head"
        self.phase_mode = phase
        self.magnetization = magnetization
        order = torch.arange(n_sites, device=HOST) if order is None else order.long()
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))
        # states[k] = +-1 spins of cell state k (bit j <-> site j of the cell, up = 0).
        codes = torch.arange(self.n_states, device=HOST)
        bits = (codes.unsqueeze(1) >> torch.arange(cell_size - 1, -1, -1, device=HOST)) & 1
        self.register_buffer("cell_spins", (1 - 2 * bits).to(dtype))
        self.register_buffer("cell_ups", (1 - bits).sum(1).to(dtype))
        self.register_buffer("bit_weights", 2 ** torch.arange(cell_size - 1, -1, -1, device=HOST))
        self.gru = GRUCell(self.n_states, hidden, generator, dtype)
        self.out = nn.Parameter(
            _randn((self.n_states, hidden), 0.1 / math.sqrt(hidden), generator, dtype)
        )
        self.out_b = nn.Parameter(torch.zeros(self.n_states, dtype=dtype, device=HOST))
        if self.is_complex:
            self.ph = nn.Parameter(
                _randn((self.n_states, hidden), 0.1 / math.sqrt(hidden), generator, dtype)
            )
            self.ph_b = nn.Parameter(torch.zeros(self.n_states, dtype=dtype, device=HOST))
        self.dtype_ = dtype

    def _mask(self, ups: torch.Tensor, t: int) -> torch.Tensor | None:
        """(B, n_states) bool: cell states that keep the target magnetisation reachable."""
        if self.magnetization is None:
            return None
        n_up = (self.n_sites + self.magnetization) // 2
        n_down = self.n_sites - n_up
        downs = t * self.cell_size - ups
        u = self.cell_ups.unsqueeze(0)
        return (ups.unsqueeze(1) + u <= n_up) & (
            downs.unsqueeze(1) + (self.cell_size - u) <= n_down
        )

    def _step(
        self, h: torch.Tensor, ups: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log conditionals (B, n_states) and the allowed-state mask (None without a sector).

        Rows already outside the sector (possible only when evaluating, never when sampling)
        keep unmasked logits so that nothing is NaN; the caller gives them log p = -inf.
        """
        logits = h @ self.out.T + self.out_b
        mask = self._mask(ups, t)
        if mask is not None:
            keep = mask | ~mask.any(dim=1, keepdim=True)
            logits = torch.where(keep, logits, torch.full_like(logits, -torch.inf))
        return torch.log_softmax(logits, dim=-1), mask

    def _cells(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, n_cells) cell-state indices in autoregressive order."""
        so = s[:, self.order].reshape(s.shape[0], self.n_cells, self.cell_size)
        bits = ((1.0 - so) * 0.5).round().long()
        return (bits * self.bit_weights).sum(-1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        b = s.shape[0]
        cells = self._cells(s.to(self.dtype_))
        h = torch.zeros(b, self.gru.n_hidden, dtype=self.dtype_, device=s.device)
        x = torch.zeros(b, self.n_states, dtype=self.dtype_, device=s.device)
        ups = torch.zeros(b, dtype=self.dtype_, device=s.device)
        logp = torch.zeros(b, dtype=self.dtype_, device=s.device)
        phase = torch.zeros(b, dtype=self.dtype_, device=s.device)
        eye = torch.eye(self.n_states, dtype=self.dtype_, device=s.device)
        for t in range(self.n_cells):  # autoregressive: inherently sequential over cells
            h = self.gru(x, h)
            logq, mask = self._step(h, ups, t)
            c = cells[:, t]
            chosen = torch.gather(logq, 1, c.unsqueeze(1)).squeeze(1)
            if mask is not None:
                ok = torch.gather(mask, 1, c.unsqueeze(1)).squeeze(1)
                chosen = torch.where(ok, chosen, torch.full_like(chosen, -torch.inf))
            logp = logp + chosen
            if self.is_complex:
                ph = math.pi * nn.functional.softsign(h @ self.ph.T + self.ph_b)
                phase = phase + torch.gather(ph, 1, c.unsqueeze(1)).squeeze(1)
            x = eye[c]
            ups = ups + self.cell_ups[c]
        if self.is_complex:
            return torch.complex(0.5 * logp, phase)
        return 0.5 * logp

    @torch.no_grad()
    def sample(self, n: int, streams: RandomStreams) -> torch.Tensor:
        """Exact samples s ~ |psi|^2, (n, N), batched over samples, sequential over cells: cell
        t of sample b is the inverse CDF of its conditional at u[b, t] (u (n, n_cells) uniform,
        sample b from stream b)."""
        dev = self.out.device
        u = streams.uniform((n, self.n_cells), torch.float64).to(dev)
        h = torch.zeros(n, self.gru.n_hidden, dtype=self.dtype_, device=dev)
        x = torch.zeros(n, self.n_states, dtype=self.dtype_, device=dev)
        ups = torch.zeros(n, dtype=self.dtype_, device=dev)
        eye = torch.eye(self.n_states, dtype=self.dtype_, device=dev)
        cells = []
        for t in range(self.n_cells):
            h = self.gru(x, h)
            logq, _ = self._step(h, ups, t)
            c = inverse_cdf(logq.exp().to(torch.float64), u[:, t])
            cells.append(c)
            x = eye[c]
            ups = ups + self.cell_ups[c]
        spins = self.cell_spins[torch.stack(cells, 1)].reshape(n, self.n_sites)  # AR order
        return spins[:, self.inverse_order]


class SymmetrizedAutoregressive(nn.Module):
    """|psi_sym(s)|^2 = mean_{g in G'} |psi(g s)|^2 over translations (x spin flips if asked).

    A uniform mixture of normalised distributions is normalised, so exact sampling is kept:
    draw g uniformly, s0 ~ |psi|^2, return g^{-1} s0. The phase is the base model's phase at s
    itself (``MarshallSign`` outside this wrapper keeps the sign rule exact; a learned phase head is
    then only approximately invariant -- documented limitation).
    """

    is_normalized = True

    def __init__(
        self, model: nn.Module, translations: torch.Tensor, spin_flip: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("translations", translations.long())
        self.register_buffer("inverse", torch.argsort(translations.long(), dim=1))
        self.spin_flip = spin_flip
        self.is_complex = model.is_complex
        self.n_sites = model.n_sites

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        b, n = s.shape
        g = self.translations.shape[0]
        st = s[:, self.translations]  # (B, G, N)
        if self.spin_flip:
            st = torch.cat([st, -st], dim=1)
        lp = self.model(st.reshape(-1, n)).reshape(b, -1)
        log_amp = 0.5 * (torch.logsumexp(2.0 * lp.real, dim=1) - math.log(lp.shape[1]))
        del g
        if self.is_complex:
            return torch.complex(log_amp, self.model(s).imag)
        return log_amp

    @torch.no_grad()
    def sample(self, n: int, streams: RandomStreams) -> torch.Tensor:
        s0 = self.model.sample(n, streams)
        dev = s0.device
        g = streams.integers(0, self.translations.shape[0], (n,)).to(dev)
        s = torch.gather(s0, 1, self.inverse[g])
        if self.spin_flip:
            flip = streams.integers(0, 2, (n, 1)).to(dev)
            s = s * (1 - 2 * flip).to(s.dtype)
        return s
