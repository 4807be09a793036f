"""Energy-based models on dense graphs compiled: Hopfield networks, Boltzmann machines and RBMs.

The derivation (:mod:`physml_lang.compiler.derive.boltzmann`, torch-free) gives the set terms,
the pair pieces sum_{(i, j) in P} c(W_ij) f(x_i) g(y_j), the local energies and the blocks;
here every site expression is lowered to a torch kernel and each pair piece to matrix products
(F @ C) * G with F (B, n_i), C (n_i, n_j), G (B, n_j). The free energy with block fields summed
out is lowered as a log-sum-exp over the domain (stable in float32).

Learnable arrays are ``nn.Parameter`` s: energies and free energies are differentiable, so
contrastive divergence and Boltzmann learning are autograd on F(v_data) - F(v_model).
Configurations are dicts field -> (B, n_set) tensors (a complete graph's field: (B, N)).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from physml_lang.compiler.derive.boltzmann import PairPiece, SiteExpr, derive_boltzmann
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.terms import Access, access_symbol
from physml_lang.compiler.lower.torch_backend import TORCH


def _lower(x: SiteExpr) -> Kernel:
    """A derived site expression as a torch kernel of its inputs."""
    return Kernel(x.name, x.expr, x.inputs, backend=TORCH)


def _lower_piece(p: PairPiece[SiteExpr]) -> PairPiece[Kernel]:
    """A pair piece with c, f, g and the local f, g lowered to torch kernels."""
    return replace(p, c=_lower(p.c), f=_lower(p.f), g=_lower(p.g),
                   f_local={k: _lower(x) for k, x in p.f_local.items()},
                   g_local={k: _lower(x) for k, x in p.g_local.items()})  # fmt: skip


class BoltzmannModel(nn.Module):
    """A compiled energy-based model on a dense graph (see the module docstring).

    ``energy(state)`` -> (B,); ``local_energy(field, state, v)`` -> (B, n) (or (B,) at
    ``sites``); ``free_energy(state, summed, beta)`` -> (B,) (dimensionless, beta F).
    ``derivation``: the torch-free derivation it lowers (site sets, fields, blocks).
    """

    kind = "boltzmann"

    def __init__(self, model: ModelInstance, dtype: torch.dtype = torch.float32):
        super().__init__()
        d = self.derivation = derive_boltzmann(model)
        self.model = model
        self.ir = model.ir
        self.lattice = model.lattice
        self.dtype = dtype
        self.sets = d.sets
        self.structures = d.structures
        self.domains = d.domains
        self.field_sets = d.field_sets
        self.params = nn.ParameterDict()
        for name, arr in model.arrays.items():
            t = torch.as_tensor(arr.values, dtype=dtype, device="cpu")  # moved by .to
            if arr.learnable:
                self.params[name] = nn.Parameter(t.clone())
            else:
                self.register_buffer(f"array_{name}", t)
        self.energy_sum = d.energy
        self.constant = d.constant
        self.set_terms = d.set_terms
        self.pieces = [_lower_piece(p) for p in d.pieces]
        self.set_local = {f: _lower(x) for f, x in d.set_local.items()}
        self.blocks = d.blocks
        self._frozen: list | None = None

    def self_interacting(self, field: str) -> bool:
        """Does the field interact with itself (see the derivation)?"""
        return self.derivation.self_interacting(field)

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
    def energy(self, state: dict[str, torch.Tensor],
               exclude: set[str] = frozenset()) -> torch.Tensor:  # fmt: skip
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
        """Fields that can be summed analytically (see the derivation)."""
        return self.derivation.summable(summed)

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
        return self.derivation.describe()

    def emit_sympy(self) -> str:
        return self.derivation.emit_sympy()

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
            lines.append(f"# pair piece {i} on {p.structure}: "
                         "energy += ((f(x) @ C) * g(y)).sum(-1)")  # fmt: skip
            lines.append(p.c.source(describe))
            lines.append(p.f.source(describe))
            lines.append(p.g.source(describe))
        return "\n".join(lines) + "\n"


__all__ = ["BoltzmannModel"]
