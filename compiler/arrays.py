"""Coupling and parameter arrays realised from their declarations (numpy, float64).

``param J on bonds = normal(0, 1, seed = 1)`` draws J for every bond; ``param W[i, j] = sum(xi[mu,
i] * xi[mu, j] for mu) / N`` evaluates an index definition by einsum (the Hebb rule is a matrix
product, never a (P, N, N) intermediate); ``W[i, i] = 0`` assigns a diagonal;
``load("params.safetensors", key = "W")`` reads a learned array (no pickle). Shapes:

- sites: ``lattice.shape``; bonds(k): ``(*lattice.shape, n_directions)``;
- pairs: ``(N, N)`` symmetric with zero diagonal; a site set of a graph: ``(n_set,)``;
  a pair structure of a graph: ``(n_i, n_j)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from physml_lang.check.constants import evaluate
from physml_lang.check.model import check_random_arguments
from physml_lang.check.paths import resolve_user_path
from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.sitesets import SiteSetGraph, pair_structures, site_sets
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import ArrayIR
from physml_lang.ir.walk import Walker, as_call, as_list, factors, fail, int_literal, name_of


@dataclass
class RealArray:
    """An array with its values. ``uniform`` arrays hold one number everywhere and lower to it."""

    name: str
    on: str
    values: np.ndarray
    uniform: bool
    learnable: bool
    span: Span | None
    init: str = "constant"

    @property
    def uniform_value(self) -> float:
        if self.on == "pairs":  # the diagonal is zero by construction: read an off-diagonal entry
            return float(self.values[0, 1]) if self.values.shape[0] > 1 else 0.0
        return float(self.values.reshape(-1)[0]) if self.values.size else 0.0


def array_shape(lat: Lattice, on: str, span: Span | None) -> tuple[int, ...]:
    if isinstance(lat, SiteSetGraph):
        sets = site_sets(lat)
        if on in sets:
            return (sets[on],)
        a, b = pair_structures(lat)[on]
        return (sets[a], sets[b])
    if on == "sites":
        return lat.shape
    if on == "pairs" or (on == "bonds" and lat.edge_list is not None):
        return (lat.n_sites, lat.n_sites)  # a graph's bonds are some of its pairs
    if lat.graph:
        fail("P408", f"a {lat.kind} graph has bonds and pairs, not {on}" if lat.edge_list
             else f"a complete graph has pairs, not {on}", span, "use 'on pairs'")  # fmt: skip
    shell = 2 if on == "bonds2" else 1
    if shell not in lat.bond_types:
        fail("P408", f"{lat.kind} lattices have no bonds({shell})", span)
    return (*lat.cells, len(lat.bond_types[shell]))  # one value per cell and bond type


def realise_array(a: ArrayIR, lat: Lattice, params: dict[str, Any],
                  arrays: dict[str, np.ndarray]) -> RealArray:  # fmt: skip
    """The values of one declared array; ``arrays``: data and earlier arrays by name."""
    shape = array_shape(lat, a.on, a.span) if a.on is not None else None
    if shape is not None:
        _check_elements(list(shape), a.span)
    call = as_call(a.value)
    if a.indices:
        values, on = _index_defined(a, lat, params, arrays, shape)
        for d in a.diagonal:
            values = _diagonal(a, d, values, params, arrays)
        return RealArray(a.name, on, values, False, a.learnable, a.span, "index")
    if call is not None and call.func == "load":
        values = load_array(call, a.name, shape, params)
        return RealArray(a.name, a.on, values, False, a.learnable, a.span, "load")
    if call is not None and call.func in ("normal", "uniform", "choice"):
        values = _random(call, shape, a.on, params)
        return RealArray(a.name, a.on, values, False, a.learnable, a.span, call.func)
    v = float(evaluate(a.value, params, f"the value of '{a.name}'"))
    values = np.full(shape, v)
    if a.on == "pairs":
        np.fill_diagonal(values, 0.0)
    return RealArray(a.name, a.on, values, not a.learnable, a.learnable, a.span)


def _random(call: E.Call, shape: tuple[int, ...], on: str, params: dict) -> np.ndarray:
    what = f"the arguments of {call.func}"
    args = [evaluate(x, params, what) for x in call.args]
    seed_kw = call.kwarg("seed")
    seed = evaluate(seed_kw.value, params, what) if seed_kw is not None else 0
    check_random_arguments(call, args)  # again: other parameter values than the declaration's
    rng = np.random.default_rng(seed)
    if call.func == "normal":
        values = rng.normal(args[0], args[1] + 0.0, size=shape)  # -0.0 is a spread of 0
    elif call.func == "uniform":
        values = rng.uniform(args[0], args[1], size=shape)
    else:
        values = rng.choice(np.asarray(args[0], dtype=float), size=shape)
    if on == "pairs" and len(shape) == 2 and shape[0] == shape[1]:
        values = np.triu(values, 1)
        values = values + values.T
    return values.astype(np.float64)


def load_array(call: E.Call, name: str, shape, params: dict) -> np.ndarray:
    """``load("params.safetensors", key = "W")``: a learned array saved by a training run."""
    path = evaluate(call.args[0], params, "the arguments of load")
    key_kw = call.kwarg("key")
    key = evaluate(key_kw.value, params, "the arguments of load") if key_kw else name
    if not isinstance(path, str):
        fail("P303", "load takes a file name in quotes: load(\"w.safetensors\")",
             call.args[0].span)  # fmt: skip
    p = resolve_user_path(path, call.args[0].span, "parameter file", {".safetensors"},
                          suffix_hint="parameters are loaded from .safetensors files",
                          type_code="P608")  # fmt: skip
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(p))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        fail("P608", f"cannot read {p.name}: {exc}", call.args[0].span)
    if key not in tensors:
        fail("P608", f"{p.name} has no tensor '{key}'", call.span,
             did_you_mean(key, set(tensors)) or "tensors: " + ", ".join(sorted(tensors)))  # fmt: skip
    values = np.asarray(tensors[key], dtype=np.float64)
    if tuple(values.shape) != tuple(shape):
        fail("P608", f"'{key}' in {p.name} has shape {tuple(values.shape)}, expected "
             f"{tuple(shape)}", call.span)  # fmt: skip
    if not np.isfinite(values).all():
        fail("P608", f"'{key}' in {p.name} holds non-finite values", call.span)
    return values


def _index_defined(a: ArrayIR, lat: Lattice, params, arrays, shape):
    free = list(a.indices)
    if shape is not None and len(shape) != len(free):
        fail("P302", f"'{a.name}' on {a.on} takes {len(shape)} index(es), got {len(free)}",
             a.span)  # fmt: skip
    ev = IndexEvaluator(params, arrays, f"the definition of '{a.name}'")
    values = ev.evaluate(a.value, free, shape)
    on = a.on or _infer_structure(lat, values.shape, a.span, a.name)
    expected = array_shape(lat, on, a.span)
    if tuple(values.shape) != tuple(expected):
        fail("P319", f"'{a.name}' has shape {tuple(values.shape)}, but arrays on {on} have "
             f"shape {tuple(expected)}", a.span)  # fmt: skip
    if not np.isfinite(values).all():
        fail("P404", f"'{a.name}' has non-finite entries", a.value.span)
    return values, on


def _diagonal(a: ArrayIR, d, values: np.ndarray, params, arrays) -> np.ndarray:
    names = list(d.indices)
    if len(names) != values.ndim:
        fail("P320", f"'{a.name}' is already defined; a second definition assigns a diagonal, "
             f"e.g. {a.name}[i, i] = 0", d.span)  # fmt: skip
    uniq = list(dict.fromkeys(names))
    sizes = [values.shape[names.index(n)] for n in uniq]
    ev = IndexEvaluator(params, arrays, f"the definition of '{a.name}'")
    sub = ev.evaluate(d.value, uniq, tuple(sizes))
    grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    index = tuple(grids[uniq.index(n)] for n in names)
    out = values.copy()
    out[index] = sub
    return out


def _infer_structure(lat, shape: tuple[int, ...], span, name: str) -> str:
    """Where an index-defined array lives, from its shape."""
    candidates = []
    if isinstance(lat, SiteSetGraph):
        sets = site_sets(lat)
        candidates += [s for s, n in sets.items() if shape == (n,)]
        candidates += [p for p, (a, b) in pair_structures(lat).items()
                       if shape == (sets[a], sets[b])]  # fmt: skip
    else:
        if shape == tuple(lat.shape):
            candidates.append("sites")
        if lat.graph and shape == (lat.n_sites, lat.n_sites):
            candidates.append("pairs")
    if len(candidates) != 1:
        fail("P408", f"cannot tell where '{name}' of shape {shape} lives", span,
             f"say it: 'param {name}[...] on STRUCTURE = ...'"
             + (f" (one of {', '.join(candidates)})" if candidates else ""))  # fmt: skip
    return candidates[0]


# ---------------------------------------------------------------- index expressions

_ELEMENTWISE = {"exp", "log", "sqrt", "cos", "sin", "tanh", "cosh", "sinh", "abs", "sign"}

Labelled = tuple[np.ndarray, tuple[str, ...]]


class IndexEvaluator(Walker[Labelled]):
    """Evaluates an index expression to an array with named axes (``env``: bound indices).

    Products summed over an index become one ``numpy.einsum``; nothing is handed to Python's
    evaluator."""

    def __init__(self, params: dict[str, Any], arrays: dict[str, np.ndarray], what: str):
        self.params = params
        self.arrays = arrays
        self.what = what
        self.sizes: dict[str, int] = {}

    def evaluate(self, e: E.Expr, free: list[str], shape: tuple[int, ...] | None) -> np.ndarray:
        """The value of ``e`` as an array over the free indices, in order."""
        for name, n in zip(free, shape or ()):
            self.sizes[name] = n
        t, idx = self.walk(e, frozenset(free))
        for name in idx:
            if name not in free:
                fail("P309", f"index '{name}' is not summed over and not on the left-hand side",
                     e.span, f"sum over it: sum(... for {name})")  # fmt: skip
        for name in free:
            if name not in self.sizes:
                fail("P309", f"the range of index '{name}' is unknown", e.span,
                     "index a data array with it, or say where the array lives: "
                     "'param h on sites = ...'")  # fmt: skip
        t = _align(t, idx, free)
        _check_elements([self.sizes[n] for n in free], e.span)
        return np.broadcast_to(t, [self.sizes[n] for n in free]).copy()

    def not_here(self, e: E.Expr, what: str = "this"):

        return PhysmlError(Diagnostic(
            "P305", f"this expression is not allowed in {self.what}", e.span,
            "index expressions use + - * / ^, exp, log, tanh, ... and sum(... for mu)"))  # fmt: skip

    def on_number(self, e: E.Num, env: Any) -> Labelled:
        return np.asarray(float(e.value)), ()

    def on_name(self, e: E.Name, env: Any) -> Labelled:
        if e.id in env:
            fail("P309", f"the index '{e.id}' cannot be used as a number", e.span)
        if e.id in self.params and isinstance(self.params[e.id], int | float):
            return np.asarray(float(self.params[e.id])), ()
        if e.id == "pi":
            return np.asarray(np.pi), ()
        if e.id in self.arrays:
            a = self.arrays[e.id]
            if np.ndim(a) == 0:
                return np.asarray(a, dtype=np.float64), ()
            fail("P314", f"'{e.id}' is an array: index it, e.g. {e.id}[i]", e.span)
        fail("P200", f"unknown name '{e.id}' in {self.what}", e.span,
             did_you_mean(e.id, set(self.params) | set(self.arrays) | set(env)))  # fmt: skip

    def on_unary(self, e: E.Unary, env: Any) -> Labelled:
        if e.op != "-":
            raise self.not_here(e)
        t, idx = self.walk(e.operand, env)
        return -t, idx

    def on_binary(self, e: E.Binary, env: Any) -> Labelled:
        if e.op not in ("+", "-", "*", "/", "^"):
            raise self.not_here(e)
        a, ia = self.walk(e.left, env)
        b, ib = self.walk(e.right, env)
        out = list(ia) + [n for n in ib if n not in ia]
        a, b = _align(a, ia, out), _align(b, ib, out)
        if e.op == "+":
            return a + b, tuple(out)
        if e.op == "-":
            return a - b, tuple(out)
        if e.op == "*":
            return a * b, tuple(out)
        if e.op == "/":
            if bool((b == 0).any()):
                fail("P417", "division by zero", e.right.span)
            return a / b, tuple(out)
        return a**b, tuple(out)

    def on_call(self, e: E.Call, env: Any) -> Labelled:
        if e.func not in _ELEMENTWISE or len(e.args) != 1:
            raise self.not_here(e)
        t, idx = self.walk(e.args[0], env)
        fn = {"abs": np.abs, "sign": np.sign}.get(e.func) or getattr(np, e.func)
        return fn(t), idx

    def on_index(self, e: E.Index, env: Any) -> Labelled:
        base = name_of(e.base)
        if base is None or base not in self.arrays:
            fail("P200", f"'{base or '?'}' is not a data array or parameter array", e.base.span,
                 did_you_mean(base or "?", set(self.arrays)))  # fmt: skip
        a = np.asarray(self.arrays[base], dtype=np.float64)
        if len(e.indices) != a.ndim:
            fail("P302", f"'{base}' has {a.ndim} axes, indexed with {len(e.indices)}", e.span)
        names = []
        for x, n in zip(e.indices, a.shape):
            name = name_of(x)
            if name is None or name not in env:
                fail("P310", "an index here is a bound index name (i, j, mu)", x.span,
                     "e.g. xi[mu, i] inside sum(... for mu)")  # fmt: skip
            if self.sizes.setdefault(name, n) != n:
                fail("P302", f"index '{name}' ranges over {self.sizes[name]} values here it "
                     f"addresses an axis of length {n}", x.span)  # fmt: skip
            names.append(name)
        if len(set(names)) < len(names):  # a repeated index takes a diagonal
            uniq = list(dict.fromkeys(names))
            letters = {n: chr(97 + k) for k, n in enumerate(uniq)}
            spec = "".join(letters[n] for n in names) + "->" + "".join(letters[n] for n in uniq)
            return np.einsum(spec, a), tuple(uniq)
        return a, tuple(names)

    def on_reduce(self, e: E.Reduce, env: Any) -> Labelled:
        if e.func != "sum":
            raise self.not_here(e)
        loops = []
        for loop in e.loops:
            if len(loop.names) != 1:
                fail("P315", "sum over one index at a time here: sum(... for mu)", loop.span)
            name = loop.names[0]
            if loop.domain is not None:
                call = as_call(loop.domain)
                bound = call.args[0] if call is not None and call.func == "range" and \
                    len(call.args) == 1 else loop.domain  # fmt: skip
                n = evaluate(bound, self.params, "a sum range")
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    fail("P304", "an index sum runs over range(n), n a positive integer",
                         loop.domain.span)  # fmt: skip
                self.sizes[name] = n
            loops.append(name)
        inner = frozenset(env | set(loops))
        evaluated = [self.walk(f, inner) for f in factors(e.body)]
        for name in loops:
            if name not in self.sizes:
                fail("P309", f"the range of '{name}' is unknown: index an array with it", e.span)
        all_idx = list(dict.fromkeys(n for _, idx in evaluated for n in idx))
        letters = {n: chr(97 + k) for k, n in enumerate(all_idx)}
        out = [n for n in all_idx if n not in loops]
        spec = ",".join("".join(letters[n] for n in idx) for _, idx in evaluated)
        spec += "->" + "".join(letters[n] for n in out)
        _check_elements([self.sizes[n] for n in out], e.span)
        t = np.einsum(spec, *[np.asarray(t, dtype=np.float64) for t, _ in evaluated], optimize=True)
        for name in loops:  # a summed index the body does not use counts its range
            if name not in all_idx:
                t = t * self.sizes[name]
        return t, tuple(out)


MAX_ARRAY_ELEMENTS = 2**28  # 2 GiB of float64 in one parameter array


def _check_elements(shape: list[int], span: Span | None) -> None:
    """Refuse an index definition whose array would not fit, before numpy allocates it."""
    n = math.prod(shape)
    if n > MAX_ARRAY_ELEMENTS:
        fail("P407", f"this array would have {n:.3g} entries ({' x '.join(map(str, shape))}), "
             f"more than physml builds ({MAX_ARRAY_ELEMENTS:.3g}: 2 GiB)", span,
             "use a smaller system, or couplings on bonds instead of all pairs")  # fmt: skip


def _align(t: np.ndarray, idx, out) -> np.ndarray:
    """Permute and reshape an array with axes ``idx`` to broadcast over axes ``out``."""
    idx = list(idx)
    t = np.asarray(t)
    perm = [idx.index(n) for n in out if n in idx]
    if perm and perm != list(range(len(perm))):
        t = np.transpose(t, perm)
    shape, k = [], 0
    for n in out:
        if n in idx:
            shape.append(t.shape[k])
            k += 1
        else:
            shape.append(1)
    return t.reshape(shape)


__all__ = ["RealArray", "realise_array", "array_shape", "IndexEvaluator", "load_array",
           "int_literal", "as_list"]
