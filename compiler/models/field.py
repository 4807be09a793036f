"""Continuous lattice fields: the derived action densities (derive/field) -> roll stencils.

:class:`FieldModel`: ``field phi: real on sites`` (phi^4) or ``field theta: angle on sites``
(XY) with an ``action`` (or ``energy``/``hamiltonian``) that is a linear combination of
``sum(f(phi[i]) for i in sites)`` and ``sum(g(phi[i], phi[j]) for (i, j) in bonds)``.
:func:`derive_field` derives the densities f(a), g(a, b) and their derivatives in sympy; here
they are lowered to shifted-tensor (roll) stencils: S(x) -> (C,), dS/dx -> (C, *lattice.shape)
with no loop over sites.
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from physml_lang.compiler.derive.field import FieldDerivation, derive_field
from physml_lang.compiler.geometry import roll_arguments
from physml_lang.compiler.instance import ModelInstance, numeric_variant
from physml_lang.compiler.lower.domains import site_domain
from physml_lang.compiler.lower.lattice import LatticeKernels, LatticeSumModule
from physml_lang.compiler.lower.program import LoweringError, Program, lower_program
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.common import fail
from physml_lang.ir.model import ModelIR

Tensor = torch.Tensor


class FieldModel:
    """A compiled continuous lattice field: action S(x) -> (C,) and derived dS/dx.

    Fields x have shape (C, *lattice.shape). The action's densities are derived and lowered
    once; sums over sites and bonds are roll stencils (masked on open boundaries).
    """

    kind = "field"

    def __init__(self, model: ModelInstance, numeric: frozenset[str] = frozenset()):
        self.derived: FieldDerivation = derive_field(model, numeric)
        d = self.derived
        # numeric couplings are arguments of the lowered programs (Python numbers at run time),
        # so another value is a rebinding (:meth:`rebind`), not a new lowering
        self.numeric = frozenset(numeric)
        self._numeric = sorted((s for s in d.params if s.name in self.numeric), key=str)
        self._values = [d.params[s] for s in self._numeric]
        self.model = model
        self.ir = model.ir
        self.fieldir = d.fieldir
        self.field = d.field
        self.domain = d.domain
        self.lattice = d.lattice
        self.shape = d.shape
        self.definition = d.definition
        self.builder = d.builder
        self.terms = d.terms
        self.site = d.site
        self.bonds = d.bonds
        self._linear = self._linear_values(d)
        a, b = self.builder.a, self.builder.b
        self._programs: dict[str, Program] = {}
        self._sources: dict[str, str] = {}
        self._masks: dict[tuple, Tensor] = {}
        self._kernels: LatticeKernels | None = None
        self.device = torch.device("cpu")
        try:
            for key, es in d.derived.items():
                # the densities only; gradients below (HMC forces never pay for the density)
                self._lower(key, es[:1], [a] if key == "site" else [a, b], d.params)
            self._lower("force_local", [d.force_local], [a], d.params)
            for shell in self.bonds:
                if shell not in self._linear:
                    self._lower(f"bond{shell}_grad", d.derived[f"bond{shell}"][1:], [a, b],
                                d.params)  # fmt: skip
        except LoweringError as exc:
            fail("P800", str(exc), self.definition.span)

    def _linear_values(self, d: FieldDerivation) -> dict[int, tuple[float, float]]:
        """alpha, beta of each linear bond shell at the current parameter values."""
        bind = {s: sympy.Float(v, 17) for s, v in d.params.items()}
        return {shell: (float(alpha.xreplace(bind)), float(beta.xreplace(bind)))
                for shell, (alpha, beta) in d.linear.items()}  # fmt: skip

    def rebind(self, ir: ModelIR) -> bool:
        """Take the numeric parameter values of ``ir`` (the same model at another scan point)
        without lowering again: the derivation is re-checked with the new values (symmetries)
        and must split into the same terms; False where it does not (compile it instead)."""
        model = numeric_variant(self.model, ir, self.numeric)
        if model is None:
            return False
        d = derive_field(model, self.numeric)
        if set(d.linear) != set(self.derived.linear) or set(d.bonds) != set(self.bonds):
            return False
        self.model, self.ir, self.derived = model, ir, d
        self._values = [d.params[s] for s in self._numeric]
        self._linear = self._linear_values(d)
        return True

    # ---------------------------------------------------------------- evaluation
    def _mask(self, offset: tuple[int, ...], like: Tensor) -> Tensor | None:
        if self.lattice.all_periodic:
            return None
        key = (offset, like.device, like.dtype)
        if key not in self._masks:
            m = self.lattice.bond_mask(offset).reshape(self.shape)
            self._masks[key] = torch.as_tensor(m, dtype=like.dtype, device=like.device)
        return self._masks[key]

    @staticmethod
    def _shift(x: Tensor, offset: tuple[int, ...], sign: int = 1) -> Tensor:
        """x[c, site + sign * offset] (periodic)."""
        shifts, dims = roll_arguments(tuple(sign * o for o in offset))
        return torch.roll(x, shifts, dims) if dims else x

    def _lower(self, key: str, exprs: list[sympy.Expr], args: list[sympy.Symbol],
               params: dict[sympy.Symbol, float]) -> None:  # fmt: skip
        """One program per density (or its gradients) over x = phi[site] (and y = phi[site + e]),
        and the numeric parameters (numbers)."""
        names = dict(zip(args, ("x", "y")))
        names.update({s: s.name for s in self._numeric})
        bound = {s: v for s, v in params.items() if s not in names}
        prog = lower_program(exprs, [*args, *self._numeric], names, bound, key, backend=TORCH)
        sig = ", ".join([*(f"{names[s]}: torch.Tensor" for s in args),
                         *(f"{s.name}: float" for s in self._numeric)])  # fmt: skip
        outs = [f"torch.full_like(x, {s})" if c else s
                for s, c in zip(prog.out_srcs, prog.constant, strict=True)]  # fmt: skip
        ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
        self._programs[key] = prog
        self._sources[key] = "\n".join([f"def {key}({sig}):", *prog.lines,
                                        f"    return {ret}"]) + "\n"  # fmt: skip

    @classmethod
    def _shifts(cls, x: Tensor, offsets: list[tuple[int, ...]], sign: int) -> Tensor:
        """sum_e x[site + sign * e] over the offsets of a shell."""
        out = cls._shift(x, offsets[0], sign)
        for off in offsets[1:]:
            out = out + cls._shift(x, off, sign)
        return out

    def _eval(self, key: str, *args: Tensor) -> list[Tensor]:
        """Run a lowered density program on whole fields (C, *shape); constants broadcast."""
        x, out = args[0], []
        for v in self._programs[key].run(*args, *self._values):
            if not isinstance(v, Tensor):
                v = torch.full_like(x, float(v))
            elif v.shape != x.shape:
                v = v.expand(x.shape)
            out.append(v)
        return out

    def density(self, x: Tensor) -> Tensor:
        """Action density per site (C, *shape): the site term plus the bonds leaving each site."""
        (out,) = self._eval("site", x)
        for shell in self.bonds:
            for off in self.lattice.shells[shell]:
                (g,) = self._eval(f"bond{shell}", x, self._shift(x, off))
                m = self._mask(off, x)
                out = out + (g if m is None else g * m)
        return out

    def action(self, x: Tensor) -> Tensor:
        """S(x) -> (C,) for fields x of shape (C, *lattice.shape)."""
        return self.density(x).reshape(x.shape[0], -1).sum(-1)

    __call__ = action

    def grad(self, x: Tensor) -> Tensor:
        """dS/dx (C, *shape), from the derived densities: f'(x) + sum over bonds of
        dg/da at (x, x + e) and dg/db at (x - e, x)."""
        (out,) = self._eval("force_local", x)
        for shell, (alpha, beta) in self._linear.items():
            offs = self.lattice.shells[shell]
            up = self._shifts(x, offs, 1)
            if alpha == beta:
                out = out + alpha * (up + self._shifts(x, offs, -1))
            else:
                out = out + alpha * up + beta * self._shifts(x, offs, -1)
        for shell in self.bonds:
            if shell in self._linear:
                continue
            for off in self.lattice.shells[shell]:
                ga, gb = self._eval(f"bond{shell}_grad", x, self._shift(x, off))
                m = self._mask(off, x)
                if m is not None:
                    ga, gb = ga * m, gb * m
                out = out + ga + self._shift(gb, off, -1)
        return out

    def magnetization(self, x: Tensor) -> Tensor:
        """M (C,) as the field's domain defines it: sum of phi over the sites; angle fields:
        |sum exp(i theta)|."""
        domain = next(iter(self.model.fields.values())).domain
        return site_domain(domain, x.dtype).magnetization(x.reshape(x.shape[0], -1))

    def lattice_sum_module(self, expr: Any, name: str) -> LatticeSumModule:
        """A measured lattice sum of the field as a module of fields (C, *shape) -> (C,)
        (float64; roll stencils on periodic lattices, neighbour tables otherwise)."""
        if self._kernels is None:
            path = "roll" if self.lattice.all_periodic else "gather"
            self._kernels = LatticeKernels(self.model, path, torch.float64)
        lsum = self.derived.lattice_sum(expr, name)
        if self._kernels.path == "gather":  # neighbour tables built now, moved with the module
            for term in lsum.terms:
                for acc in term.accesses.values():
                    if acc.kind == "field" and any(acc.offset):
                        self._kernels.table(acc.offset)
        self._kernels.to(self.device)
        return LatticeSumModule(self.model, lsum, self._kernels, name)

    def twist(self, x: Tensor, span: Any = None) -> tuple[Tensor, Tensor]:
        """dS/dpsi and d2S/dpsi2 (each (C, d)) for a twist psi of the angles per lattice
        spacing along each axis mu: sum over bonds (x, x + e) of e_mu dg/db and e_mu^2 d2g/db2
        (derive/field.FieldDerivation.twist; located P414 where the twist is not defined)."""
        twist = self.derived.twist(span)
        a, b = self.builder.a, self.builder.b
        C, d = x.shape[0], len(self.shape)
        d1 = torch.zeros(C, d, dtype=x.dtype, device=x.device)
        d2 = torch.zeros_like(d1)
        for shell, exprs in twist.items():
            key = f"bond{shell}_twist"
            if key not in self._programs:
                self._lower(key, exprs, [a, b], self.derived.params)
                self._sources.pop(key)  # measured, not part of the emitted action
            for off in self.lattice.shells[shell]:
                gb, gbb = self._eval(key, x, self._shift(x, off))
                gb, gbb = gb.reshape(C, -1).sum(-1), gbb.reshape(C, -1).sum(-1)
                for mu, o in enumerate(off):
                    if o:
                        d1[:, mu] += o * gb
                        d2[:, mu] += o * o * gbb
        return d1, d2

    def to(self, device: Any) -> FieldModel:
        """Fields carry their device; measured lattice sums follow ``device``."""
        self.device = torch.device(device)
        if self._kernels is not None:
            self._kernels.to(self.device)
        return self

    def describe(self) -> str:
        return self.derived.describe()

    def emit_sympy(self) -> str:
        return self.derived.emit_sympy()

    def emit_torch(self) -> str:
        head = ('"""Lowered action densities: x = phi (C, *lattice), y = phi at the neighbour '
                'x + e (torch.roll); S sums site(x) and, per bond direction e, bond(x, y). The '
                'force dS/dphi is force(x) below."""\n\n'
                "import torch\n\n\n")  # fmt: skip
        body = "\n\n".join(self._sources.values())
        # The force as it runs: local part, neighbour sums of linear bond shells, other shells.
        lines = ["def force(x: torch.Tensor):", "    out = force_local(x)"]
        for shell, (alpha, beta) in self._linear.items():
            ups = " + ".join(f"torch.roll(x, {tuple(-o for o in off)}, {tuple(range(1, 1 + len(off)))})"
                             for off in self.lattice.shells[shell])  # fmt: skip
            downs = " + ".join(f"torch.roll(x, {tuple(off)}, {tuple(range(1, 1 + len(off)))})"
                               for off in self.lattice.shells[shell])  # fmt: skip
            if alpha == beta:
                lines.append(f"    out = out + {alpha!r} * (({ups}) + ({downs}))")
            else:
                lines.append(f"    out = out + {alpha!r} * ({ups}) + {beta!r} * ({downs})")
        for shell in self.bonds:
            if shell not in self._linear:
                lines.append(f"    for e in SHELL{shell}:  # masked on open boundaries")
                lines.append(f"        gx, gy = bond{shell}_grad(x, torch.roll(x, -e))")
                lines.append("        out = out + gx + torch.roll(gy, e)")
        lines.append("    return out")
        return head + body + "\n\n" + "\n".join(lines) + "\n"


def compile_field(model: ModelInstance, **options: Any) -> FieldModel:
    return FieldModel(model, options.get("numeric", frozenset()))


__all__ = ["FieldModel", "compile_field"]
