"""A compiled qubit model: the torch-free derivation (``compiler/derive/quantum.py``: the
Hamiltonian as a Pauli sum, symmetries and conserved quantities verified) with what the runtime
reads as tensors -- translation table, bipartite sublattice -- and its readable torch source."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import sympy as sp
import torch

from physml_lang.compiler.derive.quantum import QuantumDerivation, derive_quantum, fail
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import source_of
from physml_lang.compiler.lower.torch_backend import TORCH


@dataclass
class QuantumModel(QuantumDerivation):
    """A compiled qubit model: its derivation (Hamiltonian, verified symmetries, conserved
    quantities) and the lattice facts learners read as tensors."""

    kind: ClassVar[str] = "quantum"

    @classmethod
    def of(cls, derivation: QuantumDerivation) -> QuantumModel:
        """The compiled model of a derivation (its results reused, nothing derived again)."""
        return cls(**{f.name: getattr(derivation, f.name) for f in fields(derivation)})

    # -------------------------------------------------------------- lattice facts
    def translation_table(self) -> torch.Tensor | None:
        """(G, N) long: translations (T s)_i = s[T[g, i]], or None without periodic lattice."""
        table = self.translations()
        return None if table is None else torch.as_tensor(table, dtype=torch.long, device="cpu")

    def sublattice(self) -> torch.Tensor | None:
        """(N,) bool A-sublattice of a bipartite lattice (chain/square/cubic), else None."""
        mask = self.a_sublattice()
        return None if mask is None else torch.as_tensor(mask, device="cpu")

    # -------------------------------------------------------------- display
    def emit_torch(self) -> str:
        """Readable, runnable torch source of the derived matrix elements and local energy:
        ``matrix_elements(s)`` (B, K), ``connected(s)`` (B, K, N), ``local_energy(log_psi, s)``.
        The runtime evaluates the same elements with two batched matmuls (operator.py)."""

        n = self.n_sites
        patterns = self.flip_patterns()
        is_real = self.hamiltonian.is_real()
        used = sorted({int(str(x)[1:]) for _, e in patterns for x in e.free_symbols})
        rows = []
        for flips, expr in patterns:
            what = "diagonal" if not flips else "flip " + ", ".join(map(str, flips))
            body = source_of(sp.expand(expr), backend=TORCH) if expr != 0 else "0.0"
            rows.append(f"        zero + ({body}),  # {what}")
        flips_src = ",\n    ".join(
            ", ".join(f"({', '.join(map(str, f))}{',' if len(f) == 1 else ''})"
                      for f, _ in patterns[i : i + 8])
            for i in range(0, len(patterns), 8)
        )  # fmt: skip
        reads = [f"    {', '.join(f's{k}' for k in used)}{',' if len(used) == 1 else ''} = "
                 f"({', '.join(f's[:, {k}]' for k in used)}{',' if len(used) == 1 else ''})"]  # fmt: skip
        if not used:
            reads = []
        zero = "torch.zeros_like(s[:, 0])" if is_real else (
            "torch.zeros_like(s[:, 0], dtype=torch.complex128)")  # fmt: skip
        return "\n".join([
            f"# physml compile --emit torch: model {self.ir.name}",
            f"# {self.describe()}",
            f"# H = sum of {len(self.hamiltonian.terms)} Pauli strings. A string c X_F Y_G Z_H maps",
            "# the Z-basis state s (s_k = +-1) to the single state s' = s with the X/Y sites",
            "# flipped, with <s|P|s'> = c (-i)^|G| prod_{k in G, H} s_k. Grouped by flip pattern:",
            "import torch",
            "",
            f"N_SITES = {n}",
            "# the flip patterns: s'_k = s with the sites FLIPS[k] flipped (k = 0: diagonal)",
            f"FLIPS = [\n    {flips_src},\n]",
            "",
            "",
            "def matrix_elements(s):",
            '    """<s|H|s\'_k> (B, K) for configurations s (B, N) of +-1."""',
            *reads,
            f"    zero = {zero}",
            "    return torch.stack([",
            *rows,
            "    ], dim=-1)",
            "",
            "",
            "def connected(s):",
            '    """The connected configurations s\'_k (B, K, N), one per flip pattern."""',
            "    sign = torch.ones(len(FLIPS), N_SITES, dtype=s.dtype, device=s.device)",
            "    for k, sites in enumerate(FLIPS):  # setup over patterns, not samples",
            "        sign[k, list(sites)] = -1.0",
            "    return s.unsqueeze(1) * sign",
            "",
            "",
            "def local_energy(log_psi, s):",
            '    """E_loc(s) = sum_k <s|H|s\'_k> psi(s\'_k) / psi(s) (B,); log_psi: (B, N) -> (B,)."""',
            "    mels = matrix_elements(s)",
            "    sp = connected(s)",
            "    b, k, n = sp.shape",
            "    lp = log_psi(sp.reshape(b * k, n)).reshape(b, k)",
            "    ratio = torch.exp(lp - lp[:, :1])",
            "    return (mels * torch.where(mels != 0, ratio, torch.zeros_like(ratio))).sum(-1)",
            "",
        ])  # fmt: skip


def compile_quantum(m: ModelInstance, **options) -> QuantumModel:
    """The derived qubit model (:func:`derive_quantum`), compiled (all failures are located
    diagnostics)."""
    if options.get("path"):
        fail("P413", "--path chooses a classical lowering; quantum models have one form", None)
    return QuantumModel.of(derive_quantum(m))


__all__ = ["QuantumModel", "compile_quantum"]
