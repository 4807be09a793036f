"""Hamilton's equations lowered to batched torch callables (the runtime's HamiltonianSystem).

:func:`lower_hamiltonian` turns the expressions derived by :mod:`..derive.hamiltonian` into torch
callables through the one lowering (:mod:`.torch`); the same walk prints readable torch source
(``physml compile --emit torch``), so the text shown is a transcript of the closures that run.

Shapes: the callables take ``q, p`` of shape ``(..., n)`` (usually ``(B, n)``) and return
``hamiltonian -> (...)``, ``dH_dq -> (..., n)``, ``dH_dp -> (..., n)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy
import torch

from .. import limits
from ..derive.hamiltonian import (
    _SIMPLIFY_MAX_OPS,
    R2,
    HamiltonianDerivation,
    HamiltonianError,
    PairSum,
    ParticleSum,
    _is_zero,
    derive_hamiltonian,
    radial_profile,
)
from ..errors import as_sympy as _as_expr
from .program import LoweringError, Program, lower_program
from .torch_backend import TORCH


def _elementwise_template(
    exprs: Sequence[sympy.Expr], q: Sequence[sympy.Symbol], p: Sequence[sympy.Symbol]
) -> bool:
    """True if every ``exprs[k]`` is ``exprs[0]`` with (q_0, p_0) renamed (q_k, p_k) and depends on
    no other coordinate: then one lowering of ``exprs[0]`` applies to whole (..., n) tensors."""
    if len(exprs) != len(q):
        return False
    for k, e in enumerate(exprs):
        own = {q[k], p[k]}
        if e.free_symbols - own:
            return False
        if k and e.xreplace({q[k]: q[0], p[k]: p[0]}) != exprs[0]:
            return False
    return True


@dataclass
class LoweredFunction:
    """Batched torch callable ``f(q, p)`` built from sympy; ``source`` is the same program.

    Two layouts, chosen at lowering: ``elementwise`` (every output component k is one template
    in (q_k, p_k): the template runs once on the whole (..., n) tensors, no slicing, no stack)
    and ``components`` (q.unbind(-1) once, one output per component, stacked).
    """

    name: str
    n: int
    kind: str  # "scalar" -> (...); "vector" -> (..., len(outputs))
    program: Program
    elementwise: bool
    _which: tuple[int, ...]  # per program argument: 0 = from q, 1 = from p
    _index: tuple[int, ...]  # per program argument: component index
    source: str = field(default="")

    def __call__(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if q.shape != p.shape or q.shape[-1] != self.n:
            raise ValueError(
                f"{self.name}: q, p must both have shape (..., {self.n}); "
                f"got {tuple(q.shape)} and {tuple(p.shape)}"
            )
        prog = self.program
        if self.elementwise:
            (v,) = prog.run(q, p)
            if prog.constant[0] or not isinstance(v, torch.Tensor) or v.shape != q.shape:
                v = torch.as_tensor(v, dtype=q.dtype, device=q.device).expand(q.shape)
            return v[..., 0] if self.kind == "scalar" else v
        qs = q.unbind(-1) if 0 in self._which else ()
        ps = p.unbind(-1) if 1 in self._which else ()
        args = [(qs if w == 0 else ps)[k] for w, k in zip(self._which, self._index, strict=True)]
        batch = q.shape[:-1]
        outs = []
        for v, const in zip(prog.run(*args), prog.constant, strict=True):
            if const or not isinstance(v, torch.Tensor) or v.shape != batch:
                # Constant (or lower-rank) outputs, e.g. dH/dq_k = 0: broadcast to the batch.
                v = torch.as_tensor(v, dtype=q.dtype, device=q.device).expand(batch)
            outs.append(v)
        return outs[0] if self.kind == "scalar" else torch.stack(outs, dim=-1)


def lower_expressions(
    name: str,
    exprs: Sequence[sympy.Expr],
    q: Sequence[sympy.Symbol],
    p: Sequence[sympy.Symbol],
    params: Mapping[sympy.Symbol, float] | None = None,
    kind: str = "vector",
) -> LoweredFunction:
    """Lower ``exprs`` (in q, p and bound parameters) to one batched torch function.

    ``params`` binds every other free symbol to a number (printed as a literal). Common
    subexpressions are shared via ``sympy.cse``. When every component has the same form in its own
    (q_k, p_k) (``kind="vector"`` with n outputs, or a scalar of one pair) the template is lowered
    once and applied to whole tensors. Raises :class:`HamiltonianError` for an unbound symbol or
    an operation with no torch lowering.
    """
    q, p = list(q), list(p)
    exprs = [_as_expr(e) for e in exprs]
    if params:
        binding = {s: sympy.Float(float(v), 17) for s, v in params.items()}
        exprs = [e.xreplace(binding) for e in exprs]
    header = f"def {name}(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:"
    n = len(q)
    elementwise = n >= 1 and (
        (kind == "vector" and _elementwise_template(exprs, q, p))
        or (kind == "scalar" and n == 1 and len(exprs) == 1)
    )
    if elementwise:
        prog = lower_program(exprs[:1], [q[0], p[0]], {q[0]: "q", p[0]: "p"}, None, name,
                             backend=TORCH)
        out = prog.out_srcs[0]
        if prog.constant[0]:
            out = f"torch.full_like(q, {out})"
        if kind == "scalar":
            out = f"({out})[..., 0]"
        comment = (
            "    # elementwise: the same form in (q[..., k], p[..., k]) for every k"
            if kind == "vector" and n > 1
            else None
        )
        lines = [header] + ([comment] if comment else []) + prog.lines + [f"    return {out}"]
        return LoweredFunction(name, n, kind, prog, True, (0, 1), (0, 0), "\n".join(lines) + "\n")

    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    args: list[sympy.Symbol] = []
    which: list[int] = []
    index: list[int] = []
    for w, syms in ((0, q), (1, p)):
        for k, s in enumerate(syms):
            if s in used:
                args.append(s)
                which.append(w)
                index.append(k)
    prog = lower_program(exprs, args, None, None, name, backend=TORCH)
    lines = [header]
    if 0 in which:
        lines.append("    qs = q.unbind(-1)")
    if 1 in which:
        lines.append("    ps = p.unbind(-1)")
    for key, w, k in zip(prog._keys, which, index, strict=True):
        lines.append(f"    {key} = {'qs' if w == 0 else 'ps'}[{k}]")
    lines += prog.lines
    out_srcs = [
        f"torch.full(q.shape[:-1], {s}, dtype=q.dtype, device=q.device)" if c else s
        for s, c in zip(prog.out_srcs, prog.constant, strict=True)
    ]
    if kind == "scalar":
        lines.append(f"    return {out_srcs[0]}")
    else:
        lines.append("    return torch.stack([")
        lines += [f"        {s}," for s in out_srcs]
        lines.append("    ], dim=-1)")
    return LoweredFunction(
        name, n, kind, prog, False, tuple(which), tuple(index), "\n".join(lines) + "\n"
    )


@dataclass
class CompiledHamiltonian:
    """Torch callables of a declared Hamiltonian (the runtime's HamiltonianSystem protocol).

    ``hamiltonian(q, p) -> (...)``, ``dH_dq(q, p) -> (..., n)``, ``dH_dp(q, p) -> (..., n)``.
    """

    derivation: HamiltonianDerivation
    hamiltonian: LoweredFunction
    dH_dq: LoweredFunction
    dH_dp: LoweredFunction

    @property
    def n(self) -> int:
        return self.derivation.n

    @property
    def separable(self) -> bool:
        return self.derivation.separable

    @property
    def source(self) -> str:
        """Readable torch source of the three callables (``physml compile --emit torch``)."""
        d = self.derivation
        pairs = ", ".join(f"({a}, {b})" for a, b in zip(d.q, d.p, strict=True))
        head = (
            f'"""Lowered Hamiltonian; canonical pairs {pairs}; '
            f'separable={self.separable}."""\n\nimport torch\n\n\n'
        )
        return head + "\n\n".join(f.source for f in (self.hamiltonian, self.dH_dq, self.dH_dp))


def lower_hamiltonian(
    derivation: HamiltonianDerivation, params: Mapping[sympy.Symbol, float] | None = None
) -> CompiledHamiltonian:
    """Lower H and its gradients to batched torch callables with parameters bound to numbers."""
    q, p = derivation.q, derivation.p
    return CompiledHamiltonian(
        derivation,
        lower_expressions("hamiltonian", [derivation.H], q, p, params, kind="scalar"),
        lower_expressions("dH_dq", derivation.dH_dq, q, p, params),
        lower_expressions("dH_dp", derivation.dH_dp, q, p, params),
    )


def compile_hamiltonian(
    H: sympy.Expr,
    q: Sequence[sympy.Symbol],
    p: Sequence[sympy.Symbol],
    params: Mapping[sympy.Symbol, float] | None = None,
) -> CompiledHamiltonian:
    """derive_hamiltonian + lower_hamiltonian in one call."""
    return lower_hamiltonian(derive_hamiltonian(H, q, p), params)


# --------------------------------------------------------------------------------------------
# Structured Hamiltonians: sums over particles and over pairs lowered once for a generic
# particle / pair and evaluated on whole tensors (no unrolling over N).
# --------------------------------------------------------------------------------------------

PAIR_CHUNK_ELEMENTS = 2**21  # elements of one (B, D, c, N) difference block (memory bound)


def _finite_at(expr: sympy.Expr, value: float) -> bool:
    """Is the (parameter-bound) expression of R2 a finite real number at R2 = value?"""
    try:
        v = complex(sympy.N(expr.xreplace({R2: sympy.Float(value)}), 17))
    except (TypeError, ValueError):
        return False
    return v.imag == 0 and v.real == v.real and abs(v.real) != float("inf")


def _bind(expr: sympy.Expr, params: Mapping[sympy.Symbol, float]) -> sympy.Expr:
    return expr.xreplace({s: sympy.Float(float(v), 17) for s, v in params.items()})


# Below this many elements per (B, c, N) block the per-op overhead dominates: compute r2 as one
# (d * d).sum(1); above it, d0*d0 + d1*d1 + ... in place (no (B, D, c, N) temporary).
_SMALL_BLOCK = 8192


class StructuredHamiltonian:
    """H = sum_i f(q_i, p_i) + sum_{i<j} F(q_i - q_j) + rest(q, p) over q, p of shape (..., N * D)
    (particle-major), with the HamiltonianSystem callables.

    The particle and pair pieces are lowered once (generic particle i, generic pair (i, j)); the
    pair sum is evaluated on (B, D, c, N) difference blocks, c target rows at a time so that a
    block holds at most ``chunk_elements`` numbers. Three pair paths, chosen at construction:

    - ``radial`` (``F(d) = f(r2)``, r2 = d . d, e.g. gravity, Lennard-Jones): r2 (B, c, N) is
      computed once per block, ``pair_h(r2) = 2 f'(r2)`` (derived and simplified in r2, its powers
      shared: 1/r2, 1/r2^2, ...) and the force on i is sum_j d_ij pair_h(r2_ij). Self pairs get
      r2 = ``radial_safe`` (a value where f' is finite) and contribute d_ii = 0.
    - ``central`` (symmetric, dF/dd_a = d_a h(d) with one h): the same contraction, h(d).
    - general: D gradient programs dF/dd_a; pairs j > i only when F is not even.
    """

    def __init__(
        self,
        N: int,
        D: int,
        particles: ParticleSum | None,
        pairs: PairSum | None,
        rest: CompiledHamiltonian | None,
        constant: float,
        params: Mapping[sympy.Symbol, float],
        separable: bool,
        name: str = "H",
        chunk_elements: int = PAIR_CHUNK_ELEMENTS,
    ):
        self.N, self.D, self.n = N, D, N * D
        self.particles, self.pairs, self.rest = particles, pairs, rest
        self.constant = float(constant)
        self.separable = separable
        self.name = name
        self.chunk_elements = chunk_elements
        self._masks: dict[tuple, torch.Tensor] = {}
        self._part: tuple[LoweredFunction, LoweredFunction, LoweredFunction] | None = None
        if particles is not None:
            gq, gp = list(particles.q), list(particles.p)
            body = particles.body
            self._part = (
                lower_expressions("particle", [body], gq, gp, params, kind="scalar"),
                lower_expressions("particle_dq", [sympy.diff(body, s) for s in gq], gq, gp, params),
                lower_expressions("particle_dp", [sympy.diff(body, s) for s in gp], gq, gp, params),
            )
        # does the particle sum depend on q at all (a kinetic-only sum has no force)?
        self._part_q = particles is not None and bool(particles.body.free_symbols & set(particles.q))
        # dH/dp = p (unit masses): dH_dp returns p without running a program
        self._part_dp_identity = particles is not None and all(
            _is_zero(_bind(sympy.diff(particles.body, s), params) - s) for s in particles.p)
        self._pair: tuple[Program, Program] | None = None
        self.radial = False  # central force: dF/dd_a = d_a h (radial or not)
        self.profile: sympy.Expr | None = None  # f(r2) when F(d) = f(r2)
        self.radial_safe = 1.0
        self._h_finite_safe = False
        if pairs is not None:
            names = {s: f"d{a}" for a, s in enumerate(pairs.d)}
            profile = radial_profile(pairs.F, pairs.d) if pairs.symmetric else None
            if profile is not None:
                try:
                    self._init_radial(_bind(profile, params))
                except LoweringError:
                    self.profile = None  # e.g. an unlowerable simplification: general path
            if self.profile is None:
                grads = [sympy.diff(pairs.F, s) for s in pairs.d]
                # Central forces, dF/dd_a = d_a h(d) with one h for every a: the force is
                # sum_j d_ij h_ij, one product of the (B, D, c, N) block instead of D programs.
                radial = None
                if pairs.symmetric:
                    hs = [sympy.factor_terms(g) / s for g, s in zip(grads, pairs.d, strict=True)]
                    if all(h == hs[0] for h in hs[1:]):
                        radial = hs[0]
                self.radial = radial is not None
                self._pair = (
                    lower_program([pairs.F], pairs.d, names, params, "pair", backend=TORCH),
                    lower_program([radial] if self.radial else grads, pairs.d, names, params,
                                  "pair_h" if self.radial else "pair_grad", backend=TORCH),
                )

    def _init_radial(self, f: sympy.Expr) -> None:
        """Lower f(r2) and h(r2) = 2 f'(r2), with the parameters already bound."""
        h = 2 * sympy.diff(f, R2)
        # simplify in r2 (a sum of powers for LJ: 24/r2^4 - 48/r2^7); keep the shorter form
        cands = [h, sympy.expand(h)] if limits.expandable(h) else [h]
        if limits.simplifiable(h, 4 * _SIMPLIFY_MAX_OPS):
            cands.append(sympy.simplify(h))
        h = min(cands, key=lambda e: (sympy.count_ops(e), len(str(e))))
        for safe in (1.0, 2.0, 0.5, 3.0, 7.0):  # a separation where f and h are finite
            if _finite_at(h, safe) and _finite_at(f, safe):
                break
        else:
            raise HamiltonianError("no finite value of the radial pair force found")
        names = {R2: "r2"}
        energy = lower_program([f], [R2], names, None, "pair", share_powers=True, backend=TORCH)
        force = lower_program([h], [R2], names, None, "pair_h", share_powers=True,
                              backend=TORCH)
        self._pair = (energy, force)
        self.profile, self.radial, self.radial_safe = f, True, safe
        self._h_finite_safe = True

    # ------------------------------------------------------------------ pair blocks
    def _rows(self, B: int, D: int, N: int) -> int:
        """Target rows per difference block (all of them when one block suffices)."""
        return max(1, min(N, self.chunk_elements // max(1, B * D * N)))

    def _blocks(self, x: torch.Tensor):
        """Yield (s, e, d) with d = x_i - x_j of shape (B, D, e - s, N) for rows i in [s, e);
        the self pairs (i = j) set to d = (1, 0, ...)."""
        B, N, D = x.shape
        xt = x.transpose(1, 2)
        c = self._rows(B, D, N)
        for s in range(0, N, c):
            e = min(N, s + c)
            d = xt[:, :, s:e, None] - xt[:, :, None, :]
            d.diagonal(s, -2, -1).zero_()  # the (r, r + s) entries: the self pairs
            d[:, 0].diagonal(s, -2, -1).fill_(1.0)
            yield s, e, d

    def _keep(self, s: int, e: int, N: int, device: torch.device) -> torch.Tensor:
        """(e - s, N) mask j > i of the pairs a block contributes to a non-even F.
        Cached per block (it depends on the shapes only)."""
        key = (s, e, N, device)
        m = self._masks.get(key)
        if m is None:
            i = torch.arange(s, e, device=device)[:, None]
            j = torch.arange(N, device=device)[None, :]
            m = self._masks[key] = j > i
            if len(self._masks) > 256:
                self._masks.clear()
        return m

    @staticmethod
    def _full(g: object, like: torch.Tensor) -> torch.Tensor:
        """A (B, c, N) tensor of its own (writable) from a program output."""
        if isinstance(g, torch.Tensor) and g.shape == like.shape:
            return g
        return torch.as_tensor(g, dtype=like.dtype, device=like.device).expand(like.shape).clone()

    def _drop_self(self, g: torch.Tensor, s: int, e: int, N: int, sym: bool) -> torch.Tensor:
        """Zero the pairs a block does not contribute: i = j (even F) or j <= i."""
        if sym:
            g.diagonal(s, -2, -1).zero_()
            return g
        return torch.where(self._keep(s, e, N, g.device), g, 0.0)

    @staticmethod
    def _r2(d: torch.Tensor) -> torch.Tensor:
        """sum_a d_a^2 of a (B, D, c, N) block -> (B, c, N)."""
        if d[:, 0].numel() <= _SMALL_BLOCK:
            return (d * d).sum(1)
        ds = d.unbind(1)
        r2 = ds[0] * ds[0]
        for da in ds[1:]:
            r2.addcmul_(da, da)
        return r2

    @staticmethod
    def _contract(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """sum_j d_ij h_ij: (B, D, c, N), (B, c, N) -> (B, c, D)."""
        if h[0].numel() <= _SMALL_BLOCK:
            return (d * h[:, None]).sum(-1).transpose(1, 2)
        # a batched dot product, no (B, D, c, N) temporary
        return torch.einsum("bdcn,bcn->bcd", d, h)

    def _radial_block(self, xt: torch.Tensor, s: int, e: int):
        """(d, r2) of rows [s, e): d (B, D, c, N) with d_ii = 0, r2 (B, c, N) with the self
        pairs at ``radial_safe``."""
        d = xt[:, :, s:e, None] - xt[:, :, None, :]
        r2 = self._r2(d)
        r2.diagonal(s, -2, -1).fill_(self.radial_safe)
        return d, r2

    def _pair_energy(self, x: torch.Tensor) -> torch.Tensor:
        assert self.pairs is not None and self._pair is not None
        B, N, D = x.shape
        sym = self.pairs.symmetric
        total = x.new_zeros(B)
        if self.profile is not None:
            xt = x.transpose(1, 2)
            c = self._rows(B, D, N)
            for s in range(0, N, c):
                e = min(N, s + c)
                d, r2 = self._radial_block(xt, s, e)
                v = self._full(self._pair[0].run(r2)[0], r2)
                total = total + self._drop_self(v, s, e, N, True).sum((-1, -2))
            return 0.5 * total
        for s, e, d in self._blocks(x):
            (v,) = self._pair[0].run(*d.unbind(1))
            v = self._full(v, d[:, 0])
            total = total + self._drop_self(v, s, e, N, sym).sum((-1, -2))
        return 0.5 * total if sym else total

    def _pair_force(self, x: torch.Tensor) -> torch.Tensor:
        """dH/dq of the pair sum, (B, N, D)."""
        assert self.pairs is not None and self._pair is not None
        B, N, D = x.shape
        c = self._rows(B, D, N)
        if self.profile is not None:
            xt = x.transpose(1, 2)
            if c >= N:  # one block: no loop, no concatenation
                d, r2 = self._radial_block(xt, 0, N)
                return self._contract(d, self._radial_h(r2, 0))
            out = x.new_empty(B, N, D)
            for s in range(0, N, c):
                e = min(N, s + c)
                d, r2 = self._radial_block(xt, s, e)
                out[:, s:e] = self._contract(d, self._radial_h(r2, s))
            return out
        sym = self.pairs.symmetric
        rows_out: list[torch.Tensor] = []
        cols = None if sym else x.new_zeros(B, D, N)
        for s, e, d in self._blocks(x):
            outs = self._pair[1].run(*d.unbind(1))
            gs = [self._drop_self(self._full(g, d[:, 0]), s, e, N, sym) for g in outs]
            if self.radial:
                rows_out.append(self._contract(d, gs[0]))
                continue
            rows_out.append(torch.stack([g.sum(-1) for g in gs], -1))  # (B, c, D)
            if cols is not None:  # d/dq_j F(q_i - q_j) = -dF/dd, for j > i
                cols = cols - torch.stack([g.sum(-2) for g in gs], 1)
        out = torch.cat(rows_out, 1) if len(rows_out) > 1 else rows_out[0]
        return out if cols is None else out + cols.transpose(1, 2)

    def _radial_h(self, r2: torch.Tensor, s: int) -> torch.Tensor | float:
        """pair_h(r2) (B, c, N), or a number for a harmonic pair (h constant)."""
        assert self._pair is not None
        h = self._pair[1].run(r2)[0]
        if not isinstance(h, torch.Tensor) or h.shape != r2.shape:
            return self._full(h, r2)
        # the self pairs were evaluated at the safe r2, where h is finite; d_ii = 0 removes them
        return h

    # ------------------------------------------------------------------ the protocol
    def _check(self, q: torch.Tensor, p: torch.Tensor) -> None:
        if q.shape[-1] != self.n or q.shape != p.shape:
            raise ValueError(f"{self.name}: q, p must both have shape (..., {self.n}); "
                             f"got {tuple(q.shape)} and {tuple(p.shape)}")

    def hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """H(q, p) -> (...)."""
        self._check(q, p)
        batch = q.shape[:-1]
        x, y = q.reshape(-1, self.N, self.D), p.reshape(-1, self.N, self.D)
        out = x.new_full((x.shape[0],), self.constant)
        if self._part is not None:
            out = out + self._part[0](x, y).sum(-1)
        if self.pairs is not None:
            out = out + self._pair_energy(x)
        if self.rest is not None:
            out = out + self.rest.hamiltonian(q, p).reshape(-1)
        return out.reshape(batch)

    def dH_dq(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """dH/dq -> (..., N * D)."""
        self._check(q, p)
        x = q.reshape(-1, self.N, self.D)
        out: torch.Tensor | None = None
        if self._part_q:
            out = self._part[1](x, p.reshape(x.shape))
        if self.pairs is not None:
            f = self._pair_force(x)
            out = f if out is None else out + f
        out = torch.zeros_like(q) if out is None else out.reshape(q.shape)
        if self.rest is not None:
            out = out + self.rest.dH_dq(q, p)
        return out

    def dH_dp(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """dH/dp -> (..., N * D)."""
        self._check(q, p)
        if self._part_dp_identity and self.rest is None:
            return p  # T = sum p^2 / 2: dH/dp = p (no program call, no copy)
        out = (self._part[2](q.reshape(-1, self.N, self.D), p.reshape(-1, self.N, self.D))
               .reshape(q.shape) if self._part is not None else torch.zeros_like(p))  # fmt: skip
        if self.rest is not None:
            out = out + self.rest.dH_dp(q, p)
        return out


    # ------------------------------------------------------------------ printing
    @property
    def source(self) -> str:
        """The torch source of what runs: the lowered generic pieces and the drivers."""
        parts = [f'"""Structured Hamiltonian over q, p of shape (..., N * D), N = {self.N}, '
                 f'D = {self.D}; separable={self.separable}.\n'
                 "H = sum_i particle(q_i, p_i) + sum_{i<j} pair(d = q_i - q_j) + rest(q, p); "
                 'the pair sum runs on (B, D, c, N) difference blocks."""\n\nimport torch\n']
        if self._part is not None:
            parts += [f.source for f in self._part]
        if self._pair is not None and self.pairs is not None:
            parts.append(self._pair_source())
        drive = ["def dH_dq(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:",
                 f"    x, y = q.reshape(-1, {self.N}, {self.D}), p.reshape(-1, {self.N}, {self.D})",
                 ]  # fmt: skip
        terms = (["particle_dq(x, y)"] if self._part_q else []) + (
            ["pair_force(x)"] if self._pair is not None else [])
        drive.append(f"    out = {' + '.join(terms) if terms else 'torch.zeros_like(x)'}")
        drive.append("    out = out.reshape(q.shape)")
        if self.rest is not None:
            drive.append("    out = out + rest_dH_dq(q, p)  # below")
        drive.append("    return out")
        parts.append("\n".join(drive) + "\n")
        if self.rest is not None:
            parts.append("# rest (unrolled over the flattened coordinates):\n"
                         + "\n\n".join(f.source.replace(f"def {f.name}(", f"def rest_{f.name}(")
                                       for f in (self.rest.hamiltonian, self.rest.dH_dq,
                                                 self.rest.dH_dp)))  # fmt: skip
        return "\n\n".join(parts)

    def _pair_source(self) -> str:
        """pair / pair_h / pair_grad and the blocked pair_force driver, as they run."""
        assert self._pair is not None and self.pairs is not None
        radial = self.profile is not None
        if radial:
            sig = "r2: torch.Tensor"
            fnames = ("pair", "pair_h")
            head = (f"# radial pair: V(d) = f(r2), r2 = d . d, f = {sympy.sstr(self.profile)}; "
                    "dV/dd_a = d_a * pair_h(r2), pair_h = 2 f'(r2)\n")
        else:
            sig = ", ".join(f"d{a}: torch.Tensor" for a in range(self.D))
            fnames = ("pair", "pair_h" if self.radial else "pair_grad")
            head = ""
        parts = []
        for prog, fname in zip(self._pair, fnames, strict=True):
            outs = prog.out_srcs
            ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
            parts.append("\n".join([f"def {fname}({sig}):", *prog.lines,
                                    f"    return {ret}"]) + "\n")  # fmt: skip
        big = f"(d[:, 0].numel() > {_SMALL_BLOCK})"
        lines = [
            "def pair_force(x: torch.Tensor) -> torch.Tensor:  # x: (B, N, D)",
            "    B, N, D = x.shape",
            "    xt = x.transpose(1, 2)",
            f"    c = max(1, min(N, {self.chunk_elements} // (B * D * N)))  # rows per block",
            "    out = []" + ("" if self.pairs.symmetric else "\n    cols = x.new_zeros(B, D, N)"),
            "    for s in range(0, N, c):",
            "        e = min(N, s + c)",
            "        d = xt[:, :, s:e, None] - xt[:, :, None, :]  # (B, D, c, N)",
        ]
        contract = ("torch.einsum('bdcn,bcn->bcd', d, h) if big else "
                    "(d * h[:, None]).sum(-1).transpose(1, 2)")
        if radial:
            lines += [
                f"        big = {big}",
                "        r2 = sum(da * da for da in d.unbind(1)) if big else (d * d).sum(1)"
                "  # in place (addcmul_) when big",
                f"        r2.diagonal(s, -2, -1).fill_({self.radial_safe!r})"
                "  # self pairs: finite h, and d_ii = 0",
                "        h = pair_h(r2)",
                f"        out.append({contract})",
            ]
        else:
            keep = ("g.diagonal(s, -2, -1).zero_()  # drop i = j" if self.pairs.symmetric else
                    "g = torch.where(j > i, g, 0.0)  # i, j = arange(s, e)[:, None], "
                    "arange(N)[None, :]")
            lines += [
                "        d.diagonal(s, -2, -1).zero_()",
                "        d[:, 0].diagonal(s, -2, -1).fill_(1.0)  # self pairs at a safe "
                "separation, discarded",
            ]
            if self.radial:
                lines += [
                    f"        big = {big}",
                    "        h = pair_h(*d.unbind(1))",
                    f"        {keep.replace('g', 'h')}",
                    f"        out.append({contract})",
                ]
            else:
                lines += [
                    "        gs = pair_grad(*d.unbind(1))",
                    f"        for g in gs: {keep}",
                    "        out.append(torch.stack([g.sum(-1) for g in gs], -1))",
                ]
        if not self.pairs.symmetric:
            lines.append("        cols = cols - torch.stack([g.sum(-2) for g in gs], 1)")
            lines.append("    return torch.cat(out, 1) + cols.transpose(1, 2)")
        else:
            lines.append("    return torch.cat(out, 1)")
        return head + "\n".join(parts) + "\n" + "\n".join(lines) + "\n"
