"""Lowered energies of classical lattice models: torch modules built from lattice terms.

Configurations of a field on sites are tensors of shape (B, *lattice.shape) (B independent
chains or samples; the last axis holds the sublattices of a lattice with a basis); values are
the domain's values (±1, 0/1, 0..q-1, -S..S) as floats. Stencil kernels run over unit cells:
an access reads one sublattice, shifted by whole cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import sympy as sp
import torch
from torch import nn

from physml_lang.compiler.derive.local import (
    CANDIDATE,
    VALUE,
    LocalEnergy,
    Valid,
    decompose_pair,
    expand_deltas,
    valid_symbol,
)
from physml_lang.compiler.geometry import Lattice, roll_arguments
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import Kernel, Parameter, ParameterValue
from physml_lang.compiler.lower.terms import Access, LatticeSum, Offset, PairTerm, StencilTerm
from physml_lang.diagnostics import Diagnostic, PhysmlError

from .torch_backend import TORCH

PATHS = ("roll", "gather", "dense")


@dataclass
class DensePiece:
    """sum_{x,y} f(s_x) U_{xy} g(s_y) with U of zero diagonal; f, g functions of one value.
    U is sparse (COO, one entry per bond) on a graph read from an edge list: O(bonds) memory
    and work instead of O(N^2)."""

    field: str
    matrix: torch.Tensor  # (N, N), dense or sparse COO
    f: Kernel  # of VALUE and site arrays at x
    g: Kernel
    f_arrays: dict[sp.Symbol, str]
    g_arrays: dict[sp.Symbol, str]

    def times(self, x: torch.Tensor) -> torch.Tensor:
        """x U^T for rows x (B, N): (U x_b)_i = sum_j U_ij x_bj."""
        if self.matrix.is_sparse:
            return torch.sparse.mm(self.matrix, x.T).T
        return x @ self.matrix.T

    def times_transposed(self, x: torch.Tensor) -> torch.Tensor:
        """x U for rows x (B, N): (U^T x_b)_j."""
        if self.matrix.is_sparse:
            return torch.sparse.mm(self.matrix.t(), x.T).T
        return x @ self.matrix

    def rows(self, sites: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U[x_b, :], U[:, x_b]) for one site per chain, each (B, N) dense."""
        if self.matrix.is_sparse:
            return (self.matrix.index_select(0, sites).to_dense(),
                    self.matrix.index_select(1, sites).to_dense().T)  # fmt: skip
        return self.matrix[sites], self.matrix[:, sites].T


class LatticeKernels(nn.Module):
    """Holds a model's arrays, neighbour tables, dense matrices and the values of its numeric
    parameters (buffers follow ``.to``) and provides kernel inputs on the chosen lowering path.
    ``numeric``: the parameters lowered as inputs; ``rebind`` sets their values in place."""

    def __init__(self, model: ModelInstance, path: str, dtype: torch.dtype,
                 numeric: frozenset[str] = frozenset()):  # fmt: skip
        super().__init__()
        self.model = model
        self.lattice: Lattice = model.lattice
        self.path = path
        self.dtype = dtype
        self.dims = tuple(range(1, self.lattice.dim + 1))
        for name, arr in model.arrays.items():
            self.register_buffer(f"array_{name}", torch.as_tensor(arr.values, dtype=dtype,
                                                                 device="cpu"))
        self.numeric = numeric
        for name in numeric:
            self.register_buffer(f"parameter_{name}",
                                 torch.tensor(float(model.params[name]), dtype=dtype,
                                              device="cpu"))  # fmt: skip
        self._tables: dict[Offset, str] = {}

    @property
    def device(self) -> torch.device:
        """Where the buffers live: the CPU when built, the run's device after ``.to``."""
        buf = next(iter(self.buffers()), None)
        return torch.device("cpu") if buf is None else buf.device

    def parameter(self, name: str) -> torch.Tensor:
        """The current value of numeric parameter ``name`` (a 0-d tensor on the device)."""
        return getattr(self, f"parameter_{name}")

    def rebind(self, values: dict[str, float]) -> None:
        """New values of the numeric parameters, written into their tensors in place."""
        for name in self.numeric:
            self.parameter(name).fill_(float(values[name]))

    # ---------------------------------------------------------------- tables
    def table(self, offset: Offset) -> tuple[torch.Tensor, torch.Tensor]:
        name = self._tables.get(offset)
        if name is None:
            idx, valid = self.lattice.neighbour_table(offset)
            name = f"table_{len(self._tables)}"
            device = self.device
            self.register_buffer(name + "_idx", torch.as_tensor(idx, device=device))
            self.register_buffer(name + "_valid",
                                 torch.as_tensor(valid, device=device, dtype=self.dtype))
            self._tables[offset] = name
        return getattr(self, name + "_idx"), getattr(self, name + "_valid")

    def array(self, name: str) -> torch.Tensor:
        return getattr(self, f"array_{name}")

    def sublattice(self, x: torch.Tensor | tuple[torch.Tensor, ...], access: Access) -> torch.Tensor:
        """The values of ``access``'s sublattice: x[..., b] on a lattice with a basis (or the
        b-th entry when a sampler holds the field as one tensor per sublattice)."""
        if isinstance(x, tuple):
            return x[access.basis]
        if self.lattice.basis == 1 or access.component is not None:
            return x
        return x[..., access.basis]

    # ---------------------------------------------------------------- reading values
    def shifted(self, x: torch.Tensor, offset: Offset, batched: bool) -> torch.Tensor:
        """Value at site + offset for every site; x is (B, *shape) or (*shape)."""
        if not any(offset):
            return x
        lead = 1 if batched else 0
        if self.path == "roll" and self.lattice.all_periodic:
            shifts, dims = roll_arguments(offset, lead)
            return torch.roll(x, shifts=shifts, dims=dims)
        idx, _ = self.table(offset)
        shape = x.shape
        flat = x.reshape(*shape[:lead], -1)
        return flat[..., idx].reshape(shape)

    def at_sites(self, x: torch.Tensor, offset: Offset, sites: torch.Tensor, batched: bool):
        """Value at sites[b] + offset: x is (B, *shape) (batched) or (*shape); sites (B,)."""
        idx = self.table(offset)[0][sites] if any(offset) else sites
        if batched:
            return x.reshape(x.shape[0], -1).gather(1, idx[:, None])[:, 0]
        return x.reshape(-1)[idx]

    def valid(self, offset: Offset, sites: torch.Tensor | None) -> torch.Tensor:
        _, v = self.table(offset)
        return v[sites] if sites is not None else v.reshape(self.lattice.cells)

    def inputs(self, kernel: Kernel, state: dict[str, torch.Tensor], sites=None, extra=None):
        """The environment of a stencil kernel: every input as a thunk that reads it from the
        state when first needed (so neighbour values are not all materialised at once)."""
        env: dict = {}
        for sym, what in kernel.inputs.items():
            if isinstance(what, Access):
                if what.kind == "field":
                    x, batched = state[what.name], True
                else:
                    x, batched = self.array(what.name), False
                    if what.component is not None:
                        x = x[..., what.component]
                x = self.sublattice(x, what)
                if not any(what.offset):
                    env[sym] = x if sites is None else self.at_sites(x, what.offset, sites, batched)
                elif sites is None:
                    env[sym] = partial(self.shifted, x, what.offset, batched)
                else:
                    env[sym] = partial(self.at_sites, x, what.offset, sites, batched)
            elif isinstance(what, Valid):
                env[sym] = partial(self.valid, what.offset, sites)
            elif isinstance(what, ParameterValue):
                env[sym] = self.parameter(what.name)
        if extra:
            env.update(extra)
        return env


def _stencil_kernel(name: str, lsum: LatticeSum, masked: bool) -> Kernel:
    """One kernel for all stencil terms: per-site energy density (masked at open boundaries)."""
    expr = sp.Integer(0)
    inputs: dict = {}
    for t in lsum.terms:
        if not isinstance(t, StencilTerm):
            continue
        body = t.body
        if masked:
            for acc in t.accesses.values():
                if any(acc.offset):
                    v = valid_symbol(acc.offset)
                    inputs[v] = Valid(acc.offset)
                    body = body * v
        inputs.update({s: a for s, a in t.accesses.items()})
        expr += body
    return Kernel(name, sp.expand(expr), inputs, backend=TORCH)


class LatticeSumModule(nn.Module):
    """An extensive quantity sum_x density(x) + sum_{i<j} pair terms, on a chosen path.

    forward(state) -> (B,) where state maps field names to (B, *lattice.shape) tensors.
    """

    def __init__(self, model: ModelInstance, lsum: LatticeSum, kernels: LatticeKernels, name: str):
        super().__init__()
        self.kernels = kernels
        self.lsum = lsum
        self.constant = complex(lsum.constant) if lsum.constant.free_symbols == set() else 0.0
        if isinstance(self.constant, complex) and self.constant.imag == 0:
            self.constant = self.constant.real
        # a constant of numeric parameters (e.g. -J * N * c): evaluated with their values
        self.constant_kernel = None
        if lsum.constant.free_symbols and all(isinstance(s, Parameter)
                                              for s in lsum.constant.free_symbols):  # fmt: skip
            self.constant_kernel = Kernel(f"{name}_constant", lsum.constant, {}, backend=TORCH)
        path = kernels.path
        masked = not (path == "roll" and model.lattice.all_periodic)
        dense_from_stencil = path == "dense" and not model.lattice.complete
        stencil = LatticeSum(
            [
                t
                for t in lsum.terms
                if isinstance(t, StencilTerm) and not (dense_from_stencil and _is_pair_stencil(t))
            ],  # fmt: skip
        )
        self.density = _stencil_kernel(f"{name}_density", stencil, masked)
        self.dense = build_dense_pieces(model, lsum, kernels, dense_from_stencil)

    def forward(self, state: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        state = self.as_state(state)
        some = next(iter(state.values()))
        B = some.shape[0]
        dims = self.kernels.dims
        out = torch.zeros(B, dtype=self.kernels.dtype, device=some.device) + self.constant
        if self.constant_kernel is not None:
            out = out + self.constant_kernel(self.kernels.inputs(self.constant_kernel, state))
        if self.density.expr != 0:
            dens = self.density(self.kernels.inputs(self.density, state))
            dens = torch.as_tensor(dens, device=some.device).expand(B, *self.kernels.lattice.cells)
            out = out + dens.sum(dim=dims)
        for p in self.dense:
            s = state[p.field].reshape(B, -1)
            f = _eval_site(p.f, p.f_arrays, s, self.kernels)
            g = _eval_site(p.g, p.g_arrays, s, self.kernels)
            out = out + (f * p.times(g)).sum(-1)
        return out

    def as_state(self, state) -> dict[str, torch.Tensor]:
        if isinstance(state, torch.Tensor):
            fields = list(self.kernels.model.fields)
            return {fields[0]: state.to(self.kernels.dtype)}
        return state


def _is_pair_stencil(t: StencilTerm) -> bool:
    return len({(a.offset, a.basis) for a in t.accesses.values() if a.kind == "field"}) == 2


def _eval_site(k: Kernel, arrays: dict[sp.Symbol, str], value, kernels: LatticeKernels, sites=None):
    env = {VALUE: value}
    for sym, name in arrays.items():
        a = kernels.array(name).reshape(-1)
        env[sym] = a[sites] if sites is not None else a
    out = k(env)
    if not isinstance(out, torch.Tensor) or out.shape != value.shape:
        out = torch.as_tensor(out, dtype=value.dtype, device=value.device).expand_as(value)
    return out


def build_dense_pieces(
    model: ModelInstance, lsum: LatticeSum, kernels: LatticeKernels, from_stencil: bool
) -> list[DensePiece]:
    """Decompose pair interactions into rank-one matrix products."""
    lat = model.lattice
    N = lat.n_sites
    domains = {n: f.domain for n, f in model.fields.items()}
    pieces: list[DensePiece] = []
    terms: list[tuple[object, dict[sp.Symbol, str], dict[sp.Symbol, Access]]] = []
    for t in lsum.terms:
        if isinstance(t, PairTerm):
            slot_of = {s: a.slot for s, a in t.accesses.items()}
            terms.append((t, slot_of, t.accesses))
        elif from_stencil and isinstance(t, StencilTerm) and _is_pair_stencil(t):
            ends = _pair_ends(t)
            slot_of = {}
            for s, a in t.accesses.items():
                if a.kind == "array" and a.component is not None:
                    slot_of[s] = "ij"
                else:
                    slot_of[s] = "i" if (a.offset, a.basis) == ends[0] else "j"
            terms.append((t, slot_of, t.accesses))
    for t, slot_of, accesses in terms:
        body = expand_deltas(t.body, accesses, domains)
        parts = decompose_pair(body, slot_of, span=t.span)
        if parts is None:
            raise PhysmlError(Diagnostic(
                "P802", "this pair interaction is not a sum of products f(s_i) g(s_j); it "
                "cannot be lowered to matrix products", t.span))  # fmt: skip
        fields = {a.name for a in accesses.values() if a.kind == "field"}
        if len(fields) != 1:
            raise PhysmlError(Diagnostic("P804", "pair terms between two different fields are "
                                         "not supported yet", t.span))  # fmt: skip
        field = fields.pop()
        for c, f, g in parts:
            matrix = _coefficient_matrix(c, slot_of, accesses, t, kernels, N)
            fk, fa = _site_function(f, "i", slot_of, accesses)
            gk, ga = _site_function(g, "j", slot_of, accesses)
            pieces.append(DensePiece(field, matrix, fk, gk, fa, ga))
    return pieces


def _coefficient_matrix(c, slot_of, accesses, t, kernels: LatticeKernels, N: int) -> torch.Tensor:
    dtype, dev = kernels.dtype, kernels.device
    pair_syms = [s for s in c.free_symbols if slot_of.get(s) == "ij"]
    if isinstance(t, PairTerm):
        env = {s: kernels.array(accesses[s].name) for s in pair_syms}
        k = Kernel("coefficient", c, {s: accesses[s] for s in pair_syms}, backend=TORCH)
        vals = k(env)
        if t.structure == "bonds" and kernels.lattice.edge_list is not None:
            # one entry per listed bond (i < j): coefficients of pair arrays read at the bonds
            bonds = torch.as_tensor(kernels.lattice.bond_list(1)[:, :2], device=dev)
            i, j = bonds[:, 0], bonds[:, 1]
            v = torch.as_tensor(vals, dtype=dtype, device=dev)
            v = v[i, j] if v.dim() == 2 else v * torch.ones(len(i), dtype=dtype, device=dev)
            return torch.sparse_coo_tensor(torch.stack([i, j]), v, (N, N), device=dev,
                                           check_invariants=True).coalesce()
        full = torch.as_tensor(vals, dtype=dtype, device=dev) * torch.ones(N, N, dtype=dtype,
                                                                           device=dev)
        return torch.triu(full, diagonal=1)
    # a stencil pair term over cells n, between sites (n + d_i, a) and (n + d_j, b):
    # U[(n + d_i, a), (n + d_j, b)] = c(n) where both cells exist
    env = {}
    for s in pair_syms:
        a = accesses[s]
        arr = kernels.array(a.name)[..., a.component]
        env[s] = kernels.shifted(arr, a.offset, batched=False).reshape(-1)
    vals = Kernel("coefficient", c, {s: accesses[s] for s in pair_syms}, backend=TORCH)(env)
    lat = kernels.lattice
    coeff = (torch.as_tensor(vals, dtype=dtype, device=dev)
             * torch.ones(lat.n_cells, dtype=dtype, device=dev))
    (di, a), (dj, b) = _pair_ends(t)
    ii, vi = (torch.as_tensor(x, device=dev) for x in lat.neighbour_table(di))
    jj, vj = (torch.as_tensor(x, device=dev) for x in lat.neighbour_table(dj))
    matrix = torch.zeros(N, N, dtype=dtype, device=dev)
    weight = coeff * (vi & vj).to(dtype)
    matrix.index_put_((ii * lat.basis + a, jj * lat.basis + b), weight, accumulate=True)
    return matrix


def _pair_ends(t: StencilTerm) -> list[tuple[Offset, int]]:
    """The two (cell offset, sublattice) ends of a pair stencil term, the base cell's first."""
    ends = {(a.offset, a.basis) for a in t.accesses.values() if a.kind == "field"}
    return sorted(ends, key=lambda e: (any(e[0]), e[1], e[0]))


def _site_function(expr, slot, slot_of, accesses):
    """f(s_x, arrays at x) as a kernel of VALUE and site-array symbols."""
    subs, arrays = {}, {}
    for s in expr.free_symbols:
        if slot_of.get(s) != slot:
            continue
        a = accesses[s]
        if a.kind == "field":
            subs[s] = VALUE
        else:
            arrays[s] = a.name
    e = expr.xreplace(subs)
    return Kernel(f"site_{slot}", e, {VALUE: "value", **dict.fromkeys(arrays, "array")},
                  backend=TORCH), arrays


def dense_local_field(pieces: list[DensePiece], field: str, state, kernels, v, sites=None):
    """Pair part of E_loc(x, v): f(v) (U g(s))_x + g(v) (U^T f(s))_x."""
    total = 0.0
    for p in pieces:
        if p.field != field:
            continue
        s = state[field]
        B = s.shape[0]
        sf = s.reshape(B, -1)
        f_s = _eval_site(p.f, p.f_arrays, sf, kernels)
        g_s = _eval_site(p.g, p.g_arrays, sf, kernels)
        if sites is None:
            shape = s.shape
            vf = v.reshape(B, -1) if isinstance(v, torch.Tensor) and v.dim() > 0 else v
            f_v = _eval_site(p.f, p.f_arrays, _as_value(vf, sf), kernels)
            g_v = _eval_site(p.g, p.g_arrays, _as_value(vf, sf), kernels)
            total = total + (f_v * p.times(g_s) + g_v * p.times_transposed(f_s)).reshape(shape)
        else:
            vv = _as_value(v, sf[:, 0])
            f_v = _eval_site(p.f, p.f_arrays, vv, kernels, sites)
            g_v = _eval_site(p.g, p.g_arrays, vv, kernels, sites)
            row, col = p.rows(sites)  # (B, N): U[x, :] and U[:, x]
            total = total + f_v * (row * g_s).sum(-1) + g_v * (col * f_s).sum(-1)
    return total


def _as_value(v, like: torch.Tensor) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.to(like.dtype).expand_as(like) if v.dim() == 0 else v.to(like.dtype)
    return torch.full_like(like, float(v))


class SublatticeKernels:
    """One stencil kernel per sublattice, evaluated over unit cells and stacked into site
    order: forward(state, extra) -> (B, *lattice.shape) (or (B,) at flat ``sites``)."""

    def __init__(self, name: str, exprs: tuple[sp.Expr, ...], inputs: dict,
                 kernels: LatticeKernels):  # fmt: skip
        self.kernels = kernels
        if len(exprs) == 1:
            self.parts = [Kernel(name, exprs[0], inputs, backend=TORCH)]
        else:  # each sublattice's kernel reads only what its expression uses
            self.parts = [Kernel(f"{name}_{b}", e, {k: w for k, w in inputs.items()
                                                    if k in e.free_symbols or isinstance(w, str)},
                                 backend=TORCH) for b, e in enumerate(exprs)]  # fmt: skip

    @property
    def stencil(self) -> Kernel:
        return self.parts[0]

    def __call__(self, state: dict[str, torch.Tensor], sites: torch.Tensor | None = None,
                 extra: dict | None = None, like: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``like``: a (B, *cells) or (B,) tensor giving the shape of one sublattice's output."""
        k = self.kernels
        nb = k.lattice.basis
        if nb == 1:
            return self.part(0, state, sites, extra, like)
        if sites is None:
            return torch.stack([self.part(b, state, None, extra, like)
                                for b in range(nb)], dim=-1)  # fmt: skip
        cells, which = torch.div(sites, nb, rounding_mode="floor"), sites % nb
        vals = [self.part(b, state, cells, extra, like) for b in range(nb)]
        return torch.stack(vals, -1).gather(-1, which[:, None])[:, 0]

    def part(self, b: int, state, sites, extra, like) -> torch.Tensor:
        """Sublattice b's kernel over all cells (or at cells ``sites``)."""
        kernel = self.parts[b]
        out = kernel(self.kernels.inputs(kernel, state, sites, extra))
        if like is None:
            return out
        return torch.as_tensor(out, dtype=like.dtype, device=like.device).expand(like.shape)

    def source(self, describe) -> str:
        return "\n\n".join(p.source(describe) for p in self.parts)


class LocalEnergyModule(nn.Module):
    """E_loc(x, v) for every site x (or for sites[b] in chain b) of one field."""

    def __init__(self, local: LocalEnergy, dense: list[DensePiece], kernels: LatticeKernels,
                 use_dense: bool):  # fmt: skip
        super().__init__()
        self.kernels = kernels
        self.field = local.field
        self.stencil = SublatticeKernels(f"local_energy_{local.field}", local.exprs,
                                         local.inputs, kernels)  # fmt: skip
        self.dense = dense
        self.use_dense = use_dense

    def forward(self, state: dict[str, torch.Tensor], v, sites: torch.Tensor | None = None):
        s = state[self.field]
        lat = self.kernels.lattice
        like = s[..., 0] if lat.basis > 1 else s
        if sites is not None:
            like = sites.to(self.kernels.dtype)
        if lat.basis > 1 and isinstance(v, torch.Tensor) and v.dim() == s.dim():
            # a candidate per site: each sublattice's kernel takes its own slice
            out = torch.stack([self.stencil.part(b, state, None, {CANDIDATE: v[..., b]}, like)
                               for b in range(lat.basis)], -1)  # fmt: skip
        else:
            out = self.stencil(state, sites, {CANDIDATE: v}, like)
        if self.dense:
            out = out + dense_local_field(self.dense, self.field, state, self.kernels, v, sites)
        shape = s.shape if sites is None else sites.shape
        return torch.as_tensor(out, dtype=self.kernels.dtype, device=s.device).expand(shape)
