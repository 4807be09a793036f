"""Metropolis chains of RBM states as compiled CPU loops (numba), one call per VMC iteration.

A Markov chain is sequential in its steps, and at VMC sizes (16-200 chains, M <= 100 hidden
units) a step is a few hundred flops: per-call overhead dominates any array library. These
kernels run all steps of all chains in one compiled loop (chains outer, steps inner) and write
the recorded configurations directly.

Ratios without transcendental functions per proposal. With p_m = sigmoid(2 theta_m) and
q_m = sigmoid(-2 theta_m) (cached per chain, p + q = 1, both computed directly so that neither
loses precision),

    cosh(theta_m + d_m) / cosh(theta_m) = p_m e^{d_m} + q_m e^{-d_m},

a sum of two positive terms (no cancellation). A single flip of site i has d = -2 s_i W_i, an
exchange of an up site i with a down site j has d = 2 (W_j - W_i); e^{+-2 W} is tabulated once per
call. psi'/psi is the product over m times e^{-2 s_i a_i} (flip) or e^{2 (a_j - a_i)} (exchange).
``product_form_safe`` checks that neither the table nor the product can overflow; otherwise the
caller uses the lncosh loop of ``rbm_kernels``.

numba is optional at import: ``AVAILABLE`` is False without it (or with PHYSML_NO_NUMBA=1), and
``rbm_kernels`` then runs its numpy loop (identical chains, slower).
"""

from __future__ import annotations

import os

import numpy as np

try:  # pragma: no cover - exercised by the environment, not by a test switch
    if os.environ.get("PHYSML_NO_NUMBA"):
        raise ImportError("disabled by PHYSML_NO_NUMBA")
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

AVAILABLE = njit is not None
MAX_EXPONENT = 600.0  # exp(600) ~ 1e260: products of factors bounded by this stay finite


def product_form_safe(w2: np.ndarray) -> bool:
    """True when e^{+-2W} and every product over hidden units stay finite: sum_m |2 W_im| (and for
    exchanges the sum over two rows) below MAX_EXPONENT."""
    if w2.size == 0:
        return True
    return bool(2.0 * np.abs(w2).sum(1).max() < MAX_EXPONENT)


def exp_tables(w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e^{-2W}, e^{2W}) as (N, M) arrays, from w2 = 2W."""
    return np.exp(-w2), np.exp(w2)


def log_abs_cosh(theta: np.ndarray) -> np.ndarray:
    """log |cosh theta| of a complex array, stable for large |Re theta| (-inf at the zeros)."""
    au, v = np.abs(theta.real), theta.imag
    e = np.exp(-2.0 * au)
    with np.errstate(divide="ignore"):
        return au - np.log(2.0) + 0.5 * np.log1p(e * e + 2.0 * np.cos(2.0 * v) * e)


def occupation_sigmoids(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p = sigmoid(2 theta), q = sigmoid(-2 theta) (C, M), each from its own stable formula."""
    return 1.0 / (1.0 + np.exp(-2.0 * theta)), 1.0 / (1.0 + np.exp(2.0 * theta))


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _sigmoids(theta_c, p_c, q_c):  # pragma: no cover - compiled
        for m in range(theta_c.shape[0]):  # one exp of a non-positive argument per unit
            z = np.exp(-2.0 * abs(theta_c[m]))
            r = 1.0 / (1.0 + z)
            if theta_c[m] >= 0.0:
                p_c[m], q_c[m] = r, z * r
            else:
                p_c[m], q_c[m] = z * r, r

    @njit(cache=True, nogil=True)
    def _spins_from_up_sites(ups_c, spins):  # pragma: no cover - compiled
        spins[:] = -1.0
        for u in range(ups_c.shape[0]):
            spins[ups_c[u]] = 1.0

    @njit(cache=True, nogil=True)
    def _accept(theta_c, p_c, q_c, d, e_d, factor):  # pragma: no cover - compiled
        """theta += d; p, q follow without exp: p' = p e^d / f, q' = q e^{-d} / f, f = p e^d +
        q e^{-d} (the factor of the accepted ratio)."""
        for m in range(theta_c.shape[0]):
            theta_c[m] += d[m]
            inv = 1.0 / factor[m]
            p_c[m] *= e_d[m] * inv
            q_c[m] *= inv / e_d[m]

    @njit(cache=True, nogil=True)
    def flip_chains(s, theta, p, q, w2, e_minus, e_plus, a2, sites, hlu, burn, stride, out):
        """Single-flip Metropolis of every chain; returns the number of accepted moves after
        burn-in. Mutates s (C, N), theta / p / q (C, M); records s every ``stride`` steps after
        ``burn`` steps into out (T, C, N). sites / hlu (K, C): proposals and log(u) / 2.
        p and q are recomputed from theta once per call (the updates in between are
        multiplicative, so rounding cannot accumulate beyond one call)."""
        n_steps, n_chains = sites.shape
        m_hidden = theta.shape[1]
        d, factor = np.empty(m_hidden), np.empty(m_hidden)
        accepted = 0
        for c in range(n_chains):  # chains are independent
            _sigmoids(theta[c], p[c], q[c])
            record = 0
            for k in range(n_steps):  # steps are sequential
                i = sites[k, c]
                si = s[c, i]
                e_d, e_md = (e_minus[i], e_plus[i]) if si > 0 else (e_plus[i], e_minus[i])
                ratio = 1.0
                for m in range(m_hidden):  # d = -2 s_i W_i
                    factor[m] = p[c, m] * e_d[m] + q[c, m] * e_md[m]
                    ratio *= factor[m]
                if hlu[k, c] < np.log(ratio) - si * a2[i]:
                    for m in range(m_hidden):
                        d[m] = -si * w2[i, m]
                    _accept(theta[c], p[c], q[c], d, e_d, factor)
                    s[c, i] = -si
                    if k >= burn:
                        accepted += 1
                if k >= burn and (k - burn + 1) % stride == 0:
                    out[record, c, :] = s[c, :]
                    record += 1
        return accepted

    @njit(cache=True, nogil=True)
    def exchange_chains(ups, downs, theta, p, q, e_minus, e_plus, w2, a2, ku, kd, hlu, burn,
                        stride, out):  # fmt: skip
        """Exchange Metropolis: swap up site ups[c, ku] with down site downs[c, kd] (d = 2 (W_j -
        W_i)); the site lists stay a partition. Records +-1 configurations into out (T, C, N)."""
        n_steps, n_chains = ku.shape
        m_hidden = theta.shape[1]
        d, e_d, factor = np.empty(m_hidden), np.empty(m_hidden), np.empty(m_hidden)
        accepted = 0
        for c in range(n_chains):
            _sigmoids(theta[c], p[c], q[c])
            record = 0
            for k in range(n_steps):
                i = ups[c, ku[k, c]]
                j = downs[c, kd[k, c]]
                ratio = 1.0
                for m in range(m_hidden):
                    e_d[m] = e_minus[i, m] * e_plus[j, m]
                    factor[m] = p[c, m] * e_d[m] + q[c, m] / e_d[m]
                    ratio *= factor[m]
                if hlu[k, c] < np.log(ratio) - a2[i] + a2[j]:
                    for m in range(m_hidden):
                        d[m] = w2[j, m] - w2[i, m]
                    _accept(theta[c], p[c], q[c], d, e_d, factor)
                    ups[c, ku[k, c]] = j
                    downs[c, kd[k, c]] = i
                    if k >= burn:
                        accepted += 1
                if k >= burn and (k - burn + 1) % stride == 0:
                    _spins_from_up_sites(ups[c], out[record, c])
                    record += 1
        return accepted

    @njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def flip_ratios(s, nonzero, group_sites, p, q, e_minus, e_plus, a2, ratio):
        """psi(s_k) / psi(s) into ratio (B, K) where nonzero (B, K): flip group k flips the sites
        group_sites[k] (padded with -1). e^{+-d} of a group is a product of table rows, so no
        transcendental function is evaluated per element (reassociation lets the products over
        hidden units vectorise)."""
        n_rows, n_groups = nonzero.shape
        m_hidden = p.shape[1]
        e_d, e_md = np.empty(m_hidden), np.empty(m_hidden)  # e^{d_m}, e^{-d_m}
        for b in range(n_rows):
            for k in range(n_groups):
                if not nonzero[b, k]:
                    ratio[b, k] = 0.0
                    continue
                e_d[:] = 1.0
                e_md[:] = 1.0
                log_a = 0.0
                for f in range(group_sites.shape[1]):  # d = -2 sum_F s_i W_i
                    i = group_sites[k, f]
                    if i < 0:
                        break
                    up, down = (e_minus[i], e_plus[i]) if s[b, i] > 0 else (e_plus[i], e_minus[i])
                    for m in range(m_hidden):
                        e_d[m] *= up[m]
                        e_md[m] *= down[m]
                    log_a -= s[b, i] * a2[i]
                r = 1.0
                for m in range(m_hidden):
                    r *= p[b, m] * e_d[m] + q[b, m] * e_md[m]
                ratio[b, k] = r * np.exp(log_a)

    @njit(cache=True, nogil=True)
    def _log_abs_cosh(u, v):  # pragma: no cover - compiled
        """log |cosh(u + i v)| = log((cosh 2u + cos 2v) / 2), without overflow for large |u|."""
        au = abs(u)
        e = np.exp(-2.0 * au)
        return au - np.log(2.0) + 0.5 * np.log1p(e * e + 2.0 * np.cos(2.0 * v) * e)

    @njit(cache=True, nogil=True)
    def flip_chains_phased(s, theta_re, theta_im, log_abs, w2_re, w2_im, a2_re, sites, hlu, burn,
                           stride, out):  # fmt: skip
        """:func:`flip_chains` for complex RBM weights: acceptance needs |psi'/psi| only,
        log |psi'/psi| = sum_m (log |cosh theta'_m| - log |cosh theta_m|) - s_i Re(2 a_i), with
        theta = theta_re + i theta_im and log_abs (C, M) = log |cosh theta| cached."""
        n_steps, n_chains = sites.shape
        m_hidden = theta_re.shape[1]
        new_re, new_im, new_log = np.empty(m_hidden), np.empty(m_hidden), np.empty(m_hidden)
        accepted = 0
        for c in range(n_chains):
            record = 0
            for k in range(n_steps):
                i = sites[k, c]
                si = s[c, i]
                d = -si * a2_re[i]
                for m in range(m_hidden):
                    new_re[m] = theta_re[c, m] - si * w2_re[i, m]
                    new_im[m] = theta_im[c, m] - si * w2_im[i, m]
                    new_log[m] = _log_abs_cosh(new_re[m], new_im[m])
                    d += new_log[m] - log_abs[c, m]
                if hlu[k, c] < d:
                    theta_re[c, :] = new_re
                    theta_im[c, :] = new_im
                    log_abs[c, :] = new_log
                    s[c, i] = -si
                    if k >= burn:
                        accepted += 1
                if k >= burn and (k - burn + 1) % stride == 0:
                    out[record, c, :] = s[c, :]
                    record += 1
        return accepted

    @njit(cache=True, nogil=True)
    def exchange_chains_phased(ups, downs, theta_re, theta_im, log_abs, w2_re, w2_im, a2_re, ku,
                               kd, hlu, burn, stride, out):  # fmt: skip
        """:func:`exchange_chains` for complex RBM weights (see :func:`flip_chains_phased`)."""
        n_steps, n_chains = ku.shape
        m_hidden = theta_re.shape[1]
        new_re, new_im, new_log = np.empty(m_hidden), np.empty(m_hidden), np.empty(m_hidden)
        accepted = 0
        for c in range(n_chains):
            record = 0
            for k in range(n_steps):
                i = ups[c, ku[k, c]]
                j = downs[c, kd[k, c]]
                d = a2_re[j] - a2_re[i]
                for m in range(m_hidden):
                    new_re[m] = theta_re[c, m] + w2_re[j, m] - w2_re[i, m]
                    new_im[m] = theta_im[c, m] + w2_im[j, m] - w2_im[i, m]
                    new_log[m] = _log_abs_cosh(new_re[m], new_im[m])
                    d += new_log[m] - log_abs[c, m]
                if hlu[k, c] < d:
                    theta_re[c, :] = new_re
                    theta_im[c, :] = new_im
                    log_abs[c, :] = new_log
                    ups[c, ku[k, c]] = j
                    downs[c, kd[k, c]] = i
                    if k >= burn:
                        accepted += 1
                if k >= burn and (k - burn + 1) % stride == 0:
                    _spins_from_up_sites(ups[c], out[record, c])
                    record += 1
        return accepted
