"""The compiled lattice gauge model: the derivation's link group, matter and action terms, with
torch to evaluate them.

The derivation (``compiler/derive/gauge.py``, torch-free) checks the model's structure, types
every term of the action, matches the pure-gauge terms against the Wilson form and verifies the
declared symmetries. This model evaluates the action with the same evaluator
(``compiler/lower/gauge.py``) on torch tensors: the link tensor U (B, L_1..L_d, d,
*group_shape) in the runtime's storage form and matter tensors (B, L_1..L_d). A Wilson model
(beta matched) is evaluated by the runtime's ``wilson_action`` and sampled with its staple
kernels (heat-bath, checkerboard Metropolis, HMC with analytic forces); other actions (matter
fields, improved actions) are sampled by runtime/gauge/local.py, which evaluates each term in
the evaluator's density mode.
"""

from __future__ import annotations

from typing import Any

import torch

from physml_lang.compiler.derive.gauge import GaugeDerivation, Term, derive_gauge, span_text
from physml_lang.compiler.derive.gauge import term_value as _term_value
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.gauge import Evaluator, LinkArrays
from physml_lang.compiler.lower.groups import get_group
from physml_lang.compiler.lower.links import lattice_dim, wilson_action
from physml_lang.compiler.lower.torch_backend import TORCH

Tensor = torch.Tensor


def _real(t: Tensor) -> Tensor:
    return torch.real(t) if t.is_complex() else t


# The evaluator's array operations on torch tensors (the runs' backend).
TORCH_LINKS = LinkArrays(
    TORCH, (Tensor,),
    roll=lambda f, k, axis: torch.roll(f, shifts=k, dims=axis),
    take=lambda f, i, axis: f.select(axis, i),
    lattice_sum=lambda t, d: t.flatten(1, d).sum(1),
    ones=lambda shape, like: torch.ones(shape, dtype=torch.float64, device=like.device),
    as_array=lambda t: torch.as_tensor(t, dtype=torch.complex128 if isinstance(t, complex)
                                       else torch.float64, device="cpu"),  # a 0-d constant
    apply=lambda op, t: TORCH.ops[op](t),
    conj=lambda t: t.conj() if t.is_complex() else t,
    dagger=lambda t: t.conj().transpose(-1, -2),
    ndim=lambda t: t.dim(),
    is_complex=lambda t: t.is_complex(),
)  # fmt: skip


class GaugeModel:
    """A compiled lattice gauge model (see the module docstring): the derivation's results and
    torch evaluation of the action, S(U, matter) -> (B,)."""

    kind = "gauge"

    def __init__(self, model: ModelInstance, **_options: Any):
        self.model = model
        self.ir = model.ir
        self.derivation: GaugeDerivation = derive_gauge(model)
        g = self.derivation
        self.link_field: str = g.link_field
        self.group = get_group(g.group)
        self.d: int = g.d
        self.shape: tuple[int, ...] = g.shape
        self.n_sites: int = g.n_sites
        self.matter_domains: dict[str, str] = g.matter_domains
        self.action_def = g.action_def
        self.terms: list[Term] = g.terms
        self.wilson_beta: float | None = g.wilson_beta
        self.plaquette_defs: dict[str, str] = g.plaquette_defs
        self.symmetry_report: list[str] = g.symmetry_report
        self.real_dtype = torch.float64

    # -------------------------------------------------------------- helpers
    @property
    def pure(self) -> bool:
        return self.derivation.pure

    @property
    def is_wilson(self) -> bool:
        return self.derivation.is_wilson

    def random_configuration(self, batch: int, generator: torch.Generator,
                             shape: tuple[int, ...] | None = None):  # fmt: skip
        """Haar-random links U (B, L..., d, *group_shape) and matter {name: (B, L...)}, in
        storage form."""
        shape = shape or self.shape
        U = self.group.random((batch, *shape, len(shape)), generator)
        matter = {}
        for name, dom in self.matter_domains.items():
            matter[name] = get_group(dom).random((batch, *shape), generator)
        return U, matter

    def evaluator(self, U: Tensor, matter: dict[str, Tensor]) -> Evaluator:
        """The lowering's evaluator on links U (B, L..., d, *group_shape) and matter (B, L...)
        in storage form (u1 angles read as phases)."""
        lin = self.group.to_lin(U)  # (B, L..., d, *lin_shape)
        lin_matter = {k: (self.group.to_lin(v) if self.matter_domains[k] == "u1" else v)
                      for k, v in matter.items()}  # fmt: skip
        return Evaluator(self.derivation, lin, lin_matter, TORCH_LINKS)

    def term_value(self, term: Term, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
        """sign * the term per configuration: (B,)."""
        return _term_value(term, self.evaluator(U, matter))

    def action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """S(U, matter) per configuration: (B,) real."""
        matter = matter or {}
        if self.is_wilson:
            return wilson_action(U, self.group, self.wilson_beta)
        return _real(sum(self.term_value(t, U, matter) for t in self.terms))

    def generic_action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """The action evaluated term by term from the declared expression (no matching)."""
        return _real(sum(self.term_value(t, U, matter or {}) for t in self.terms))

    # -------------------------------------------------------------- presentation
    def describe(self) -> str:
        return self.derivation.describe()

    def emit_torch(self) -> str:
        lines = ["import torch", "from physml_lang.runtime.gauge import wilson_action",
                 "from physml_lang.compiler.lower.links import plaquette_field", ""]  # fmt: skip
        if self.is_wilson:
            lines += ["def action(U):",
                      f"    # U: (B, {', '.join(f'L{k}' for k in range(self.d))}, {self.d}"
                      f"{', 2, 2' if self.group.name == 'su2' else ''}) in "
                      f"{self.group.name} storage form",
                      f"    return wilson_action(U, {self.group.name!r}, "
                      f"{float(self.wilson_beta)!r})"]  # fmt: skip
        else:
            lines += ["# generic action: evaluated term by term from the declared expression",
                      "# by physml_lang.compiler.lower.gauge.Evaluator (shifted-tensor stencils)"]  # fmt: skip
            for t in self.terms:
                lines.append(f"#   {'+' if t.sign > 0 else '-'} {t.text}")
        return "\n".join(lines) + "\n"  # fmt: skip

    def emit_sympy(self) -> str:
        out = [f"action {self.action_def.name} = {span_text(self.action_def.expr.span)}"]
        if self.wilson_beta is not None:
            out.append(f"  = -{self.wilson_beta:g} * Sum(Re tr P_mu_nu(x) / {self.group.N}, "
                       "(x, mu < nu))")  # fmt: skip
        for name, how in self.plaquette_defs.items():
            out.append(f"plaquette {name}: {how}")
        return "\n".join(out) + "\n"


def compile_gauge(model: ModelInstance, **options: Any) -> GaugeModel:
    return GaugeModel(model, **options)


__all__ = ["TORCH_LINKS", "GaugeModel", "compile_gauge", "lattice_dim", "span_text"]
