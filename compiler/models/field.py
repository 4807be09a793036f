"""Continuous lattice fields: the expression IR -> sympy densities -> roll stencils.

:class:`FieldModel`: ``field phi: real on sites`` (phi^4) or ``field theta: angle on sites``
(XY) with an ``action`` (or ``energy``/``hamiltonian``) that is a linear combination of
``sum(f(phi[i]) for i in sites)`` and ``sum(g(phi[i], phi[j]) for (i, j) in bonds)``. The
densities f(a), g(a, b) and their derivatives are derived symbolically and lowered to
shifted-tensor (roll) stencils: S(x) -> (C,), dS/dx -> (C, *lattice.shape) with no loop over
sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy
import torch

from physml_lang.check.constants import evaluate
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import LoweringError, Program, lower_program
from physml_lang.compiler.lower.sympy import SympyBuilder
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.common import allowed_symmetries, fail
from physml_lang.diagnostics import Span
from physml_lang.ir import expr as E
from physml_lang.ir.walk import as_binary, as_call, as_reduce, as_unary, children, name_of

Tensor = torch.Tensor

class FieldBuilder(SympyBuilder):
    """phi[i] -> a, phi[j] -> b inside ``sum(... for i in sites)`` / ``for (i, j) in bonds``."""

    def __init__(self, model: ModelInstance, field: str):
        super().__init__(model)
        self.field = field
        self.a = sympy.Symbol(f"{field}_i", real=True)
        self.b = sympy.Symbol(f"{field}_j", real=True)
        self.slots: dict[str, sympy.Symbol] = {}

    def variable(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr | None:
        if e.id == self.field:
            fail("P302", f"'{e.id}' is a field: index it by a site, {e.id}[i]", e.span)
        if e.id in ("sites", "sites_count", "N"):
            return sympy.Integer(self.model.lattice.n_sites)
        return None

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        base = name_of(e.base)
        if base != self.field:
            return None
        slot = name_of(e.indices[0]) if len(e.indices) == 1 else None
        if slot is None or slot not in self.slots:
            fail("P300", f"index '{base}' by the site names of the enclosing sum: "
                 f"{base}[i] for i in sites, {base}[i] * {base}[j] for (i, j) "
                 "in bonds", e.span)  # fmt: skip
        return self.slots[slot]


@dataclass
class _Term:
    kind: str  # "site" or "bond"
    shell: int
    expr: sympy.Expr  # density in a (site) or a, b (bond), coefficient included
    span: Span


class FieldModel:
    """A compiled continuous lattice field: action S(x) -> (C,) and derived dS/dx.

    Fields x have shape (C, *lattice.shape). The action's densities are derived and lowered
    once; sums over sites and bonds are roll stencils (masked on open boundaries).
    """

    kind = "field"

    def __init__(self, model: ModelInstance):
        self.model = ir = model
        self.ir = model.ir
        if len(ir.fields) != 1:
            f = list(ir.fields.values())[1]
            fail("P800", "a continuous-field model has one field", f.span)
        self.fieldir = next(iter(ir.fields.values()))
        self.field = self.fieldir.name
        self.domain = self.fieldir.domain.kind
        lat = ir.lattice
        if lat is None or lat.complete or not hasattr(lat, "shells"):
            fail("P800", "continuous fields live on a regular lattice (square, cubic, chain, ...)",
                 self.fieldir.span)  # fmt: skip
        self.lattice = lat
        self.shape = tuple(lat.shape)
        d = ir.energy
        if d is None:
            fail("P400", f"model {ir.name} declares no action", ir.name_span,
                 f"e.g. action S = sum({self.field}[i]^2 for i in sites)")  # fmt: skip
        self.definition = d
        self.builder = FieldBuilder(ir, self.field)
        self.terms: list[_Term] = []
        self._collect(d.expr, sympy.Integer(1))
        if not self.terms:
            fail("P400", f"the action does not depend on the field '{self.field}'", d.span)
        a, b = self.builder.a, self.builder.b
        for expr, span in self.builder.nondiff:
            if expr.free_symbols & {a, b}:
                fail("P300", f"the action is not differentiable here ({type(expr).__name__}): "
                     "HMC and Langevin need dS/dx", span, "use a smooth form")  # fmt: skip
        self.site = sympy.Add(*[t.expr for t in self.terms if t.kind == "site"])
        self.bonds: dict[int, sympy.Expr] = {}
        for t in self.terms:
            if t.kind == "bond":
                self.bonds[t.shell] = self.bonds.get(t.shell, sympy.Integer(0)) + t.expr
        for shell in self.bonds:
            if shell not in lat.shells:
                fail("P400", f"lattice {lat.kind} has no neighbour shell {shell}", d.span)
        params = {sympy.Symbol(k, real=True): float(v) for k, v in self.builder.params.items()}
        self._programs: dict[str, Program] = {}
        self._sources: dict[str, str] = {}
        exprs = {"site": [self.site, sympy.diff(self.site, a)]}
        for shell, g in self.bonds.items():
            exprs[f"bond{shell}"] = [g, sympy.diff(g, a), sympy.diff(g, b)]
        try:
            for key, es in exprs.items():
                es = [sympy.simplify(x) if sympy.count_ops(x) < 40 else x for x in es]
                exprs[key] = es
                # the densities only; gradients below (HMC forces never pay for the density)
                self._lower(key, es[:1], [a] if key == "site" else [a, b], params)
        except LoweringError as exc:
            fail("P800", str(exc), d.span)
        self.derived = exprs
        self._masks: dict[tuple, Tensor] = {}
        # Bond gradients linear in the neighbour, dg/da = alpha b + A(a), dg/db = beta a + B(b)
        # (phi^4 hopping): on a periodic lattice the force is f'(x) + n_e (A + B)(x) +
        # alpha sum_e x(+e) + beta sum_e x(-e) -- neighbours summed first, one stencil per shell.
        self._linear: dict[int, tuple[float, float]] = {}
        local = exprs["site"][1]
        if lat.all_periodic:
            for shell in self.bonds:
                split = _linear_bond(exprs[f"bond{shell}"], a, b, params)
                if split is not None:
                    alpha, beta, A, B = split
                    self._linear[shell] = (alpha, beta)
                    local = local + len(lat.shells[shell]) * (A + B).xreplace({b: a})
        try:
            self._lower("force_local", [local], [a], params)
            for shell in self.bonds:
                if shell not in self._linear:
                    self._lower(f"bond{shell}_grad", exprs[f"bond{shell}"][1:], [a, b], params)
        except LoweringError as exc:
            fail("P800", str(exc), d.span)
        allowed_symmetries(ir, {"translation", "spin_flip"}, "continuous-field models")
        for s in ir.symmetries:
            if s.active and s.name == "spin_flip":
                flip = {a: -a, b: -b}
                for es in exprs.values():
                    if sympy.simplify(es[0].xreplace(flip) - es[0]) != 0:
                        fail("P500", f"the action is not invariant under {self.field} -> "
                             f"-{self.field}", s.span)  # fmt: skip
            if s.active and s.name == "translation" and not lat.all_periodic:
                fail("P500", "translation needs a periodic lattice", s.span)

    # ---------------------------------------------------------------- structure of S
    def _collect(self, e: E.Expr, coef: sympy.Expr) -> None:
        """S as a sum of coef * sum(body for ... in sites | bonds)."""
        b = self.builder
        binary, unary, red, n = as_binary(e), as_unary(e), as_reduce(e), name_of(e)
        if binary is not None and binary[0] in ("+", "-"):
            op, left, right = binary
            self._collect(left, coef)
            self._collect(right, coef if op == "+" else -coef)
        elif unary is not None and unary[0] == "-":
            self._collect(unary[1], -coef)
        elif binary is not None and binary[0] in ("*", "/"):
            op, le, ri = binary
            left, right = _has_field(le, self), _has_field(ri, self)
            if left and right:
                fail("P800", "an action is a sum of local terms: a product of two sums is not",
                     e.span)  # fmt: skip
            if op == "/" and right:
                fail("P800", "the field cannot appear in a denominator outside a sum", e.span)
            if left:
                k = b.build(ri, {})
                self._collect(le, coef * k if op == "*" else coef / k)
            elif right:
                self._collect(ri, coef * b.build(le, {}))
        elif n is not None and n in self.model.definitions and _has_field(e, self):
            self._collect(self.model.definitions[n].expr, coef)
        elif red is not None and red.func == "sum":
            self._sum(red, coef)
        elif _has_field(e, self):
            fail("P800", "the field must appear inside sum(... for i in sites) or "
                 "sum(... for (i, j) in bonds)", e.span)  # fmt: skip
        # else: a constant, irrelevant for sampling

    def _sum(self, e: E.Reduce, coef: sympy.Expr) -> None:
        if len(e.loops) != 1:
            fail("P800", "one loop per sum over the lattice", e.span)
        loop = e.loops[0]
        d = loop.domain
        shell = 1
        dname = name_of(d)
        call = as_call(d)
        if call is not None and call.func == "bonds" and len(call.args) == 1:
            shell = int(evaluate(call.args[0], self.model.params, "the shell"))
            dname = "bonds"
        if dname not in ("sites", "bonds"):
            fail("P800", "continuous-field actions sum over sites or bonds",
                 d.span if d is not None else loop.span)  # fmt: skip
        kind = "site" if dname == "sites" else "bond"
        need = 1 if kind == "site" else 2
        if len(loop.names) != need:
            fail("P302", f"a sum over {dname} binds {need} name(s)", loop.span)
        self.builder.slots = dict(zip(loop.names, (self.builder.a, self.builder.b)))
        try:
            body = self.builder.build(e.body, {})
        finally:
            self.builder.slots = {}
        self.terms.append(_Term(kind, shell, coef * body, e.span))

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
        dims = tuple(range(1, x.dim()))
        return torch.roll(x, tuple(-sign * o for o in offset), dims)

    def _lower(self, key: str, exprs: list[sympy.Expr], args: list[sympy.Symbol],
               params: dict[sympy.Symbol, float]) -> None:  # fmt: skip
        """One program per density (or its gradients) over x = phi[site] (and y = phi[site + e])."""
        names = dict(zip(args, ("x", "y")))
        prog = lower_program(exprs, args, names, params, key, backend=TORCH)
        sig = ", ".join(f"{names[s]}: torch.Tensor" for s in args)
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
        for v in self._programs[key].run(*args):
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

    def to(self, device: Any) -> FieldModel:
        return self

    def describe(self) -> str:
        shells = ", ".join(f"bonds{'' if s == 1 else f'({s})'}" for s in self.bonds)
        return (f"continuous field {self.field}: {self.domain} on {self.lattice.kind}"
                f"{list(self.shape)}; action = sites{' + ' + shells if shells else ''}; "
                "samplers hmc, mala, ula (derived dS/dx)")  # fmt: skip

    def emit_sympy(self) -> str:
        a, b = self.builder.a, self.builder.b
        lines = [f"# model {self.ir.name}: S = sum_i f({a}) + sum_<ij> g({a}, {b})",
                 f"f = {self.derived['site'][0]}", f"df/d{a} = {self.derived['site'][1]}"]
        for shell in self.bonds:
            g = self.derived[f"bond{shell}"]
            lines += [f"g (shell {shell}) = {g[0]}", f"dg/d{a} = {g[1]}", f"dg/d{b} = {g[2]}"]
        lines.append(f"dS/d{self.field}[x] = df/d{a}(x) + sum_e [dg/d{a}(x, x+e) + "
                     f"dg/d{b}(x-e, x)]")  # fmt: skip
        return "\n".join(lines)

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
                             for off in self.lattice.shells[shell])
            downs = " + ".join(f"torch.roll(x, {tuple(off)}, {tuple(range(1, 1 + len(off)))})"
                               for off in self.lattice.shells[shell])
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


def _linear_bond(es: list[sympy.Expr], a: sympy.Symbol, b: sympy.Symbol,
                 params: dict[sympy.Symbol, float]) -> tuple[float, float, sympy.Expr, sympy.Expr] | None:  # fmt: skip
    """(alpha, beta, A(a), B(b)) when dg/da = alpha b + A(a) and dg/db = beta a + B(b)."""
    bind = {s: sympy.Float(v, 17) for s, v in params.items()}
    ga, gb = (sympy.expand(e.xreplace(bind)) for e in es[1:])
    alpha, beta = sympy.diff(ga, b), sympy.diff(gb, a)
    if alpha.free_symbols or beta.free_symbols:
        return None
    A, B = sympy.expand(ga - alpha * b), sympy.expand(gb - beta * a)
    if b in A.free_symbols or a in B.free_symbols:
        return None
    return float(alpha), float(beta), A, B


def _has_field(e: E.Expr, model: FieldModel) -> bool:
    stack = [e]
    while stack:
        x = stack.pop()
        n = name_of(x)
        if n is not None:
            if n == model.field:
                return True
            d = model.model.definitions.get(n)
            if d is not None and _has_field(d.expr, model):
                return True
        call = as_call(x)
        if call is not None and call.func in model.model.definitions:
            return True
        stack.extend(children(x))
    return False


def compile_field(model: ModelInstance, **options: Any) -> FieldModel:
    return FieldModel(model)


__all__ = ["FieldModel", "compile_field"]

