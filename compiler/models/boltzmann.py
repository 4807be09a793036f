"""Energy-based models on dense graphs: Hopfield networks, Boltzmann machines and RBMs.

A model on a complete graph (one site set, ``sites``, pairs i < j) or on a bipartite graph
(site sets ``visible`` and ``hidden``, pairs ``edges``) is compiled here when it has learnable
parameters (or two site sets). Its energy is a sum of

- *set terms* sum_{i in S} body(x_i, a_i) (fields and arrays of one site), and
- *pair pieces* sum_{(i, j) in P} c(W_ij) f(x_i) g(y_j), from :func:`derive.decompose_pair`,
  lowered to matrix products (F @ C) * G. Pairs of one set use the strict upper triangle of C.

Derived from these, not written per model:

- the local energy E_loc(x_k = v | rest) of every field at every site (one matrix product);
- the *blocks*: a field with no interaction with itself has conditionals that factorise over
  its sites, so block Gibbs updates all its sites at once (the colouring of a bipartite graph
  is its two site sets). A field that interacts with itself is updated site by site;
- the free energy with such fields summed analytically,
  beta F(rest) = beta E_rest - sum_k log sum_{v in domain} exp(-beta E_loc(x_k = v | rest)),
  printed in closed form by sympy (softplus for binary units, log 2 cosh for spins) and lowered
  as a log-sum-exp over the domain (stable in float32).

Learnable arrays are ``nn.Parameter`` s: energies and free energies are differentiable, so
contrastive divergence and Boltzmann learning are autograd on F(v_data) - F(v_model).
Configurations are dicts field -> (B, n_set) tensors (a complete graph's field: (B, N)).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
import torch
from torch import nn

from physml_lang.compiler.derive import local as derive
from physml_lang.compiler.derive.local import CANDIDATE, decompose_pair, expand_deltas
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.terms import (
    Access,
    PairTerm,
    TermBuilder,
    _Slot,
    access_symbol,
    fail,
)
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.sitesets import pair_structures, site_sets
from physml_lang.diagnostics import Diagnostic, PhysmlError, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import DomainIR as Domain
from physml_lang.ir.walk import name_of

BETA = sp.Symbol("beta", positive=True)
VALUE = sp.Symbol("x", real=True)  # the value of a site, in printed derivations


@dataclass
class SetTerm:
    """sum over the sites i of one set of ``body`` (values of fields and arrays at i)."""

    body: sp.Expr
    accesses: dict[sp.Symbol, Access]
    span: object
    structure: str


class SetTermBuilder(TermBuilder):
    """Energy terms of a dense graph: sums over site sets and over pair structures."""

    def __init__(self, model: ModelInstance, symbolic: bool = False):
        super().__init__(model, symbolic)
        self.sets = site_sets(model.lattice)
        self.pairs = pair_structures(model.lattice)
        self._slot_sets: dict[str, str] = {}

    def on_reduce(self, e: E.Reduce, slots):
        if e.func != "sum":
            fail("P800", f"'{e.func}' is not supported in an energy", e.func_span, "use sum(...)")
        if len(e.loops) != 1:
            fail("P800", "one 'for' per sum: nest sums instead", e.loops[1].span)
        if slots:
            fail("P800", "nested sums are not supported in an energy", e.span)
        loop = e.loops[0]
        d = loop.domain
        name = name_of(d)
        known = set(self.sets) | set(self.pairs)
        if name not in known:
            fail("P200", "a sum here runs over " + ", ".join(sorted(known)),
                 (d or loop).span, derive_hint(name, known))  # fmt: skip
        if name in self.sets:
            if len(loop.names) != 1:
                fail("P302", f"{name} is summed with one index: for i in {name}", loop.span)
            self._slot_sets = {"i": name}
            body, acc = self._body(e.body, {loop.names[0]: _Slot(pair_slot="i")})
            term: object = SetTerm(body, acc, e.span, name)
        else:
            if len(loop.names) != 2:
                fail("P302", f"{name} are summed with two indices: for (i, j) in {name}",
                     loop.span)  # fmt: skip
            a, b = self.pairs[name]
            self._slot_sets = {"i": a, "j": b}
            self._structure_now = name
            slot_map = {loop.names[0]: _Slot(pair_slot="i"), loop.names[1]: _Slot(pair_slot="j")}
            body, acc = self._body(e.body, slot_map)
            term = PairTerm(body, acc, e.span, "pairs" if name == "bonds" else name)
        placeholder = sp.Symbol(f"__sum{len(self._terms)}")
        self._terms[placeholder] = [term]
        return placeholder

    def on_index(self, e: E.Index, slots):
        m = self.model
        base = name_of(e.base)
        if base is not None and base in m.fields:
            f = m.fields[base]
            if len(e.indices) != 1:
                fail("P302", f"field '{f.name}' takes one index", e.span)
            slot = self._site_index(e.indices[0], slots)
            where = self._slot_sets.get(slot.pair_slot)
            if where != f.on:
                fail("P300", f"field '{f.name}' lives on {f.on}, but this index runs over "
                     f"{where}", e.span)  # fmt: skip
            return self._record(Access("field", f.name, (), None, slot.pair_slot))
        return super().on_index(e, slots)

    def _array(self, arr, e: E.Index, slots):
        slots_used = [self._site_index(x, slots) for x in e.indices]
        if arr.on in self.sets:
            if len(slots_used) != 1:
                fail("P302", f"'{arr.name}' lives on {arr.on} and takes one index", e.span)
            slot = slots_used[0].pair_slot
            if self._slot_sets.get(slot) != arr.on:
                fail("P300", f"'{arr.name}' lives on {arr.on}, but this index runs over "
                     f"{self._slot_sets.get(slot)}", e.span)  # fmt: skip
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            return self._record(Access("array", arr.name, (), None, slot))
        if arr.on in self.pairs or arr.on == "pairs":
            order = [s.pair_slot for s in slots_used]
            same = self.pairs.get(arr.on, ("sites", "sites"))
            ok = order == ["i", "j"] or (order == ["j", "i"] and same[0] == same[1])
            if len(order) != 2 or not ok or getattr(self, "_structure_now", None) not in (
                arr.on, "bonds" if arr.on == "pairs" else arr.on
            ):
                fail("P300", f"'{arr.name}' lives on {arr.on}: index it by the two ends of a "
                     f"pair, {arr.name}[i, j] inside sum(... for (i, j) in {arr.on})", e.span)  # fmt: skip
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            return self._record(Access("array", arr.name, (), None, "ij"))
        fail("P300", f"'{arr.name}' lives on {arr.on}, which this graph does not have", e.span)


def derive_hint(name, known) -> str:

    return (did_you_mean(name, known) if name else None) or "e.g. for (i, j) in " + sorted(known)[0]


# ---------------------------------------------------------------- lowered pieces


@dataclass
class Piece:
    """sum over a pair structure of c(W_ij) f(x_i) g(y_j)."""

    structure: str
    set_i: str
    set_j: str
    same_set: bool
    c: Kernel
    f: Kernel
    g: Kernel
    f_fields: set[str]
    g_fields: set[str]
    f_local: dict[str, Kernel]  # field -> f with that field's value at i replaced by v
    g_local: dict[str, Kernel]
    symmetric: bool  # f == g on the same set: E = 1/2 F S G with S = C - diag(C) symmetric
    span: object


def _site_kernel(name: str, expr: sp.Expr, accesses: dict, slot: str) -> Kernel:
    inputs = {s: accesses[s] for s in expr.free_symbols if s in accesses}
    for s in expr.free_symbols:
        if s == CANDIDATE:
            inputs[s] = "candidate"
    return Kernel(name, expr, inputs, backend=TORCH)


def _swap_slot(expr: sp.Expr, accesses: dict) -> sp.Expr:
    subs = {}
    for s, a in accesses.items():
        if a.slot in ("i", "j"):
            other = Access(a.kind, a.name, a.offset, a.component, "j" if a.slot == "i" else "i")
            subs[s] = access_symbol(other)
    return expr.xreplace(subs)


class BoltzmannModel(nn.Module):
    """A compiled energy-based model on a dense graph (see the module docstring).

    ``energy(state)`` -> (B,); ``local_energy(field, state, v)`` -> (B, n) (or (B,) at
    ``sites``); ``free_energy(state, summed, beta)`` -> (B,) (dimensionless, beta F).
    """

    kind = "boltzmann"

    def __init__(self, model: ModelInstance, dtype: torch.dtype = torch.float32):
        super().__init__()
        if model.lattice is None or not model.lattice.complete:
            raise PhysmlError(Diagnostic("P800", f"model {model.name}: Boltzmann models live on "
                                         "complete or bipartite graphs", model.name_span))  # fmt: skip
        if model.energy is None:
            raise PhysmlError(Diagnostic("P400", f"model {model.name} declares no energy",
                                         model.name_span))  # fmt: skip
        self.model = model
        self.ir = model.ir
        self.lattice = model.lattice
        self.dtype = dtype
        self.sets = site_sets(model.lattice)
        self.structures = pair_structures(model.lattice)
        self.domains: dict[str, Domain] = {}
        self.field_sets: dict[str, str] = {}
        for name, f in model.fields.items():
            if not f.domain.discrete or f.domain.kind == "qubit":
                raise PhysmlError(Diagnostic("P800", f"field '{name}': Boltzmann models have "
                                             "discrete fields (spin, binary, potts)", f.span))  # fmt: skip
            self.domains[name] = f.domain
            self.field_sets[name] = f.on
        self.params = nn.ParameterDict()
        for name, arr in model.arrays.items():
            t = torch.as_tensor(arr.values, dtype=dtype)
            if arr.learnable:
                self.params[name] = nn.Parameter(t.clone())
            else:
                self.register_buffer(f"array_{name}", t)
        self.energy_sum = SetTermBuilder(model).lattice_sum(model.energy.expr)
        self.constant = float(self.energy_sum.constant) if self.energy_sum.constant.is_number else 0.0
        self.set_terms = [t for t in self.energy_sum.terms if isinstance(t, SetTerm)]
        self.pieces = [p for t in self.energy_sum.terms if isinstance(t, PairTerm)
                       for p in self._pieces(t)]  # fmt: skip
        self.set_local = {f: self._set_local(f) for f in self.domains}
        self.blocks = [f for f in self.domains if not self.self_interacting(f)]
        self._frozen: list | None = None

    # ---------------------------------------------------------------- compile time
    def _pieces(self, t: PairTerm) -> list[Piece]:
        a, b = self.structures.get(t.structure, ("sites", "sites"))
        slot_of = {s: acc.slot for s, acc in t.accesses.items()}
        body = expand_deltas(t.body, t.accesses, self.domains)
        parts = decompose_pair(body, slot_of)
        if parts is None:
            raise PhysmlError(Diagnostic("P800", "this pair interaction is not a sum of products "
                                         "f(x_i) g(y_j)", t.span))  # fmt: skip
        out = []
        for k, (c, f, g) in enumerate(parts):
            fields_f = {t.accesses[s].name for s in f.free_symbols
                        if s in t.accesses and t.accesses[s].kind == "field"}  # fmt: skip
            fields_g = {t.accesses[s].name for s in g.free_symbols
                        if s in t.accesses and t.accesses[s].kind == "field"}  # fmt: skip
            ck = Kernel(f"coupling_{k}", c, backend=TORCH, inputs={s: t.accesses[s] for s in c.free_symbols
                                             if s in t.accesses})  # fmt: skip
            fk = _site_kernel(f"f_{k}", f, t.accesses, "i")
            gk = _site_kernel(f"g_{k}", g, t.accesses, "j")
            f_local, g_local = {}, {}
            for name in fields_f:
                sym = access_symbol(Access("field", name, (), None, "i"))
                f_local[name] = _site_kernel(f"f_{k}_{name}", f.xreplace({sym: CANDIDATE}),
                                             t.accesses, "i")  # fmt: skip
            for name in fields_g:
                sym = access_symbol(Access("field", name, (), None, "j"))
                g_local[name] = _site_kernel(f"g_{k}_{name}", g.xreplace({sym: CANDIDATE}),
                                             t.accesses, "j")  # fmt: skip
            symmetric = a == b and sp.expand(_swap_slot(f, t.accesses) - g) == 0
            out.append(Piece(t.structure, a, b, a == b, ck, fk, gk, fields_f, fields_g, f_local,
                             g_local, symmetric, t.span))  # fmt: skip
        return out

    def _set_local(self, field: str) -> Kernel:
        expr = sp.Integer(0)
        sym = access_symbol(Access("field", field, (), None, "i"))
        inputs: dict = {CANDIDATE: "candidate"}
        for t in self.set_terms:
            if t.structure != self.field_sets[field] or sym not in t.body.free_symbols:
                continue
            expr += t.body.xreplace({sym: CANDIDATE})
            inputs.update({s: a for s, a in t.accesses.items() if s != sym})
        return Kernel(f"set_local_{field}", sp.expand(expr), inputs, backend=TORCH)

    def self_interacting(self, field: str) -> bool:
        """Does the field interact with itself (then its sites are not independent given the
        other fields, and it is updated site by site)?"""
        return any(field in p.f_fields and field in p.g_fields for p in self.pieces)

    # ---------------------------------------------------------------- tensors
    def array(self, name: str) -> torch.Tensor:
        if name in self.params:
            return self.params[name]
        return getattr(self, f"array_{name}")

    def matrices(self) -> list[torch.Tensor]:
        """The coupling matrix of every pair piece: C (two sets), triu(C, 1) (one set), or the
        symmetric S = C - diag (symmetric pieces). Cached while frozen (sampling)."""
        if self._frozen is not None:
            return self._frozen
        out = []
        for p in self.pieces:
            env = {s: self.array(a.name) for s, a in p.c.inputs.items()}
            n_i, n_j = self.sets[p.set_i], self.sets[p.set_j]
            C = torch.as_tensor(p.c(env), dtype=self.dtype, device=self._device())
            C = C.expand(n_i, n_j)
            if p.same_set:
                C = torch.triu(C, 1)
                if p.symmetric:
                    C = C + C.T
            out.append(C)
        return out

    def freeze(self) -> None:
        """Cache the coupling matrices (between parameter updates: sampling is then cheap)."""
        self._frozen = None
        with torch.no_grad():
            self._frozen = [m.detach() for m in self.matrices()]

    def unfreeze(self) -> None:
        self._frozen = None

    def _device(self) -> torch.device:
        for t in list(self.params.values()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def _env(self, kernel: Kernel, state, sites=None, v=None) -> dict:
        env = {}
        for s, what in kernel.inputs.items():
            if what == "candidate":
                env[s] = v
            elif isinstance(what, Access):
                x = state[what.name] if what.kind == "field" else self.array(what.name)
                if isinstance(sites, int):
                    x = x[:, sites] if x.dim() == 2 else x[sites]
                elif sites is not None:
                    x = x.gather(-1, sites[:, None])[:, 0] if x.dim() == 2 else x[sites]
                env[s] = x
        return env

    def _site(self, kernel: Kernel, state, like, sites=None, v=None):
        """A site kernel's values, broadcast to ``like`` (a tensor, or a (shape, device) pair)."""
        out = kernel(self._env(kernel, state, sites, v))
        shape, device = (like.shape, like.device) if isinstance(like, torch.Tensor) else like
        if not isinstance(out, torch.Tensor) or out.shape != shape:
            out = torch.as_tensor(out, dtype=self.dtype, device=device).expand(shape)
        return out

    def _template(self, state, set_name: str):
        some = next(iter(state.values()))
        return (torch.Size((some.shape[0], self.sets[set_name])), some.device)

    # ---------------------------------------------------------------- energies
    def energy(self, state: dict[str, torch.Tensor], exclude: set[str] = frozenset()) -> torch.Tensor:  # noqa: E501
        """E(state) -> (B,); ``exclude``: drop every term that reads one of these fields."""
        some = next(iter(state.values()))
        out = torch.zeros(some.shape[0], dtype=self.dtype, device=some.device) + self.constant
        for t in self.set_terms:
            reads = {a.name for a in t.accesses.values() if a.kind == "field"}
            if reads & exclude:
                continue
            k = Kernel("set_term", t.body, t.accesses, backend=TORCH)
            like = self._template(state, t.structure)
            out = out + self._site(k, state, like).sum(-1)  # like: (shape, device)
        for p, C in zip(self.pieces, self.matrices()):
            if (p.f_fields | p.g_fields) & exclude:
                continue
            F = self._site(p.f, state, self._template(state, p.set_i))
            G = self._site(p.g, state, self._template(state, p.set_j))
            e = ((F @ C) * G).sum(-1)
            out = out + (0.5 * e if p.symmetric else e)
        return out

    def forward(self, state):
        return self.energy(state)

    def local_energy(self, field: str, state, v, sites=None):
        """E_loc(x_k = v | rest): every term touching site k of ``field``.

        ``sites`` None: (B, n) for every site k at once (v a number or (B, n)); an int k: (B,)
        at site k of every chain; a (B,) tensor: (B,) at site sites[b] of chain b."""
        return self._local(field, state, [v], sites)[0]

    def local_energies(self, field: str, state, sites=None) -> torch.Tensor:
        """(q, B, n) (or (q, B)): the local energy of every value of the field's domain; the
        matrix products are shared by all values."""
        return torch.stack(self._local(field, state, self.domains[field].values(), sites))

    def _local(self, field: str, state, values, sites) -> list[torch.Tensor]:
        set_name = self.field_sets[field]
        some = next(iter(state.values()))
        B = some.shape[0]
        shape = (B, self.sets[set_name]) if sites is None else (B,)
        like = torch.zeros(shape, dtype=self.dtype, device=some.device)
        parts = []  # (value-dependent site kernel, the matrix-product input it multiplies)
        for p, C in zip(self.pieces, self.matrices()):
            if field in p.f_fields:
                G = self._site(p.g, state, self._template(state, p.set_j))
                if sites is None:
                    phi = G @ C.T
                elif isinstance(sites, int):
                    phi = G @ C[sites]
                else:
                    phi = (C[sites] * G).sum(-1)
                parts.append((p.f_local[field], phi))
            if field in p.g_fields and not p.symmetric:
                F = self._site(p.f, state, self._template(state, p.set_i))
                if sites is None:
                    phi = F @ C
                elif isinstance(sites, int):
                    phi = F @ C[:, sites]
                else:
                    phi = (C[:, sites].T * F).sum(-1)
                parts.append((p.g_local[field], phi))
        out = []
        for v in values:
            vv = v if isinstance(v, torch.Tensor) else torch.full_like(like, float(v))
            e = self._site(self.set_local[field], state, like, sites, vv)
            for kernel, phi in parts:
                e = e + self._site(kernel, state, like, sites, vv) * phi
            out.append(e)
        return out

    def local_decomposition(self, field: str, state) -> tuple[torch.Tensor, list]:
        """E_loc(x_k = v | rest) split for sequential (site-by-site) updates of ``field``:

            E_loc(k, v) = static[v][:, k] + sum_d coef_d[v][:, k] * (X_d @ R_d[k])

        ``static`` (q, B, n): set terms and couplings to *other* fields (fixed while this field
        is updated); each self-coupling d has value factors ``coef_d`` (q, B, n) (they read
        site k only), the other end X_d = kernel_d(state) (B, n) (which changes as the field's
        sites change) and a row-contiguous coupling matrix R_d (n, n), so the local field of
        site k is one row-dot product. ``dynamic``: [(coef, kernel, R, identity)], identity
        True when X_d is the field's own state tensor (binary and spin units)."""
        set_name = self.field_sets[field]
        some = next(iter(state.values()))
        B, n = some.shape[0], self.sets[set_name]
        like = torch.zeros((B, n), dtype=self.dtype, device=some.device)
        values = self.domains[field].values()
        static_parts, dynamic = [], []
        own = access_symbol(Access("field", field, (), None, "i"))
        own_j = access_symbol(Access("field", field, (), None, "j"))
        for p, C in zip(self.pieces, self.matrices()):
            sides = [(field in p.f_fields, p.f_local.get(field), p.g, p.set_j, C, own_j)]
            if not p.symmetric:
                sides.append((field in p.g_fields, p.g_local.get(field), p.f, p.set_i, C.T,
                               own))  # fmt: skip
            for present, kernel, other, other_set, M, other_own in sides:
                if not present:
                    continue
                reads_self = other_set == set_name and any(
                    isinstance(a, Access) and a.kind == "field" and a.name == field
                    for a in other.inputs.values())  # fmt: skip
                if reads_self:
                    identity = other.expr == other_own and len(other.inputs) == 1
                    coef = torch.stack([self._site(kernel, state, like, None,
                                                   torch.full_like(like, float(v)))
                                        for v in values])  # fmt: skip
                    dynamic.append((coef, other, M.contiguous(), identity))
                else:
                    X = self._site(other, state, self._template(state, other_set))
                    static_parts.append((kernel, X @ M.T))
        static = []
        for v in values:
            vv = torch.full_like(like, float(v))
            e = self._site(self.set_local[field], state, like, None, vv)
            for kernel, phi in static_parts:
                e = e + self._site(kernel, state, like, None, vv) * phi
            static.append(e)
        return torch.stack(static), dynamic

    def free_energy(self, state, summed: list[str] | None = None, beta=1.0) -> torch.Tensor:
        """beta F(rest) -> (B,) with the fields ``summed`` (default: every block field but the
        first) summed out analytically: beta E_rest - sum_k logsumexp_v(-beta E_loc(k, v)).
        ``beta``: a number or a (B,) tensor."""
        summed = self.summable(summed)
        b = beta if not isinstance(beta, torch.Tensor) else beta.reshape(-1, 1)
        rest = self.energy(state, exclude=set(summed))
        out = (b.reshape(-1) if isinstance(b, torch.Tensor) else b) * rest
        for f in summed:
            shape, dev = self._template(state, self.field_sets[f])
            blank = torch.zeros(shape, dtype=self.dtype, device=dev)  # not read: no self-coupling
            e = self.local_energies(f, {**state, f: blank})
            out = out - torch.logsumexp(-b * e, dim=0).sum(-1)
        return out

    def summable(self, summed: list[str] | None = None) -> list[str]:
        """Check (or choose) fields that can be summed analytically: block fields that do not
        interact with each other."""
        if summed is None:
            summed = [f for f in self.blocks if f != next(iter(self.domains))]
        for f in summed:
            if f not in self.blocks:
                raise PhysmlError(Diagnostic("P502", f"field '{f}' interacts with itself; it "
                                             "cannot be summed analytically", self.model.fields[f].span))  # fmt: skip
        for p in self.pieces:
            if p.f_fields & set(summed) and p.g_fields & set(summed):
                raise PhysmlError(Diagnostic("P502", "summed fields interact with each other",
                                             p.span))  # fmt: skip
        return summed

    # ---------------------------------------------------------------- helpers
    def random_state(self, batch: int, generator: torch.Generator, device=None) -> dict:
        dev = device or self._device()
        out = {}
        for f, dom in self.domains.items():
            vals = torch.tensor(dom.values(), dtype=self.dtype, device=dev)
            k = torch.randint(0, len(vals), (batch, self.sets[self.field_sets[f]]),
                              generator=generator, device=dev)  # fmt: skip
            out[f] = vals[k]
        return out

    def describe(self) -> str:
        sets = ", ".join(f"{k} ({n})" for k, n in self.sets.items())
        learn = ", ".join(self.params) or "none"
        blocks = ", ".join(self.blocks) or "none"
        return (f"{self.lattice.kind} graph [{sets}], {len(self.set_terms)} set terms, "
                f"{len(self.pieces)} pair pieces; block-updatable fields: {blocks}; "
                f"learnable: {learn}")  # fmt: skip

    # ---------------------------------------------------------------- shown derivations
    def symbolic_local(self, field: str) -> sp.Expr:
        """E_loc(x_k = v) with each pair part's matrix product as a symbol phi."""
        expr = self.set_local[field].expr
        for p in self.pieces:
            if field in p.f_fields:
                c = p.c.expr * (2 if p.symmetric else 1)
                phi = sp.Symbol(f"[sum_j ({c}) * ({p.g.expr})]", real=True)
                expr += p.f_local[field].expr * phi
            if field in p.g_fields and not p.symmetric:
                phi = sp.Symbol(f"[sum_i ({p.c.expr}) * ({p.f.expr})]", real=True)
                expr += p.g_local[field].expr * phi
        return sp.expand(expr.xreplace({CANDIDATE: VALUE}))

    def symbolic_free_energy(self, field: str) -> sp.Expr:
        """beta F_k from summing field ``field`` at one site, in closed form."""
        e = self.symbolic_local(field).xreplace({VALUE: CANDIDATE})
        dom = self.domains[field]
        vals = [sp.Integer(int(v)) for v in dom.values()]
        if dom.kind == "spin" and sp.expand(e).is_polynomial(CANDIDATE) and sp.degree(e, CANDIDATE) <= 1:
            A, B = e.subs(CANDIDATE, 0), e.coeff(CANDIDATE)
            return sp.expand(BETA * A) - sp.log(2 * sp.cosh(sp.factor_terms(BETA * B)))
        if dom.kind == "binary":
            e0, e1 = e.subs(CANDIDATE, 0), e.subs(CANDIDATE, 1)
            return sp.expand(BETA * e0) - sp.log(1 + sp.exp(-sp.factor_terms(BETA * (e1 - e0))))
        return -sp.log(sp.Add(*[sp.exp(-BETA * e.subs(CANDIDATE, v)) for v in vals]))

    def emit_sympy(self) -> str:
        sym = SetTermBuilder(self.model, symbolic=True).lattice_sum(self.ir.energy.expr)
        lines = [f"# model {self.ir.name}: derived by sympy", f"# graph: {self.describe()}"]
        lines.append(f"energy {self.ir.energy.name} = constant + sum over terms")
        lines.append(f"  constant: {sym.constant}")
        for t in sym.terms:
            where = f"sum_i in {t.structure}" if isinstance(t, SetTerm) else f"sum_(i,j) in {t.structure}"
            lines.append(f"  {where}: {t.body}")
        for f in self.domains:
            e = self.symbolic_local(f)
            lines.append(f"local energy of {f}[k] = x: E_loc = {e}")
            vals = self.domains[f].values()
            if len(vals) == 2:
                d = sp.expand(e.subs(VALUE, int(vals[1])) - e.subs(VALUE, int(vals[0])))
                lines.append(f"  P({f}[k] = {vals[1]:g} | rest) = 1 / (1 + exp(beta * ({d})))")
            if f in self.blocks:
                lines.append(f"  {f} does not interact with itself: block update of all its "
                             "sites at once")  # fmt: skip
                if f != next(iter(self.domains)):
                    lines.append(f"  summed out, per site: beta F = {self.symbolic_free_energy(f)}")
            else:
                lines.append(f"  {f} interacts with itself: site-by-site updates")
        return "\n".join(lines)

    def emit_torch(self) -> str:
        def describe(sym, what):
            if what == "candidate":
                return None
            if isinstance(what, Access):
                return f"state['{what.name}']" + (f"  # {what.slot}" if what.slot else "")
            return str(what)

        lines = [f"# generated by physml for model {self.ir.name} ({self.describe()})",
                 "import torch", ""]  # fmt: skip
        for k in self.set_local.values():
            lines.append(k.source(describe))
        for i, p in enumerate(self.pieces):
            lines.append(f"# pair piece {i} on {p.structure}: energy += ((f(x) @ C) * g(y)).sum(-1)")
            lines.append(p.c.source(describe))
            lines.append(p.f.source(describe))
            lines.append(p.g.source(describe))
        return "\n".join(lines) + "\n"


__all__ = ["BoltzmannModel", "SetTermBuilder", "derive"]
