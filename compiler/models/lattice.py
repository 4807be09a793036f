"""A compiled classical lattice model: lowered energy, derived local energies, colourings,
cluster couplings, user observables, symmetry verification and readable emitted code."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
import torch

from physml_lang.compiler.derive import local as derive
from physml_lang.compiler.derive.lattice import derive_lattice, describe_lattice
from physml_lang.compiler.derive.local import CANDIDATE
from physml_lang.compiler.geometry import BondType, roll_arguments
from physml_lang.compiler.instance import ModelInstance, numeric_variant
from physml_lang.compiler.lower.domains import SiteDomain, site_domain
from physml_lang.compiler.lower.kernels import (
    KernelSpec,
    ineligible,
    numba_source,
    triton_source,
)
from physml_lang.compiler.lower.lattice import (
    PATHS,
    LatticeKernels,
    LatticeSumModule,
    LocalEnergyModule,
    SublatticeKernels,
    _is_pair_stencil,
    _pair_ends,
)
from physml_lang.compiler.lower.program import Kernel, Parameter, ParameterValue
from physml_lang.compiler.lower.terms import (
    Access,
    LatticeSum,
    PairTerm,
    StencilTerm,
    TermBuilder,
    access_symbol,
)
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir import expr as E
from physml_lang.ir.model import ModelIR


@dataclass
class FieldKernels:
    """Everything a single-site sampler of one field needs."""

    field: str
    local_energy: LocalEnergyModule
    flip_delta: SublatticeKernels | None  # Delta E of flipping each site, two-valued domains
    colours: torch.Tensor | None  # (N,) colour of each site, or None: random-site updates
    n_colours: int


def default_path(model: ModelInstance) -> str:
    lat = model.lattice
    if lat.complete:
        return "dense"
    return "roll" if lat.all_periodic else "gather"


class LatticeModel:
    """A model instantiated, lowered and verified.

    ``energy(state)`` -> (B,) for state (B, *lattice.shape) (or a dict of fields).

    ``numeric``: parameters to lower as kernel inputs rather than constants, so that a scan
    over them rebinds tensors (:meth:`rebind`) instead of compiling again. They stay numeric
    only where the energy's terms, and so every derived structure (local energies, colouring,
    cluster couplings), are the same as with their values substituted; ``self.numeric`` says
    which are.
    """

    kind = "lattice"

    def __init__(self, model: ModelInstance, path: str | None = None, dtype=torch.float32,
                 numeric: frozenset[str] = frozenset()):  # fmt: skip
        derivation = derive_lattice(model)
        self.model = model
        self.derivation = derivation
        self.ir = model.ir
        self.lattice = model.lattice
        self.path = path or default_path(model)
        if self.path not in PATHS:
            raise ValueError(f"unknown lowering path {self.path}")
        if self.path == "roll" and not self.lattice.all_periodic:
            self.path = "gather"
        self.dtype = dtype
        self.energy_sum = derivation.energy
        self.numeric = frozenset()
        if numeric and self.path != "dense" and model.energy is not None:
            symbolic = TermBuilder(model, numeric=numeric).lattice_sum(model.energy.expr)
            if term_structure(symbolic) == term_structure(derivation.energy):
                self.energy_sum, self.numeric = symbolic, frozenset(numeric)
        self.kernels = LatticeKernels(model, self.path, dtype, self.numeric)
        self.energy = LatticeSumModule(model, self.energy_sum, self.kernels, "energy")
        self.masked = not (self.path == "roll" and self.lattice.all_periodic)
        self.fields: dict[str, FieldKernels] = {}
        for name, f in model.fields.items():
            if f.domain.discrete and f.on == "sites":
                self.fields[name] = self._field_kernels(name)

    # ---------------------------------------------------------------- derivations
    def _field_kernels(self, name: str) -> FieldKernels:
        model, lat = self.model, self.lattice
        dense_from_stencil = self.path == "dense" and not lat.complete
        stencil_part = LatticeSum([t for t in self.energy_sum.terms if isinstance(t, PairTerm)
                                   or not (dense_from_stencil and _is_pair_stencil(t))])  # fmt: skip
        local = derive.local_energy(stencil_part, name, self.masked, lat.basis)
        module = LocalEnergyModule(local, self.energy.dense, self.kernels, self.path == "dense")
        domain = model.fields[name].domain
        delta = None
        if len(domain.values()) == 2 and not module.dense:
            exprs, inputs = [], {}
            for b in range(lat.basis):
                here = Access("field", name, (0,) * lat.dim, basis=b)
                current = access_symbol(here)
                expr = derive.flip_delta(local, domain, current, b)
                inputs.update({s: w for s, w in local.inputs.items() if s in expr.free_symbols})
                inputs[current] = here
                exprs.append(expr)
            delta = SublatticeKernels(f"flip_delta_{name}", tuple(exprs), inputs, self.kernels)
        table = self.derivation.colouring(name)
        colours = torch.as_tensor(table, device=self.kernels.device) if table is not None else None
        n = int(colours.max()) + 1 if colours is not None else 0
        return FieldKernels(name, module, delta, colours, n)

    def cluster_couplings(self, field: str) -> list[tuple[object, torch.Tensor]]:
        """Couplings K of E = -sum K_ij s_i s_j: per stencil term (its bond type, K (N,) on the
        bond's first site), ("edges", (i, j, K)) per listed bond of a graph, or
        ("dense", K (N, N))."""
        lat, dev = self.lattice, self.kernels.device
        out = []
        for term, k in derive.pair_couplings(self.energy_sum, field):
            syms = [s for s in k.free_symbols if not isinstance(s, Parameter)]
            env = {s: self.kernels.parameter(s.name) for s in k.free_symbols
                   if isinstance(s, Parameter)}  # fmt: skip
            for s in syms:
                a = term.accesses[s]
                arr = self.kernels.array(a.name)
                if isinstance(term, PairTerm):
                    env[s] = arr
                else:
                    if a.component is not None:
                        arr = arr[..., a.component]
                    arr = self.kernels.sublattice(arr, a)
                    env[s] = self.kernels.shifted(arr, a.offset, batched=False).reshape(-1)
            vals = Kernel("coupling", k, {s: term.accesses[s] for s in syms}, backend=TORCH)(env)
            N = lat.n_sites
            if isinstance(term, PairTerm) and term.structure == "bonds" and \
                    lat.edge_list is not None:  # fmt: skip
                bonds = torch.as_tensor(lat.bond_list(1)[:, :2], device=dev)
                K = torch.as_tensor(vals, dtype=self.dtype, device=dev)
                K = K[bonds[:, 0], bonds[:, 1]] if K.dim() == 2 else K * torch.ones(
                    len(bonds), dtype=self.dtype, device=dev)  # fmt: skip
                out.append(("edges", (bonds[:, 0], bonds[:, 1], K)))
            elif isinstance(term, PairTerm):
                K = torch.as_tensor(vals, dtype=self.dtype, device=dev) * torch.ones(
                    N, N, dtype=self.dtype, device=dev)
                K = torch.triu(K, 1)
                out.append(("dense", K + K.T))
            else:
                (base, a), (other, b) = _pair_ends(term)
                if any(base):
                    raise PhysmlError(Diagnostic("P504", "unsupported bond shape for cluster "
                                                 "updates", term.span))  # fmt: skip
                K = torch.as_tensor(vals, dtype=self.dtype, device=dev) * torch.ones(
                    lat.n_cells, dtype=self.dtype, device=dev)
                if lat.basis > 1:  # K lives on the first end's sublattice
                    K = torch.zeros(lat.n_cells, lat.basis, dtype=self.dtype,
                                    device=dev).index_copy(
                        1, torch.tensor([a], device=dev), K[:, None]).reshape(-1)  # fmt: skip
                out.append((BondType(a, b, other), K))
        return out

    # ---------------------------------------------------------------- observables
    def lattice_sum_module(self, expr: E.Expr, name: str) -> LatticeSumModule:
        """An extensive user observable (any expression of sums over the lattice)."""
        lsum = TermBuilder(self.model, numeric=self.numeric).lattice_sum(expr)
        return LatticeSumModule(self.model, lsum, self.kernels, name)

    def magnetization(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Total magnetisation M of the first discrete field, as its domain defines it: the sum
        of the values (spin, spin S, integer), of 2 s - 1 (binary), or the Potts order
        parameter N (q max_k n_k / N - 1) / (q - 1)."""
        name, f = next((n, f) for n, f in self.model.fields.items() if f.domain.discrete)
        s = state[name]
        return self.domain(name).magnetization(s.reshape(s.shape[0], -1))

    def domain(self, field: str) -> SiteDomain:
        """The lowered domain of a discrete field: values, proposals, flip, magnetization."""
        return site_domain(self.model.fields[field].domain, self.dtype)

    # ---------------------------------------------------------------- symmetry actions
    @property
    def symmetries(self) -> tuple[str, ...]:
        """The declared symmetries that hold for these parameters (verified when compiled)."""
        return tuple(s.name for s in self.model.symmetries if s.active)

    def spin_flip(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The global flip of every discrete field, as its domain defines it: s -> -s (spin,
        spin S, z2), 1 - s (binary), s + 1 mod q (potts); other fields unchanged.
        State {field: (B, *lattice.shape)}."""
        fields = self.model.fields
        return {name: self.domain(name).flip(s)
                if name in fields and fields[name].domain.discrete else s
                for name, s in state.items()}  # fmt: skip

    def translate(self, state: dict[str, torch.Tensor],
                  shift: tuple[int, ...]) -> dict[str, torch.Tensor]:  # fmt: skip
        """The translation x -> x + shift of every field, on a periodic lattice (one entry of
        ``shift`` per cell axis). State {field: (B, *lattice.shape)}."""
        lat = self.lattice
        if lat.complete or not lat.all_periodic:
            raise ValueError("translations act on periodic lattices, not on "
                             f"{describe_lattice(lat)}")
        if len(shift) != lat.dim:
            raise ValueError(f"a translation of a {lat.dim}-dimensional lattice has "
                             f"{lat.dim} components, not {len(shift)}")  # fmt: skip
        # x -> x + t moves the value at x - t to x: whole cells move, sublattices are kept
        shifts, dims = roll_arguments(tuple(-t for t in shift))
        return {n: torch.roll(s, shifts=shifts, dims=dims) if dims else s
                for n, s in state.items()}  # fmt: skip

    def describe(self) -> str:
        """One line for ``physml check``."""
        syms = [s.name for s in self.model.symmetries if s.active]
        return (f"{describe_lattice(self.lattice)}, {len(self.energy_sum.terms)} energy terms, "
                f"lowered by {self.path}; symmetries verified: {', '.join(syms) or 'none declared'}")  # fmt: skip

    def rebind(self, ir: ModelIR) -> bool:
        """Take the numeric parameter values of ``ir`` (the same model at another scan point)
        without compiling again: its derivation is re-checked (symmetries verified with the new
        values) and must have the same terms; False where it does not (compile it instead)."""
        model = numeric_variant(self.model, ir, self.numeric)
        if model is None:
            return False
        derivation = derive_lattice(model)
        if term_structure(derivation.energy) != term_structure(self.derivation.energy):
            return False
        self.kernels.rebind({k: model.params[k] for k in self.numeric})
        self.model, self.ir, self.derivation = model, model.ir, derivation
        return True

    def to(self, device) -> LatticeModel:
        self.kernels.to(device)
        for fk in self.fields.values():
            if fk.colours is not None:
                fk.colours = fk.colours.to(device)
        for p in self.energy.dense:
            p.matrix = p.matrix.to(device)
        return self

    # ---------------------------------------------------------------- emitted code
    def emit_sympy(self) -> str:
        sym = TermBuilder(self.model, symbolic=True).lattice_sum(self.ir.energy.expr)
        lines = [
            f"# model {self.ir.name}: derived by sympy",
            f"# lattice: {describe_lattice(self.lattice)}",
        ]
        lines.append(f"energy {self.ir.energy.name} = constant + sum over terms")
        lines.append(f"  constant: {sym.constant}")
        for t in sym.terms:
            where = "sum_x" if isinstance(t, StencilTerm) else "sum_{i<j}"
            lines.append(f"  {where} [{t.structure}]: {t.body}")
        nb = self.lattice.basis
        for name in self.fields:
            stencil = LatticeSum([t for t in sym.terms])
            local = derive.local_energy(stencil, name, self.masked, nb)
            for b, expr in enumerate(local.exprs):
                at = f"{name}[x]" if nb == 1 else f"{name}[x] on sublattice {b}"
                lines.append(f"local energy of {at} with value v: E_loc = {expr}")
            if local.pairs:
                lines.append("  + dense pair part: f(v) (U g(s))_x + g(v) (U^T f(s))_x")
            fk = self.fields[name]
            dom = self.model.fields[name].domain
            if len(dom.values()) == 2 and not local.pairs:
                for b in range(nb):
                    cur = access_symbol(Access("field", name, (0,) * self.lattice.dim, basis=b))
                    at = f"{name}[x]" if nb == 1 else f"{name}[x] on sublattice {b}"
                    lines.append(f"flip energy change of {at}: dE = "
                                 f"{derive.flip_delta(local, dom, cur, b)}")  # fmt: skip
            if fk.colours is not None:
                pairs = derive.interaction_pairs(sym, name)
                how = ([t.offset for t in pairs] if nb == 1 else
                       [(t.a, t.b, t.offset) for t in pairs])  # fmt: skip
                what = "interaction offsets" if nb == 1 else "interactions (a, b, cell offset)"
                lines.append(f"colouring of {name} for parallel updates: {fk.n_colours} colours "
                             f"({what} {how})")  # fmt: skip
            else:
                lines.append(f"colouring of {name}: none applies; random-site updates")
        return "\n".join(lines)

    def kernel_spec(self, field: str, rule: str, schedule: str,
                    per_cell: bool = False) -> tuple[KernelSpec | None, str]:  # fmt: skip
        """The generated-kernel spec of ``rule`` updates of ``field`` on ``schedule``, or None
        and why the model admits none (see compiler.lower.kernels)."""
        lat, fk = self.lattice, self.fields[field]
        if lat.graph:
            return None, "kernels are generated for periodic lattices, not for graphs"
        if not lat.all_periodic:
            return None, "kernels are generated for periodic lattices: this one has open boundaries"
        if fk.local_energy.dense:
            return None, "the local energy has a dense (all-pairs) part"
        parts = list(fk.local_energy.stencil.parts)
        for k in parts + (list(fk.flip_delta.parts) if fk.flip_delta is not None else []):
            for what in k.inputs.values():
                if isinstance(what, Access):
                    if what.kind != "field" or what.name != field:
                        return None, f"the local energy reads {what.kind} '{what.name}'"
                elif what != "candidate" and not isinstance(what, ParameterValue):
                    return None, "the local energy reads site-dependent inputs"
        reads = tuple(tuple(sorted(((w.offset, w.basis) for w in kernel_reads(p, field, b, lat.dim)),
                                   key=lambda r: (r[0], r[1])))
                      for b, p in enumerate(parts))  # fmt: skip
        q = len(self.model.fields[field].domain.values())
        why = ineligible(rule, schedule, tuple(lat.cells), q, reads)
        if why:
            return None, why
        bits = 24 if self.dtype in (torch.float32, torch.float16, torch.bfloat16) else 53
        describe = tuple(f"local energy of {field} (sublattice {b}): {p.expr}"
                         for b, p in enumerate(parts))  # fmt: skip
        return KernelSpec(rule, schedule, lat.dim, lat.basis, q, reads, bits, per_cell,
                          describe), ""  # fmt: skip

    def _emit_kernels(self, emit) -> str:
        out = []
        for name, fk in self.fields.items():
            q = len(self.model.fields[name].domain.values())
            schedule = "colours" if fk.colours is not None else "random_site"
            for rule in ("flip" if q == 2 else "metropolis", "heatbath"):
                spec, why = self.kernel_spec(name, rule, schedule)
                out.append(f"# field {name}, {rule} updates: " + (why or "generated kernel")
                           if spec is None else emit(spec))  # fmt: skip
        if not out:
            raise PhysmlError(Diagnostic("P800", f"model {self.ir.name} has no discrete field "
                                         "on sites: no local-update kernels to emit"))  # fmt: skip
        return "\n\n".join(out)

    def emit_triton(self) -> str:
        return self._emit_kernels(triton_source)

    def emit_numba(self) -> str:
        return self._emit_kernels(numba_source)

    def emit_torch(self) -> str:
        lines = [
            f"# generated by physml for model {self.ir.name} ({describe_lattice(self.lattice)}), "
            f"path = {self.path}",
            "# state[f]: (B, *lattice.shape) tensor of field f; arrays and tables are buffers"
            + ("\n# (its last axis holds the sublattices)" if self.lattice.basis > 1 else ""),
            "import math",
            "import torch",
            "",
        ]
        describe = self._describe_input
        dims = list(self.kernels.dims)
        if self.energy.density.expr != 0:
            lines.append(self.energy.density.source(describe))
            lines.append(f"# energy(state) = density(state).sum(dim={dims})")
        for i, p in enumerate(self.energy.dense):
            lines.append(f"# dense piece {i}: energy += (f{i}(s) * (g{i}(s) @ U{i}.T)).sum(-1),")
            lines.append(f"# U{i} an (N, N) coupling matrix (buffer), f{i} and g{i} below")
            p.f.name, p.g.name = f"f{i}", f"g{i}"
            lines.append(p.f.source(describe))
            lines.append(p.g.source(describe))
        for fk in self.fields.values():
            lines.append("")
            lines.append(fk.local_energy.stencil.source(describe))
            for i in range(len(fk.local_energy.dense)):
                lines.append(f"# + f{i}(v) * (g{i}(s) @ U{i}.T)[x] + g{i}(v) * (f{i}(s) @ U{i})[x]")
            if fk.flip_delta is not None:
                lines.append("")
                lines.append(fk.flip_delta.source(describe))
        return "\n".join(lines) + "\n"

    def _describe_input(self, sym: sp.Symbol, what) -> str | None:
        if what in ("candidate", "value"):
            return None  # an argument of the generated function
        if what == "array":
            return f"state['{sym}']  # a per-site array"
        if isinstance(what, derive.Valid):
            return f"valid[{what.offset}]  # 1 where x + {what.offset} is a site"
        if isinstance(what, ParameterValue):
            return f"parameters['{what.name}']  # rebound at each scan point"
        if isinstance(what, Access):
            src = f"state['{what.name}']" if what.kind == "field" else f"state['{what.name}']"
            if what.component is not None:
                src += f"[..., {what.component}]"
            elif self.lattice.basis > 1:  # the sublattice read
                src += f"[..., {what.basis}]"
            if not any(what.offset):
                return src
            if self.path == "roll" and self.lattice.all_periodic:
                shifts, dims = roll_arguments(what.offset, 1 if what.kind == "field" else 0)
                return f"torch.roll({src}, shifts={list(shifts)}, dims={list(dims)})"
            return f"gather({src}, neighbour_table[{what.offset}])"
        return str(what)


__all__ = ["LatticeModel", "FieldKernels", "CANDIDATE"]


def kernel_reads(kernel: Kernel, field: str, b: int, nd: int) -> list[Access]:
    """The sites of ``field`` a lowered part for sublattice b reads, besides the site itself."""
    here = Access("field", field, (0,) * nd, basis=b)
    return [w for w in kernel.inputs.values()
            if isinstance(w, Access) and w.kind == "field" and w.name == field and w != here]


def term_structure(lsum: LatticeSum) -> list[tuple]:
    """What every derivation of a lattice sum depends on besides coefficient values: per term
    its kind and accesses (sorted), and whether a constant is present."""
    terms = sorted((type(t).__name__, tuple(sorted(map(repr, t.accesses.values()))))
                   for t in lsum.terms)  # fmt: skip
    return [*terms, ("constant", lsum.constant != 0)]
