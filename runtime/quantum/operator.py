"""Batched Pauli Hamiltonians: connected configurations, local energies, exact diagonalisation.

For a canonical Pauli string ``P = c prod_{k in X} X_k prod_{k in Y} Y_k prod_{k in Z} Z_k`` and a
Z-basis configuration ``s`` (values +-1), ``P`` has exactly one non-zero element in the row of
``s``: the column ``s'`` = ``s`` with the X/Y sites flipped, and

    <s|P|s'> = c (-i)^{#Y} prod_{k in Y or Z} s_k.

Terms are grouped by flip mask (K distinct masks, group 0 the diagonal); the parities
``prod s_k`` of all terms come from one matmul of the down-spin indicator with the term's site
masks, and a second matmul with the term -> group one-hot sums them. Nothing loops over samples,
sites or terms.

Basis index for ED: bit_k = (1 - s_k)/2 (up = 0), site 0 the most significant bit, so
``index = sum_k bit_k 2^(N-1-k)`` matches ``PauliSum.to_dense`` (Kronecker order).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from physml_lang.compiler.derive.pauli import PauliSum

LogPsiFn = Callable[[torch.Tensor], torch.Tensor]


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


class LocalOperator:
    """Precomputed tensors of a PauliSum for batched matrix elements.

    Attributes (K groups, T terms, N sites):
    ``flip_masks`` (K, N) bool (row 0 all False), ``flip_sign`` (K, N) = 1 - 2 mask,
    ``mask_codes`` (K,) int64 basis-index XOR masks, ``parity_sites`` (T, N) float (Y or Z sites),
    ``term_coef`` (T,) real or complex = c (-i)^{#Y}, ``term_group`` (T, K) one-hot.
    """

    def __init__(
        self,
        hamiltonian: PauliSum,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        h = hamiltonian.simplify()
        self.hamiltonian = h
        self.n_sites = n = h.n_sites
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.real_dtype = _real_dtype(dtype)
        self.is_real = h.is_real()
        self.dtype = self.real_dtype if self.is_real else _complex_dtype(dtype)

        masks: dict[tuple[int, ...], int] = {(): 0}
        groups, parity, coefs = [], [], []
        for t in h.terms:
            flips = tuple(s for op, s in t.ops if op in ("X", "Y"))
            groups.append(masks.setdefault(flips, len(masks)))
            row = np.zeros(n)
            row[[s for op, s in t.ops if op in ("Y", "Z")]] = 1.0
            parity.append(row)
            n_y = sum(1 for op, _ in t.ops if op == "Y")
            coefs.append(complex(t.coefficient) * (-1j) ** n_y)
        k = len(masks)
        flip = np.zeros((k, n), dtype=bool)
        for sites, g in masks.items():
            flip[g, list(sites)] = True
        weights = 2 ** np.arange(n - 1, -1, -1, dtype=np.int64)
        dev = self.device
        self.n_groups = k
        self.flip_masks = torch.as_tensor(flip, device=dev)
        self.flip_sign = (1.0 - 2.0 * self.flip_masks.to(self.real_dtype)).to(dev)
        self.mask_codes = torch.as_tensor(flip.astype(np.int64) @ weights, device=dev)
        t_count = len(h.terms)
        self.parity_sites = torch.as_tensor(
            np.array(parity).reshape(t_count, n), dtype=self.real_dtype, device=dev
        )
        c = np.array(coefs, dtype=complex).reshape(t_count)
        coef = c.real if self.is_real else c
        self.term_coef = torch.as_tensor(coef, device=dev).to(self.dtype)
        onehot = np.zeros((t_count, k))
        onehot[np.arange(t_count), np.array(groups, dtype=np.int64)] = 1.0
        self.term_group = torch.as_tensor(onehot, dtype=self.dtype, device=dev)

    # --- matrix elements -------------------------------------------------------------------
    def matrix_elements(self, s: torch.Tensor) -> torch.Tensor:
        """<s|H|s'_k> for all K flip groups: s (B, N) +-1 -> (B, K) (group 0 diagonal)."""
        down = (1.0 - s.to(self.real_dtype)) * 0.5  # 1 where s = -1
        n_down = down @ self.parity_sites.T  # (B, T): number of -1 among each term's Y/Z sites
        sign = 1.0 - 2.0 * torch.remainder(n_down, 2.0)
        return (sign.to(self.dtype) * self.term_coef) @ self.term_group

    def connected(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Connected configurations s' (B, K, N) and elements <s|H|s'> (B, K)."""
        sp = s.unsqueeze(1) * self.flip_sign.to(s.dtype)
        return sp, self.matrix_elements(s)

    def local_energy(
        self,
        log_psi: LogPsiFn,
        s: torch.Tensor,
        log_psi_s: torch.Tensor | None = None,
        chunk_size: int = 65536,
    ) -> torch.Tensor:
        """E_loc(s) = sum_s' H_ss' psi(s')/psi(s) = sum_k H_k exp(log psi(s'_k) - log psi(s)).

        s (B, N) -> (B,), real if both H and log psi are real, complex otherwise. log psi may
        be complex (phase in the imaginary part). Elements with H_ss' = 0 are masked before the
        exponential so that an unnormalised or vanishing psi(s') cannot produce inf * 0.
        """
        with torch.no_grad():
            b = s.shape[0]
            if log_psi_s is None:
                log_psi_s = log_psi(s)
            mels = self.matrix_elements(s)  # (B, K)
            out = (mels[:, 0].clone() if self.n_groups
                   else torch.zeros(b, dtype=self.dtype, device=s.device))
            if self.n_groups > 1:
                off = mels[:, 1:]
                # Evaluate psi only where <s|H|s'> != 0 (e.g. XX + YY on parallel spins vanishes):
                # a boolean gather, so no inf * 0 either.
                bi, ki = torch.nonzero(off != 0, as_tuple=True)
                sp = s[bi] * self.flip_sign[1:][ki].to(s.dtype)  # (M, N)
                if len(sp):
                    lp = torch.cat(
                        [log_psi(sp[i : i + chunk_size]) for i in range(0, len(sp), chunk_size)]
                    )
                else:
                    lp = log_psi_s[:0]
                terms = off[bi, ki] * torch.exp(lp - log_psi_s[bi])
                out = out.to(terms.dtype).index_add(0, bi, terms)
            return out

    # --- exact diagonalisation -------------------------------------------------------------
    @staticmethod
    def codes_to_configs(codes: torch.Tensor, n_sites: int, dtype=torch.float64) -> torch.Tensor:
        """Basis indices (M,) -> configurations (M, N) of +-1 (site 0 = most significant bit)."""
        shifts = torch.arange(n_sites - 1, -1, -1, device=codes.device)
        bits = (codes.unsqueeze(1) >> shifts) & 1
        return (1 - 2 * bits).to(dtype)

    @staticmethod
    def configs_to_codes(s: torch.Tensor) -> torch.Tensor:
        n = s.shape[-1]
        weights = 2 ** torch.arange(n - 1, -1, -1, device=s.device)
        return (((1 - s) / 2).round().long() * weights).sum(-1)

    def sector_codes(self, magnetization: int | None = None) -> np.ndarray:
        """Sorted basis indices of all 2^N states, or of those with sum_i s_i = magnetization."""
        n = self.n_sites
        if magnetization is None:
            return np.arange(2**n, dtype=np.int64)
        if (n + magnetization) % 2 or abs(magnetization) > n:
            raise ValueError(f"no states with magnetization {magnetization} on {n} sites")
        return codes_with_ones(n, (n - magnetization) // 2)

    def to_sparse(self, magnetization: int | None = None, chunk: int = 1 << 16):
        """H as a scipy CSR matrix H[idx(s), idx(s')] = <s|H|s'> over 2^N states (N <= ~22).

        With ``magnetization`` the matrix is restricted to the sector sum_i s_i = magnetization
        (rows/cols in the order of :meth:`sector_codes`); this requires H to conserve it.
        """
        if magnetization is not None and not self.hamiltonian.conserves_magnetization():
            raise ValueError("H does not commute with total Z: no magnetisation sectors")
        codes = self.sector_codes(magnetization)
        dim = len(codes)
        codes_t = torch.as_tensor(codes, device="cpu")  # host side: the matrix is scipy's
        rows, cols, vals = [], [], []
        for start in range(0, dim, chunk):
            c = codes_t[start : start + chunk]
            s = self.codes_to_configs(c.to(self.device), self.n_sites, self.real_dtype)
            mels = self.matrix_elements(s).cpu().numpy()  # (M, K)
            col_codes = c.unsqueeze(1).numpy() ^ self.mask_codes.cpu().numpy()[None, :]
            keep = mels != 0
            r = np.broadcast_to(np.arange(start, start + len(c))[:, None], mels.shape)[keep]
            cc = col_codes[keep]
            if magnetization is not None:
                cc = np.searchsorted(codes, cc)
            rows.append(r.astype(np.int64))
            cols.append(cc.astype(np.int64))
            vals.append(mels[keep])
        mat = scipy.sparse.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim)
        )
        return mat.tocsr()

    def exact_ground_state(
        self, k: int = 1, magnetization: int | None = None, tol: float = 1e-12
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lowest k eigenvalues (ascending) and eigenvectors (dim, k) by Lanczos (eigsh).

        Eigenvectors are in the (sector) basis of :meth:`sector_codes`.
        """
        mat = self.to_sparse(magnetization)
        if not np.isfinite(mat.data).all():  # couplings near 1e308 overflow in the sums
            raise FloatingPointError("the Hamiltonian matrix has entries that are not finite")
        if mat.shape[0] <= 64:
            w, v = np.linalg.eigh(mat.toarray())
            return w[:k], v[:, :k]
        v0 = np.random.default_rng(0).standard_normal(mat.shape[0])  # reproducible start
        w, v = scipy.sparse.linalg.eigsh(mat, k=k, which="SA", tol=tol, v0=v0.astype(mat.dtype))
        order = np.argsort(w)
        return w[order], v[:, order]


def codes_with_ones(n: int, k: int) -> np.ndarray:
    """The integers below 2^n with exactly k bits set, ascending, (C(n, k),) int64.

    Built bit by bit, vectorised over the codes: with j bits, those with i ones are the codes
    of j - 1 bits with i ones, then 2^(j-1) plus those with i - 1 ones (already in order)."""
    by_ones = {0: np.zeros(1, dtype=np.int64)}  # j = 0 bits
    for j in range(1, n + 1):
        top = np.int64(1) << np.int64(j - 1)
        grown = {}
        for i in range(max(0, k - (n - j)), min(j, k) + 1):  # counts that can still reach k
            parts = [by_ones[i]] if i in by_ones else []
            if i - 1 in by_ones:
                parts.append(top + by_ones[i - 1])
            grown[i] = np.concatenate(parts)
        by_ones = grown
    return by_ones[k]


def exact_expectation(op: LocalOperator, state: np.ndarray, magnetization: int | None = None):
    """<psi|O|psi> / <psi|psi> for a vector in the basis of ``op.sector_codes(magnetization)``."""
    mat = op.to_sparse(magnetization)
    return complex(np.vdot(state, mat @ state) / np.vdot(state, state))
