"""What a quantum run measures: the built-in observables (their exact and vmc implementations,
bound to the catalogue) and the result row of a point, from an exact ground state or from the
final samples of a vmc run.

Every row value is ``{"mean", "stderr"}`` (exact values have stderr 0). Z-basis observables:
magnetisation m = <sum_i Z_i> / N, |m|, the staggered magnetisation <|sum_i (+-1)_i Z_i|> / N
and the structure factor S(q) = <|sum_i e^{i q.r_i} Z_i|^2> / N at q = 0 and q = (pi, ..., pi).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue.quantum import VMC_ENERGY_COLUMNS
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel

from ..statistics import Estimate
from .exact import Spectrum, exact_expectation, exact_spectrum
from .operator import LocalOperator
from .vmc import VMCResult, diagonal_observables, energy_statistics, expectation

DIAGONAL = ("magnetization", "abs_magnetization", "staggered_magnetization", "structure_factor")


@dataclass(frozen=True)
class QuantumObservable:
    """The implementation of a built-in observable of quantum runs: the function that computes
    it in an exact run and in a vmc run (None: that run does not report it, as the catalogue's
    static ``OBSERVABLE_RUNS`` that ``physml check`` reads says)."""

    exact: Callable[..., Any] | None
    vmc: Callable[..., Any] | None


def structure_qs(qm: QuantumModel) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, d) (each site at its cell's coordinates, in lattice units) and the
    wavevectors q = 0 and q = (pi, ..., pi) (2, d)."""
    pos = qm.lattice.site_coords().astype(np.float64)
    d = pos.shape[1]
    return pos, np.stack([np.zeros(d), np.full(d, math.pi)])


def exact_diagonal(qm: QuantumModel, codes: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Z-basis observables of an exact state psi (dim,) on the basis ``codes`` (dim,), from its
    |psi|^2 weights."""
    w = np.abs(psi) ** 2
    w = w / w.sum()
    s = LocalOperator.codes_to_configs(torch.as_tensor(codes, device="cpu"), qm.n_sites).numpy()
    m = s.mean(1)
    out = {"magnetization": float(w @ m), "abs_magnetization": float(w @ np.abs(m))}
    sub = qm.sublattice()
    if sub is not None:
        signs = np.where(sub.numpy(), 1.0, -1.0)
        out["staggered_magnetization"] = float(w @ np.abs(s @ signs / qm.n_sites))
    pos, qs = structure_qs(qm)
    amp = np.exp(1j * qs @ pos.T) @ s.T  # (Q, M)
    sq = (np.abs(amp) ** 2 / qm.n_sites) @ w
    out["structure_factor_q0"], out["structure_factor_qpi"] = float(sq[0]), float(sq[1])
    return out


def _exact_value(x: float) -> dict[str, float]:
    return {"mean": x, "stderr": 0.0}


def exact_row(values: dict[str, Any], qm: QuantumModel, spec: Spectrum,
              measured: list[tuple[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The row of an exact point: ground-state energy (total and per site), the gap when more
    than one level was found, the levels (and their sectors) and the measured operators in the
    ground state."""
    e0 = spec.energies[0]
    row: dict[str, Any] = dict(values)
    row["energy"] = _exact_value(e0)
    row["energy_per_site"] = _exact_value(e0 / qm.n_sites)
    if len(spec.energies) > 1:
        row["gap"] = _exact_value(spec.energies[1] - e0)
    row["levels"] = spec.energies
    if qm.conserves_magnetization:
        row["sectors"] = spec.sectors
    diag = None
    for name, what in measured:
        if isinstance(what, PauliSum):
            row[name] = _exact_value(exact_expectation(what, spec.codes, spec.ground).real)
        elif what in DIAGONAL:
            diag = diag or exact_diagonal(qm, spec.codes, spec.ground)
            if what == "structure_factor":
                for k in ("structure_factor_q0", "structure_factor_qpi"):
                    row[k] = _exact_value(diag[k])
            elif what in diag:
                row[name] = _exact_value(diag[what])
    return row


def vmc_row(values: dict[str, Any], qm: QuantumModel, model: torch.nn.Module, res: VMCResult,
            measured: list[tuple[str, Any]], run_columns: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The estimates of a vmc point from its final samples ``res.samples`` (T, C, N): energy
    (total and per site, binning errors), variance of E_loc, split R-hat, then ``run_columns``
    (reference, acceptance, iterations), then the measured operators (local estimators of Pauli
    sums; Z-basis observables from the samples)."""
    n, device = qm.n_sites, next(model.parameters()).device
    row: dict[str, Any] = {**values, "energy": res.energy.as_dict()}
    row["energy_per_site"] = {"mean": res.energy.mean / n, "stderr": res.energy.stderr / n,
                              "tau_int": res.energy.tau_int}  # fmt: skip
    row["variance"] = {"mean": res.variance, "stderr": None}
    row["r_hat"] = res.extra["r_hat"]
    row.update(run_columns)
    diag = None
    for name, what in measured:
        if name in VMC_ENERGY_COLUMNS:
            continue
        if isinstance(what, PauliSum):
            est: Estimate = expectation(LocalOperator(what, device=device), model, res.samples)
            row[name] = est.as_dict()
        elif what in DIAGONAL:
            if diag is None:
                pos, qs = structure_qs(qm)
                diag = diagonal_observables(res.samples, pos, qs, qm.sublattice())
            if what == "structure_factor":
                sf = diag["structure_factor"]
                row["structure_factor_q0"], row["structure_factor_qpi"] = (
                    sf[0].as_dict(), sf[1].as_dict())  # fmt: skip
            elif what in diag:
                row[name] = diag[what].as_dict()
    return row


_ENERGY = QuantumObservable(exact=exact_spectrum, vmc=energy_statistics)
_DIAGONAL = QuantumObservable(exact=exact_diagonal, vmc=diagonal_observables)
# the implementations of the catalogue's quantum observables
OBSERVABLES: dict[str, QuantumObservable] = {
    "energy": _ENERGY, "energy_per_site": _ENERGY,
    "gap": QuantumObservable(exact=exact_spectrum, vmc=None),
    "variance": QuantumObservable(exact=None, vmc=energy_statistics),
    "r_hat": QuantumObservable(exact=None, vmc=energy_statistics),
    **dict.fromkeys(DIAGONAL, _DIAGONAL),
}  # fmt: skip


__all__ = ["DIAGONAL", "OBSERVABLES", "QuantumObservable", "exact_diagonal", "exact_row",
           "structure_qs", "vmc_row"]  # fmt: skip
