"""The compiled lattice gauge model: link field, group, matter, action terms and their checks.

A gauge model has one field on ``links`` with a group domain (z2, u1, su2) and optionally matter
fields on ``sites`` (spin/z2 with z2 links, u1 phases with u1 links). Its ``action`` is lowered
by ``compiler/lower/gauge.py`` to torch functions of the link tensor U (B, L_1..L_d, d,
*group_shape) in the runtime's storage form and of the matter tensors (B, L_1..L_d).

Every additive term of the action is compiled separately, so a term that breaks ``symmetry gauge``
is reported at its own span: structurally where the abelian charge decides it
(``compiler/derive/gauge.py``), numerically otherwise. The pure-gauge terms are then *matched*
against the runtime's Wilson action: if their sum equals c * sum_{x, mu<nu} Re tr P / N on random
configurations (to rounding) the model is a Wilson model with beta = -c, and samplers use the
runtime's staple kernels (heat-bath, checkerboard Metropolis, HMC with analytic forces). Other
actions (matter fields, improved actions) are sampled by runtime/gauge/local.py, which evaluates
each term in the lowering's density mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from physml_lang.compiler.derive.gauge import charges
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.gauge import Env, Evaluator, fail
from physml_lang.compiler.lower.gauge_transforms import gauge_transform, random_gauge, translate
from physml_lang.compiler.lower.groups import get_group
from physml_lang.compiler.lower.links import (
    lattice_dim,
    planes,
    plaquette_field,
    plaquettes,
    wilson_action,
)
from physml_lang.diagnostics import PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import GAUGE_GROUPS
from physml_lang.ir.walk import additive_terms, names_in

Tensor = torch.Tensor

MATTER = {"z2": {"spin", "z2"}, "u1": {"u1"}, "su2": set()}
GAUGE_LATTICES = {"square", "cubic", "hypercubic", "chain"}


def span_text(span: Span) -> str:
    """The source text of a span (for naming terms in diagnostics)."""
    lines = span.source.text.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1:span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1:]]
    parts += lines[span.line:span.end_line - 1]
    parts.append(lines[span.end_line - 1][:span.end_column - 1])
    return " ".join(p.strip() for p in parts)


# ---------------------------------------------------------------- the compiled model


@dataclass
class Term:
    """One additive term of the action: sign * expr."""

    sign: int
    expr: E.Expr
    text: str
    pure_gauge: bool


class GaugeModel:
    """A compiled lattice gauge model (see the module docstring)."""

    kind = "gauge"

    def __init__(self, model: ModelInstance, **_options: Any):
        self.model = model
        self.ir = ir = model.ir
        links = [f for f in model.fields.values() if f.on == "links"]
        if len(links) != 1:
            fail("P400", "a gauge model has exactly one link field", links[1].span)
        lf = links[0]
        if lf.domain.kind not in GAUGE_GROUPS:
            fail("P301", f"a link field takes a gauge group, not '{lf.domain}'", lf.span,
                 "groups: " + ", ".join(sorted(GAUGE_GROUPS)))
        self.link_field = lf.name
        self.group = get_group(lf.domain.kind)
        lat = model.lattice
        if lat is None or lat.complete or lat.kind not in GAUGE_LATTICES:
            fail("P400", "gauge fields live on hypercubic lattices", lf.span,
                 "lattice square(L, L), cubic(L, L, L) or hypercubic(L, L, L, T)")
        if not lat.all_periodic:
            fail("P400", "gauge models need periodic boundaries", lf.span)
        self.d = lat.dim
        if self.d < 2:
            fail("P400", "a gauge model needs at least 2 dimensions (plaquettes)", lf.span)
        self.shape = tuple(lat.shape)
        self.n_sites = lat.n_sites
        self.matter_domains: dict[str, str] = {}
        for f in model.fields.values():
            if f.on != "sites":
                continue
            if f.domain.kind not in MATTER[self.group.name]:
                ok = ", ".join(sorted(MATTER[self.group.name])) or "none yet"
                fail("P301", f"matter field '{f.name}: {f.domain}' cannot couple to "
                     f"{self.group.name} links", f.span, f"matter domains for "
                     f"{self.group.name}: {ok}")
            self.matter_domains[f.name] = "u1" if f.domain.kind == "u1" else "z2"
        act = ir.energy
        if act is None:
            fail("P400", f"gauge model {ir.name} declares no action", ir.span,
                 "add e.g. 'action S = -beta * sum(re(P[x]) for x in sites)'")
        self.action_def = act
        self.terms = [Term(s, e, span_text(e.span),
                           not (names_in(e) & set(self.matter_domains)))
                      for s, e in additive_terms(act.expr, keep_negations=True)]
        self.real_dtype = torch.float64
        # Evaluate once on a random configuration: type errors surface at compile time.
        g = torch.Generator().manual_seed(0)
        U, matter = self.random_configuration(2, g)
        for t in self.terms:
            v = self.term_value(t, U, matter)
            if v.is_complex() and float(v.imag.abs().max()) > 1e-9 * (1 + float(v.abs().max())):
                fail("P300", f"the action term '{t.text}' is complex", t.expr.span,
                     "take the real part: re(...)")
        self.wilson_beta = self._match_wilson(g)
        self.plaquette_defs = self._match_plaquettes(g)
        self.symmetry_report = self.check_symmetries()

    # -------------------------------------------------------------- helpers
    def site_names(self, d) -> set[str]:
        """Index names of a definition that are sites: the first index; the rest directions."""
        return {d.indices[0]} if d.indices else set()

    @property
    def pure(self) -> bool:
        return not self.matter_domains

    @property
    def is_wilson(self) -> bool:
        return self.wilson_beta is not None and self.pure

    def random_configuration(self, batch: int, generator: torch.Generator,
                             shape: tuple[int, ...] | None = None):
        shape = shape or self.shape
        U = self.group.random((batch, *shape, len(shape)), generator)
        matter = {}
        for name, dom in self.matter_domains.items():
            matter[name] = get_group(dom).random((batch, *shape), generator)
        return U, matter

    def term_value(self, term: Term, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
        v = Evaluator(self, U, matter).evaluate(term.expr, Env())
        t = v.t
        if v.mat:
            fail("P300", f"the action term '{term.text}' is a matrix", term.expr.span,
                 "take the trace: re(trace(P)) / 2")
        if not isinstance(t, Tensor):
            t = torch.full((U.shape[0],), complex(t).real, dtype=torch.float64)
        if v.lattice or t.dim() != 1:
            fail("P300", f"the action term '{term.text}' is not summed over the lattice",
                 term.expr.span, "wrap it in sum(... for x in sites)")
        return term.sign * t

    def action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """S(U, matter) per configuration: (B,) real."""
        matter = matter or {}
        if self.is_wilson:

            return wilson_action(U, self.group, self.wilson_beta)
        total = sum(self.term_value(t, U, matter) for t in self.terms)
        return total.real if total.is_complex() else total

    def generic_action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """The action evaluated term by term from the declared expression (no matching)."""
        total = sum(self.term_value(t, U, matter or {}) for t in self.terms)
        return total.real if total.is_complex() else total

    # -------------------------------------------------------------- matching
    def _match_wilson(self, g: torch.Generator) -> float | None:
        """beta if the pure-gauge terms sum to -beta sum Re tr P / N (checked on 3 random
        configurations, relative 1e-10), else None."""
        pure = [t for t in self.terms if t.pure_gauge]
        if not pure:
            return None
        U, matter = self.random_configuration(3, g)
        s = sum(self.term_value(t, U, matter) for t in pure)
        s = s.real if s.is_complex() else s
        w = plaquette_field(U, self.group).flatten(1).sum(1)
        c = float(s[0] / w[0])
        if not math.isfinite(c):
            return None
        c = float(f"{c:.12g}")  # the ratio carries rounding noise; the check below validates
        err = float((s - c * w).abs().max())
        if err > 1e-10 * (1 + float(s.abs().max())):
            return None
        return -c

    def _match_plaquettes(self, g: torch.Generator) -> dict[str, str]:
        """Which plaquette definitions equal the runtime's P_{mu nu}(x) (every plane)."""
        out = {}
        U, matter = self.random_configuration(2, g)
        ref = plaquettes(U, self.group)  # (B, L..., n_planes, *lin)
        for name, d in self.model.definitions.items():
            if d.kind != "plaquette":
                continue
            n = len(d.indices)
            if n not in (1, 3) or (n == 1 and self.d != 2):
                out[name] = "custom"
                continue
            ok = True
            ev = Evaluator(self, U, matter)
            try:
                for k, (mu, nu) in enumerate(planes(self.d)):
                    env = Env({d.indices[0]: (0,) * self.d},
                              {} if n == 1 else {d.indices[1]: mu, d.indices[2]: nu})
                    v = ev.evaluate(d.expr, env)
                    r = ref.select(1 + self.d, k)
                    if not isinstance(v.t, Tensor) or v.t.shape != r.shape or \
                            float((v.t - r).abs().max()) > 1e-10:
                        ok = False
            except PhysmlError:
                ok = False
            out[name] = "standard" if ok else "custom"
        return out

    # -------------------------------------------------------------- symmetries
    def check_symmetries(self) -> list[str]:
        """Verify the declared symmetries; P500 naming the first term that breaks one."""
        report = []
        for sym in self.model.symmetries:
            if not sym.active:
                continue
            if sym.name == "gauge":
                report.append(self.check_gauge(sym.span))
            elif sym.name == "translation":
                report.append(self.check_translation(sym.span))
            else:
                fail("P501", f"symmetry {sym.name} is not available for gauge models", sym.span,
                     "gauge models declare: gauge, translation")
        return report

    def gauge_transform_matter(self, matter: dict[str, Tensor], omega: Tensor):
        out = {}
        for k, v in matter.items():
            out[k] = self.group.multiply(omega, v)  # z2: sign; u1: angle shift
        return out

    def check_gauge(self, span: Span | None) -> str:
        """Each term: symbolically (abelian charge balance of monomials) where possible,
        numerically otherwise (3 random configurations x 3 random gauge transformations)."""
        symbolic, numeric = 0, 0
        g = torch.Generator().manual_seed(12345)
        for t in self.terms:
            ch = (charges(t.expr, self.group.name, self.link_field, self.matter_domains,
                          self.model.params, self.model.definitions)
                  if self.group.name in ("u1", "z2") else None)  # fmt: skip
            if ch is not None and all(v == 0 for v in ch.values()):
                symbolic += 1
                continue
            U, matter = self.random_configuration(3, g)
            base = self.term_value(t, U, matter)
            worst = 0.0
            for _ in range(3):
                om = random_gauge(self.group, (3, *self.shape), g)
                gU = gauge_transform(U, om, self.group)
                val = self.term_value(t, gU, self.gauge_transform_matter(matter, om))
                worst = max(worst, float((val - base).abs().max()))
            scale = 1 + float(base.abs().max())
            if worst > 1e-8 * scale:
                fail("P500", f"symmetry gauge does not hold: the term '{t.text}' changes by "
                     f"{worst:.3g} under a random gauge transformation", t.expr.span,
                     "gauge-invariant terms are traces of closed loops of links (plaquettes, "
                     "Wilson loops) or matter fields joined by links: phi[x] * U[x, mu] * "
                     "phi[x + e_mu]")
            numeric += 1
        return (f"gauge invariance verified ({symbolic} term(s) symbolically, {numeric} "
                f"numerically)")

    def check_translation(self, span: Span | None) -> str:
        g = torch.Generator().manual_seed(54321)
        U, matter = self.random_configuration(2, g)
        base = self.generic_action(U, matter)
        shift = tuple(1 + k for k in range(self.d))
        val = self.generic_action(translate(U, shift),
                                  {k: translate(v, shift) for k, v in matter.items()})
        if float((val - base).abs().max()) > 1e-8 * (1 + float(base.abs().max())):
            fail("P500", "symmetry translation does not hold for the action", span)
        return "translation invariance verified numerically"

    # -------------------------------------------------------------- presentation
    def describe(self) -> str:
        dims = "x".join(str(n) for n in self.shape)
        kind = (f"Wilson action (beta = {self.wilson_beta:g}, matched to runtime wilson_action)"
                if self.wilson_beta is not None else "generic action (evaluated from the "
                "declared expression)")
        if self.matter_domains:
            kind += f" + matter {', '.join(self.matter_domains)}"
        checks = "; ".join(self.symmetry_report)
        return (f"gauge model, {self.group.name} links on a periodic {dims} lattice (d = "
                f"{self.d}), {kind}" + (f"; {checks}" if checks else ""))

    def emit_torch(self) -> str:
        lines = ["import torch", "from physml_lang.runtime.gauge import wilson_action",
                 "from physml_lang.compiler.lower.links import plaquette_field", ""]
        if self.is_wilson:
            lines += ["def action(U):",
                      f"    # U: (B, {', '.join(f'L{k}' for k in range(self.d))}, {self.d}"
                      f"{', 2, 2' if self.group.name == 'su2' else ''}) in "
                      f"{self.group.name} storage form",
                      f"    return wilson_action(U, {self.group.name!r}, "
                      f"{float(self.wilson_beta)!r})"]
        else:
            lines += ["# generic action: evaluated term by term from the declared expression",
                      "# by physml_lang.compiler.lower.gauge.Evaluator (shifted-tensor stencils)"]
            for t in self.terms:
                lines.append(f"#   {'+' if t.sign > 0 else '-'} {t.text}")
        return "\n".join(lines) + "\n"

    def emit_sympy(self) -> str:
        out = [f"action {self.action_def.name} = {span_text(self.action_def.expr.span)}"]
        if self.wilson_beta is not None:
            out.append(f"  = -{self.wilson_beta:g} * Sum(Re tr P_mu_nu(x) / {self.group.N}, "
                       "(x, mu < nu))")
        for name, how in self.plaquette_defs.items():
            out.append(f"plaquette {name}: {how}")
        return "\n".join(out) + "\n"


def compile_gauge(model: ModelInstance, **options: Any) -> GaugeModel:
    return GaugeModel(model, **options)


__all__ = ["GaugeModel", "compile_gauge", "lattice_dim", "span_text"]
