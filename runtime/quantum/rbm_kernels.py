"""Fast VMC kernels for real RBM-like learners (:class:`learners.RBMForm`).

log psi(s) = s . a + sum_m lncosh(theta_m), theta = s W + b, W (N, M). Flipping the sites F of s
changes theta by -2 sum_{i in F} s_i W_i, so

    log psi(s') - log psi(s) = sum_m [lncosh(theta_m + dtheta_m) - lncosh(theta_m)] - 2 sum_F s_i a_i

costs O(M) per proposal with theta cached per chain (instead of O(N M) for a fresh forward pass),
and the local energy needs one (M_nz, N) x (N, M) product over the non-zero connected elements.
A Marshall sign factor (-1)^{N_up(A)} multiplies every element of flip group k by the constant
(-1)^{|F_k n A|}.

The Markov chain is sequential in its steps and batched over chains. Its per-step cost at
realistic sizes (16-200 chains, M <= 100) is call overhead, not arithmetic: on the CPU the whole
chain runs as one compiled loop (``rbm_chains_cpu``, numba) or, without numba, as a loop over
steps on numpy views of the same buffers (about 1 us per call against 3-4 us for eager torch on
small tensors); on other devices the identical loop runs with torch. All random numbers come
from the caller's :class:`RandomStreams` (chain c from stream c), drawn before the loop in chunks
of a fixed number of steps per chain, so every backend, and every number of chains, makes the
same chain c.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import torch

from ..random import RandomStreams
from . import rbm_chains_cpu
from .learners import RBMForm

LOG2 = math.log(2.0)
SAFE_THETA = 300.0  # below this, log(cosh(x)) cannot overflow (cosh overflows near 710)


def _lncosh_sum(xp: ModuleType, x, safe: bool):
    """sum_m log cosh(x_m) over the last axis; the direct formula when |x| is known to be small."""
    if safe:
        return xp.log(xp.cosh(x)).sum(-1)
    ax = xp.abs(x)
    return (ax + xp.log1p(xp.exp(-2.0 * ax)) - LOG2).sum(-1)


def _theta_bound(form: RBMForm) -> float:
    return float(form.b.abs().max() + form.W.abs().sum(0).max()) if form.W.numel() else 0.0


def _flip_steps(xp: ModuleType, safe: bool, rows, s, theta, lc, w2g, a2g, sites, hlu):
    """Single-flip Metropolis steps t = 0..K-1 of all chains (mutates s; returns the new state).

    s (C, N); theta (C, M); lc (C,) = sum lncosh theta; sites (K, C); w2g (K, C, M) = 2 W[sites];
    a2g (K, C) = 2 a[sites]; hlu (K, C) = log(u) / 2; rows = arange(C). Accept when
    log(u)/2 < d log psi.
    """
    accepted = []
    for t in range(sites.shape[0]):  # Markov steps are sequential; all chains at once
        i = sites[t]
        si = s[rows, i]
        new = theta - si[:, None] * w2g[t]
        lcn = _lncosh_sum(xp, new, safe)
        acc = hlu[t] < lcn - lc - si * a2g[t]
        theta = xp.where(acc[:, None], new, theta)
        lc = xp.where(acc, lcn, lc)
        s[rows, i] = xp.where(acc, -si, si)
        accepted.append(acc)
    return s, theta, lc, xp.stack(accepted).sum()


def _flip_steps_numpy(safe: bool, rows, s, theta, lc, w2g, a2g, sites, hlu):
    """:func:`_flip_steps` for numpy, with preallocated buffers and flat take/put (each call
    on these small arrays costs about a microsecond, so fewer and cheaper calls matter)."""
    if not safe:
        return _flip_steps(np, safe, rows, s, theta, lc, w2g, a2g, sites, hlu)
    n_steps, c = sites.shape
    flat = sites + (rows * s.shape[1])[None, :]  # (K, C) indices into s.ravel()
    sf = s.reshape(-1)  # a view: s is C-contiguous
    new, tmp = np.empty_like(theta), np.empty_like(theta)
    accepted = np.empty((n_steps, c), dtype=bool)
    reduce, cosh, log, copyto = np.add.reduce, np.cosh, np.log, np.copyto
    for t in range(n_steps):  # Markov steps are sequential; all chains at once
        f = flat[t]
        si = sf.take(f)
        np.multiply(w2g[t], si[:, None], out=new)
        np.subtract(theta, new, out=new)
        lcn = reduce(log(cosh(new, out=tmp), out=tmp), axis=1)
        acc = np.less(hlu[t], lcn - lc - si * a2g[t], out=accepted[t])
        copyto(theta, new, where=acc[:, None])
        copyto(lc, lcn, where=acc)
        sf[f] = np.where(acc, -si, si)
    return s, theta, lc, accepted.sum()


def _exchange_steps(xp: ModuleType, safe: bool, rows, ups, downs, theta, lc, w2, a2, ku, kd, hlu):
    """Exchange steps: swap the up site ups[c, ku[t, c]] with the down site downs[c, kd[t, c]].

    ups (C, n_up), downs (C, n_down) site lists (mutated); the site lists stay a partition.
    """
    accepted = []
    for t in range(ku.shape[0]):
        i, j = ups[rows, ku[t]], downs[rows, kd[t]]
        new = theta - w2[i] + w2[j]  # s_i = +1 -> -1, s_j = -1 -> +1
        lcn = _lncosh_sum(xp, new, safe)
        d = lcn - lc if a2 is None else lcn - lc - a2[i] + a2[j]
        acc = hlu[t] < d
        theta = xp.where(acc[:, None], new, theta)
        lc = xp.where(acc, lcn, lc)
        ups[rows, ku[t]] = xp.where(acc, j, i)
        downs[rows, kd[t]] = xp.where(acc, i, j)
        accepted.append(acc)
    return ups, downs, theta, lc, xp.stack(accepted).sum()


def _flip_torch(safe: bool, *args):
    return _flip_steps(torch, safe, *args)


def _exchange_torch(safe: bool, *args):
    return _exchange_steps(torch, safe, *args)


_COMPILED: dict[str, object] = {}
_COMPILE_FAILED: list[str] = []


def _compiled(name: str):
    """torch.compile'd block kernels (one graph per block of K steps; shapes are static)."""
    if name not in _COMPILED:
        fn = _flip_torch if name == "flip" else _exchange_torch
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


class RBMChains:
    """Metropolis over |psi|^2 for an RBMForm: persistent chains s (C, N) with cached theta.

    ``move``: "flip" (one uniformly random site) or "exchange" (a uniformly random up site and a
    uniformly random down site swap; symmetric, conserves sum_i s_i; every chain must have the
    same magnetisation). :meth:`run` makes ``n_samples`` records of ``steps_per_sample`` steps
    after ``burn_in`` steps and returns them as (T, C, N) with the mean acceptance.

    Backends, all on the same random streams (drawn in chunks of whole blocks of at most
    ``CHUNK_STEPS`` steps per chain, so they make the same chain): "numba" (CPU,
    ``rbm_chains_cpu``: all steps of a chunk in one compiled call; the default where numba is
    installed and the weights are in range), "numpy" (CPU loop over steps), "torch" (other
    devices), and "compile" (``compile=True``: each block of ``steps_per_sample`` steps as one
    torch.compile'd graph; the first call compiles for tens of seconds; on a compilation failure
    it falls back to the eager loop with a warning).
    Burn-in is rounded up to whole blocks.
    """

    CHUNK_STEPS = 1 << 10  # random numbers are drawn for this many steps per chain at a time

    def __init__(self, form: RBMForm, s: torch.Tensor, move: str, compile: bool = False) -> None:
        self.form, self.move, self.device = form, move, s.device
        self.dtype = dtype = form.W.dtype
        w2, a2 = (2.0 * form.W).contiguous(), (2.0 * form.a).contiguous()
        cpu = s.device.type == "cpu"
        numba = cpu and rbm_chains_cpu.AVAILABLE and dtype == torch.float64
        if compile and not _COMPILE_FAILED:
            self.backend = "compile"
        elif numba and rbm_chains_cpu.product_form_safe(w2.numpy()):
            self.backend = "numba"
        else:
            self.backend = "numpy" if cpu else "torch"
        self.xp: ModuleType = np if self.backend in ("numpy", "numba") else torch
        self.safe = _theta_bound(form) < SAFE_THETA
        s = s.to(dtype)
        conv = (lambda t: t.cpu().numpy()) if self.xp is np else (lambda t: t)
        self._site_lists(s, move, conv)
        self.w2 = conv(w2)
        a_uniform = bool((form.a == form.a.reshape(-1)[:1]).all()) if s.shape[1] else True
        self.a2 = None if a_uniform else conv(a2)  # a uniform a cancels in exchange moves
        self.a2_flip = conv(a2)
        self.theta = conv(s @ form.W + form.b)
        self.lc = _lncosh_sum(self.xp, self.theta, self.safe)
        if self.backend == "numba":  # p, q: buffers the kernel fills from theta on every call
            self.e_minus, self.e_plus = rbm_chains_cpu.exp_tables(self.w2)
            self.p, self.q = np.empty_like(self.theta), np.empty_like(self.theta)

    def _site_lists(self, s: torch.Tensor, move: str, conv) -> None:
        """Chains s (C, N), their up / down site lists (exchange moves) and row indices."""
        self.n_up = int(((s[0] > 0).sum()).item())
        if move == "exchange" and not bool(((s > 0).sum(1) == self.n_up).all()):
            raise ValueError("exchange moves need chains of equal magnetisation")
        order = torch.argsort(-s, dim=1, stable=True)  # stable: deterministic site lists
        self.s = conv(s.clone())
        self.ups = conv(order[:, : self.n_up].contiguous())
        self.downs = conv(order[:, self.n_up :].contiguous())
        self.rows = conv(torch.arange(s.shape[0], device=s.device))
        self.rows_col = self.rows[:, None]

    def _randoms(self, steps: int, streams: RandomStreams) -> tuple:
        """Proposal indices and 0.5 log u for ``steps`` steps of all chains, as (K, C) arrays
        (the kernels' layout) of draws (C, K) with chain c on stream c."""
        c, n = self.s.shape
        dev = self.device

        def steps_major(x: torch.Tensor) -> torch.Tensor:
            return x.to(dev).T.contiguous()

        half_log_u = steps_major(0.5 * torch.log(streams.uniform((c, steps), self.dtype)))
        if self.move == "flip":
            idx = (steps_major(streams.integers(0, n, (c, steps))),)
        else:
            n_up, n_down = self.n_up, n - self.n_up
            idx = (steps_major(streams.integers(0, max(n_up, 1), (c, steps))),
                   steps_major(streams.integers(0, max(n_down, 1), (c, steps))))  # fmt: skip
        if self.xp is np:
            return tuple(t.cpu().numpy() for t in idx), half_log_u.cpu().numpy()
        return idx, half_log_u

    def _kernel(self, name: str):
        if self.backend == "compile":
            return _compiled(name)
        if self.xp is np:
            return _flip_steps_numpy if name == "flip" else _exchange_steps
        return _flip_torch if name == "flip" else _exchange_torch

    def _has_moves(self) -> bool:
        return self.move == "flip" or 0 < self.n_up < self.s.shape[1]

    def _steps(self, idx: tuple, hlu) -> float:
        """Metropolis steps of all chains for the proposals ``idx`` and 0.5 log u ``hlu`` (K, C);
        returns the number of accepted moves."""
        if self.move == "flip":
            (sites,) = idx
            args = (self.rows, self.s, self.theta, self.lc, self.w2[sites], self.a2_flip[sites],
                    sites, hlu)  # fmt: skip
            name = "flip"
        elif self._has_moves():
            args = (self.rows, self.ups, self.downs, self.theta, self.lc, self.w2, self.a2, *idx,
                    hlu)  # fmt: skip
            name = "exchange"
        else:
            return 0.0  # a fully polarised sector has no exchange moves
        lead = (np, self.safe) if self.xp is np and name == "exchange" else (self.safe,)
        try:
            out = self._kernel(name)(*lead, *args)
        except Exception as exc:  # noqa: BLE001 - any compiler/toolchain failure: fall back
            if self.backend != "compile":
                raise
            import warnings

            warnings.warn(f"torch.compile of the Metropolis kernel failed ({exc!s:.200}); "
                          "running the eager loop", RuntimeWarning, stacklevel=2)  # fmt: skip
            _COMPILE_FAILED.append(str(exc))
            self.backend = "torch"
            return self._store(name, (_flip_torch if name == "flip" else _exchange_torch)(
                self.safe, *args))  # fmt: skip
        return self._store(name, out)

    def _store(self, name: str, out) -> float:
        if name == "flip":
            self.s, self.theta, self.lc, n_acc = out
        else:
            self.ups, self.downs, self.theta, self.lc, n_acc = out
        return float(n_acc)

    def _configs(self):
        if self.move == "flip":
            return self.s.copy() if self.xp is np else self.s.clone()
        s = -self.xp.ones_like(self.s)
        s[self.rows_col, self.ups] = 1.0
        return s

    def _chunk_numba(self, idx: tuple, hlu, burn_steps: int, stride: int, records: int):
        """All steps of a chunk in one compiled call: ((records, C, N) configurations, accepted)."""
        c, n = self.s.shape
        out = np.empty((records, c, n))
        if self.move == "flip":
            acc = rbm_chains_cpu.flip_chains(
                self.s, self.theta, self.p, self.q, self.w2, self.e_minus, self.e_plus,
                self.a2_flip, idx[0], hlu, burn_steps, stride, out,
            )  # fmt: skip
        elif self._has_moves():
            a2 = np.zeros(n) if self.a2 is None else self.a2
            acc = rbm_chains_cpu.exchange_chains(
                self.ups, self.downs, self.theta, self.p, self.q, self.e_minus, self.e_plus,
                self.w2, a2, *idx, hlu, burn_steps, stride, out,
            )  # fmt: skip
        else:
            acc = 0
            out[:] = self._configs()[None]
        return out, float(acc)

    def run(
        self, burn_in: int, n_samples: int, steps_per_sample: int, streams: RandomStreams
    ) -> tuple[torch.Tensor, float]:
        """Burn in, then record ``n_samples`` configurations per chain: ((T, C, N), acceptance);
        ``accepted`` keeps the number of accepted moves of the records."""
        c = self.s.shape[0]
        stride = steps_per_sample
        burn_blocks = -(-burn_in // stride)  # whole blocks: the same random stream everywhere
        total = burn_blocks + n_samples
        # chunks of a fixed number of steps per chain (not of proposals: chain c's numbers must
        # not depend on how many chains run beside it); they bound the random numbers' memory
        per_chunk = max(1, self.CHUNK_STEPS // stride)
        out, acc = [], 0.0
        for start in range(0, total, per_chunk):
            blocks = min(per_chunk, total - start)
            idx, hlu = self._randoms(blocks * stride, streams)
            burned = min(blocks, max(0, burn_blocks - start))
            if self.backend == "numba":
                recorded, a = self._chunk_numba(idx, hlu, burned * stride, stride, blocks - burned)
                out.append(recorded)
                acc += a
                continue
            for b in range(blocks):  # one record per block of steps
                window = slice(b * stride, (b + 1) * stride)
                a = self._steps(tuple(i[window] for i in idx), hlu[window])
                if b >= burned:
                    acc += a
                    out.append(self._configs()[None])
        self.accepted = acc  # accepted moves of the records (chains run elsewhere add theirs)
        if not out:
            return torch.empty((0, *self.s.shape), dtype=self.dtype, device=self.device), 0.0
        samples = np.concatenate(out) if self.xp is np else torch.cat(out)
        samples = torch.as_tensor(samples, device=self.device)
        if self.move == "exchange" and n_samples:
            self.s = samples[-1].numpy() if self.xp is np else samples[-1]
        return samples, acc / max(1, n_samples * steps_per_sample * c)

    def chains(self) -> torch.Tensor:
        """The current configurations (C, N) as a torch tensor."""
        return torch.as_tensor(self._configs(), device=self.device)


class PhasedRBMChains(RBMChains):
    """:class:`RBMChains` for RBM-like learners with complex weights (amplitude and phase), on
    the CPU with numba only (``rbm_chains_cpu.flip_chains_phased``): theta = s W + b is complex,
    and Metropolis needs |psi'/psi| = |prod_m cosh theta'_m / cosh theta_m| |e^{(s' - s) . a}|.
    Same random stream and records as :class:`RBMChains`."""

    def __init__(self, weights: tuple, s: torch.Tensor, move: str) -> None:
        w, b, a = (x.to(torch.complex128) for x in weights)
        self.move, self.device, self.dtype = move, s.device, torch.float64
        self.backend, self.xp = "numba", np
        s = s.to(torch.float64)
        self._site_lists(s, move, lambda t: t.cpu().numpy())
        theta = (s.to(w.dtype) @ w + b).numpy()
        self.theta_re, self.theta_im = theta.real.copy(), theta.imag.copy()
        self.log_abs = rbm_chains_cpu.log_abs_cosh(theta)
        self.w2_re, self.w2_im = (2.0 * w.real).numpy().copy(), (2.0 * w.imag).numpy().copy()
        self.a2_re = (2.0 * a.real).numpy().copy()

    def _chunk_numba(self, idx: tuple, hlu, burn_steps: int, stride: int, records: int):
        c, n = self.s.shape
        out = np.empty((records, c, n))
        state = (self.theta_re, self.theta_im, self.log_abs, self.w2_re, self.w2_im, self.a2_re)
        if self.move == "flip":
            acc = rbm_chains_cpu.flip_chains_phased(self.s, *state, idx[0], hlu, burn_steps,
                                                    stride, out)  # fmt: skip
        elif self._has_moves():
            acc = rbm_chains_cpu.exchange_chains_phased(self.ups, self.downs, *state, *idx, hlu,
                                                        burn_steps, stride, out)  # fmt: skip
        else:
            acc = 0
            out[:] = self._configs()[None]
        return out, float(acc)


@torch.no_grad()
def local_energy_rbm(op, form: RBMForm, s: torch.Tensor, chunk_size: int = 2048) -> torch.Tensor:
    """E_loc(s) (B,) for H = ``op`` (a LocalOperator) and the RBM ``form``; real when H is real.

    E_loc(s) = <s|H|s> + sum_k <s|H|s_k> psi(s_k) / psi(s) over the flip groups k, with the
    ratios only where <s|H|s_k> != 0 (:func:`_product_ratios`, or :func:`_lncosh_ratios` when
    the weights are too large for the product form). Rows are processed in chunks of
    ``chunk_size`` to bound the temporaries.
    """
    dtype = form.W.dtype
    s = s.to(dtype)
    if s.shape[0] > chunk_size:
        return torch.cat(
            [local_energy_rbm(op, form, s[i : i + chunk_size], chunk_size)
             for i in range(0, s.shape[0], chunk_size)]
        )  # fmt: skip
    mels = op.matrix_elements(s)  # (B, K)
    out = mels[:, 0].clone()
    if op.n_groups <= 1:
        return out
    off = mels[:, 1:]
    masks = op.flip_masks[1:].to(dtype)  # (K-1, N)
    if form.marshall is not None:
        # (-1)^{|F_k n A|}: the Marshall sign ratio psi(s')/psi(s) of group k (constant in s)
        n_a = masks @ form.marshall.to(dtype)
        off = off * (1.0 - 2.0 * torch.remainder(n_a, 2.0)).to(off.dtype)
    nz = off != 0
    return out + (off * _flip_ratios(form, s, masks, nz).to(off.dtype)).sum(1)


def _flip_ratios(
    form: RBMForm, s: torch.Tensor, masks: torch.Tensor, nz: torch.Tensor
) -> torch.Tensor:
    """psi(s_k) / psi(s) (B, K) where nz: the compiled product form on the CPU
    (``rbm_chains_cpu.flip_ratios``) when its bound holds (sum_m |d theta_km| <= sum over the
    group's sites of sum_m |2 W_im| < MAX_EXPONENT), else :func:`_lncosh_ratios`."""
    w2 = 2.0 * form.W
    if (
        s.device.type == "cpu"
        and rbm_chains_cpu.AVAILABLE
        and s.dtype == torch.float64
        and float((masks @ w2.abs()).sum(1).max()) < rbm_chains_cpu.MAX_EXPONENT
    ):
        width = max(1, int(masks.sum(1).max()))
        group_sites = torch.where(masks > 0, torch.arange(masks.shape[1], device=masks.device),
                                  masks.shape[1])
        group_sites = group_sites.sort(1).values[:, :width]
        group_sites = torch.where(group_sites == masks.shape[1], -1, group_sites)
        theta = (s @ form.W + form.b).numpy()
        p, q = rbm_chains_cpu.occupation_sigmoids(theta)
        e_minus, e_plus = rbm_chains_cpu.exp_tables(w2.numpy())
        ratio = np.empty(nz.shape)
        rbm_chains_cpu.flip_ratios(s.numpy(), nz.numpy(), group_sites.numpy(), p, q, e_minus,
                                   e_plus, (2.0 * form.a).numpy(), ratio)  # fmt: skip
        return torch.from_numpy(ratio)
    return _lncosh_ratios(form, s, masks, nz)


def _lncosh_ratios(
    form: RBMForm, s: torch.Tensor, masks: torch.Tensor, nz: torch.Tensor
) -> torch.Tensor:
    """psi(s_k) / psi(s) (B, K), 0 where nz is False, for any weights: d log psi_k =
    sum lncosh(theta + dtheta_k) - sum lncosh(theta) - 2 (s * mask_k) . a, dtheta_k =
    -2 (s * mask_k) W; masked before exp so that no inf meets a zero element."""
    safe = _theta_bound(form) < SAFE_THETA
    theta = s @ form.W + form.b  # (B, M)
    flipped = s.unsqueeze(1) * masks  # (B, K, N): s_i on the flipped sites, else 0
    new = flipped @ (-2.0 * form.W)  # (B, K, M): dtheta, then theta + dtheta in place
    new += theta.unsqueeze(1)
    if safe:  # in place: these (B, K, M) passes are memory-bound
        lcn = new.cosh_().log_().sum(-1)
    else:
        lcn = _lncosh_sum(torch, new, safe)
    dlog = lcn - _lncosh_sum(torch, theta, safe).unsqueeze(1) - flipped @ (2.0 * form.a)
    return torch.where(nz, torch.exp(torch.where(nz, dlog, 0.0)), 0.0)


@torch.no_grad()
def rbm_jacobian(form: RBMForm, s: torch.Tensor) -> torch.Tensor:
    """Closed-form O (B, P) = d log psi / d theta_k (the Marshall sign does not depend on theta)."""
    s = s.to(form.W.dtype)
    return form.jacobian(s, torch.tanh(s @ form.W + form.b))
