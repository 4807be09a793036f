"""``data`` declarations: arrays loaded from files, drawn at random, or sampled from a model.

    data xi: spin[P, N] = random(seed = 1)                 # P random patterns of N spins
    data X: binary = load("digits.npz", key = "X")         # .npz (key), .npy or .csv
    data S: spin = sample(Ising(L = 8), n = 10000, T = 2.5, seed = 1)
    data D: binary = digits(threshold = 8)                 # scikit-learn's 8 x 8 digits

Sources are a registry (name -> pydantic schema, loader). Files are read without pickle
(``np.load(allow_pickle=False)``). The declared type ``domain[shape]`` is checked against what
was loaded: a wrong shape, a value outside the domain (a 2 in spin data), a missing key or a
corrupt file are located diagnostics (P600 file not found, P601 bad data).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import ast
from .diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from .evaluate import CallValue, ConstEvaluator, Ident
from .ir import Domain

MAX_ELEMENTS = 2**31 - 1
DATA_DOMAINS = {"spin", "binary", "potts", "real"}


def _fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


@dataclass
class DataIR:
    """A data array. ``values``: float64 array of shape ``shape``; ``domain`` its values."""

    name: str
    values: np.ndarray
    domain: Domain | None
    span: Span
    source: str
    meta: dict = field(default_factory=dict)  # e.g. the temperature of sampled data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)


# ---------------------------------------------------------------- sources


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, description="seed of the draw")
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability of the larger value")


class LoadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="a .npz, .npy or .csv file, relative to the .phys file")
    key: str | None = Field(None, description="the array of an .npz file")


class SampleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(1000, ge=1, le=10_000_000, description="number of configurations")
    T: float = Field(gt=0, description="temperature")
    sampler: str = Field("metropolis", description="a sampler name")
    chains: int = Field(100, ge=1, le=100_000, description="independent chains")
    burn_in: int = Field(1000, ge=0, description="sweeps before the first sample")
    thin: int = Field(10, ge=1, description="sweeps between samples of one chain")
    seed: int = Field(0, ge=0, description="seed of the chains")


class DigitsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(8.0, ge=0, le=16, description="pixels >= threshold (0..16) are on")


@dataclass(frozen=True)
class DataSource:
    schema: type[BaseModel]
    load: Callable[..., np.ndarray]
    positional: tuple[str, ...]
    doc: str


def _random(opts: RandomOptions, domain: Domain | None, shape, span, ctx) -> np.ndarray:
    if shape is None:
        _fail("P400", "random data needs a declared shape", span, "e.g. data xi: spin[P, N] = "
              "random(seed = 1)")  # fmt: skip
    if domain is None or not domain.discrete:
        _fail("P400", "random data needs a discrete domain (spin, binary, potts(q))", span)
    values = np.asarray(domain.values())
    rng = np.random.default_rng(opts.seed)
    if len(values) == 2:
        k = (rng.random(size=shape) < opts.p).astype(np.int64)
    else:
        k = rng.integers(0, len(values), size=shape)
    return values[k].astype(np.float64)


def _load(opts: LoadOptions, domain, shape, span, ctx) -> np.ndarray:
    base = ctx.get("base_dir") or Path.cwd()
    path = Path(opts.path)
    if not path.is_absolute():
        path = Path(base) / path
    if not path.is_file():
        _fail("P600", f"data file not found: {path}", span, "paths are relative to the .phys file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.keys())
                key = opts.key
                if key is None:
                    if len(keys) != 1:
                        _fail("P601", f"{path.name} holds {len(keys)} arrays; say which: "
                              "key = \"...\"", span, "keys: " + ", ".join(keys))  # fmt: skip
                    key = keys[0]
                if key not in keys:
                    _fail("P601", f"{path.name} has no array '{key}'", span,
                          did_you_mean(key, keys) or "keys: " + ", ".join(keys))  # fmt: skip
                arr = f[key]
        elif suffix == ".npy":
            if opts.key is not None:
                _fail("P401", "a .npy file holds one array: no key", span)
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            if opts.key is not None:
                _fail("P401", "a .csv file holds one array: no key", span)
            arr = _read_csv(path, span)
        else:
            _fail("P601", f"unsupported data file type '{suffix}'", span, "use .npz, .npy or .csv")
    except PhysmlError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        _fail("P601", f"cannot read {path.name}: {exc}", span,
              "the file is corrupt or not a numeric array (object arrays are never unpickled)")  # fmt: skip
    if arr.dtype.kind not in "biuf":
        _fail("P601", f"{path.name}: the array has dtype {arr.dtype}, not numbers", span)
    return np.asarray(arr, dtype=np.float64)


def _read_csv(path: Path, span) -> np.ndarray:
    with open(path) as f:
        first = f.readline()
    skip = 0
    try:
        [float(x) for x in first.strip().split(",") if x.strip()]
    except ValueError:
        skip = 1  # a header line
    try:
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        _fail("P601", f"cannot read {path.name}: {exc}", span, "a CSV of numbers, one row each")


def _sample(opts: SampleOptions, domain, shape, span, ctx) -> np.ndarray:
    import torch

    from physml_lang.compiler.kinds import compile_model
    from physml_lang.runtime.samplers import SAMPLERS

    from .checker import validate_options

    model_call: CallValue = ctx["model_call"]
    resolve = ctx.get("resolve_model")
    if resolve is None:
        _fail("P800", "sample(...) data is declared at the top level of a file", span)
    checker = resolve(model_call.name, model_call.span)
    if opts.sampler not in SAMPLERS:
        _fail("P200", f"unknown sampler '{opts.sampler}'", span,
              did_you_mean(opts.sampler, set(SAMPLERS)))  # fmt: skip
    entry = SAMPLERS[opts.sampler]
    args = {k: (str(v) if isinstance(v, Ident) else v) for k, v in model_call.kwargs.items()}
    if model_call.args:
        _fail("P302", "model parameters are given by name: sample(Ising(L = 8), ...)", span)
    cm = compile_model(checker.instantiate(args, dict.fromkeys(args, model_call.span)))
    chains = min(opts.chains, opts.n)
    per_chain = -(-opts.n // chains)
    sopts = validate_options(entry.schema, {"chains": chains}, {}, span, opts.sampler)
    g = torch.Generator().manual_seed(opts.seed)
    beta = torch.full((chains,), 1.0 / opts.T)
    sampler = entry.factory(cm, sopts, beta, g)
    state = sampler.initial_state()
    out = []
    with torch.no_grad():
        for _ in range(opts.burn_in):
            state = sampler.sweep(state)
        for _ in range(per_chain):
            for _ in range(opts.thin):
                state = sampler.sweep(state)
            out.append(state[sampler.field].clone())
    x = torch.stack(out, 1).reshape(-1, *cm.lattice.shape)[: opts.n]
    return x.double().numpy()


def _digits(opts: DigitsOptions, domain, shape, span, ctx) -> np.ndarray:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        _fail("P600", "digits(...) needs scikit-learn, which is not installed", span,
              "pip install scikit-learn")  # fmt: skip
    x = (load_digits().data >= opts.threshold).astype(np.float64)
    if domain is not None and domain.kind == "spin":
        x = 2 * x - 1
    return x


SOURCES: dict[str, DataSource] = {
    "random": DataSource(RandomOptions, _random, (), "seeded random configurations"),
    "load": DataSource(LoadOptions, _load, ("path",), "an .npz/.npy/.csv file"),
    "sample": DataSource(SampleOptions, _sample, (), "configurations sampled from a model"),
    "digits": DataSource(DigitsOptions, _digits, (), "scikit-learn's 8x8 digits, binarised"),
}

# ---------------------------------------------------------------- evaluation


def declared_type(
    t: ast.TypeExpr | None, params: dict[str, Any]
) -> tuple[Domain | None, tuple[int, ...] | None]:
    """The domain and shape of ``spin[P, N]`` / ``binary`` / ``potts(3)[M, L, L]``."""
    if t is None:
        return None, None
    if t.name not in DATA_DOMAINS:
        _fail("P301", f"unknown data domain '{t.name}'", t.span,
              did_you_mean(t.name, DATA_DOMAINS) or "domains: " + ", ".join(sorted(DATA_DOMAINS)))  # fmt: skip
    q = None
    if t.name == "potts":
        if len(t.args) != 1:
            _fail("P302", "potts takes the number of states: potts(q)", t.span)
        q = ConstEvaluator(params, what="the number of Potts states")(t.args[0])
        if not isinstance(q, int) or isinstance(q, bool) or q < 2:
            _fail("P300", "the number of Potts states must be an integer >= 2", t.args[0].span)
    elif t.args or t.kwargs:
        _fail("P302", f"domain '{t.name}' takes no arguments", t.span)
    shape = None
    if t.shape:
        ev = ConstEvaluator(params, what="a data shape")
        shape = []
        for x in t.shape:
            v = ev(x)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                _fail("P300", f"a data shape is made of positive integers, got {v!r}", x.span)
            shape.append(v)
        if int(np.prod(shape)) > MAX_ELEMENTS:
            _fail("P400", "this data array is too large", t.span)
        shape = tuple(shape)
    return Domain(t.name, q), shape


_CACHE: dict[tuple, DataIR] = {}


def evaluate_data(
    decl: ast.DataDecl,
    params: dict[str, Any],
    base_dir: Path | None = None,
    resolve_model: Callable | None = None,
) -> DataIR:
    """Load, draw or sample one data declaration and check it against its declared type."""
    key = (id(decl), tuple(sorted((k, repr(v)) for k, v in params.items())))
    if key in _CACHE and _CACHE[key].span is decl.span:
        return _CACHE[key]
    domain, shape = declared_type(decl.type, params)
    call = decl.value
    if not isinstance(call, ast.Call) or call.func not in SOURCES:
        name = call.func if isinstance(call, ast.Call) else None
        _fail("P200" if name else "P300",
              f"unknown data source '{name}'" if name else "data comes from a source call",
              call.func_span if isinstance(call, ast.Call) else call.span,
              (did_you_mean(name, set(SOURCES)) if name else None)
              or "sources: " + ", ".join(f"{k} ({v.doc})" for k, v in SOURCES.items()))  # fmt: skip
    src = SOURCES[call.func]
    ev = ConstEvaluator(params, allow_idents=True, allow_calls=True,
                        what=f"the arguments of {call.func}")  # fmt: skip
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    ctx: dict[str, Any] = {"base_dir": base_dir, "resolve_model": resolve_model}
    args = list(call.args)
    if call.func == "sample":
        if not args or not isinstance(args[0], ast.Call):
            _fail("P302", "sample takes a model first: sample(Ising(L = 8), n = 1000, T = 2.0)",
                  call.span)  # fmt: skip
        ctx["model_call"] = ev(args.pop(0))
    if len(args) > len(src.positional):
        _fail("P302", f"{call.func} takes {len(src.positional)} positional argument(s)",
              args[len(src.positional)].span)  # fmt: skip
    for name, a in zip(src.positional, args):
        values[name], spans[name] = ev(a), a.span
    for k in call.kwargs:
        values[k.name], spans[k.name] = ev(k.value), k.span
    for k, v in values.items():
        if isinstance(v, Ident):
            values[k] = v.name
        if isinstance(v, float) and v.is_integer() and k in ("seed", "n", "chains", "burn_in",
                                                            "thin"):
            values[k] = int(v)
    from .checker import validate_options

    opts = validate_options(src.schema, values, spans, call.span, f"data source {call.func}")
    arr = src.load(opts, domain, shape, call.span, ctx)
    meta = {"T": opts.T, "model": ctx["model_call"].name} if call.func == "sample" else {}
    data = DataIR(decl.name, arr, domain, decl.span, call.func, meta)
    check_values(data, domain, shape, call.span)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = data
    return data


def check_values(data: DataIR, domain: Domain | None, shape, span: Span | None) -> None:
    """A declared shape must match; discrete data must take the domain's values only."""
    arr = data.values
    if shape is not None and tuple(arr.shape) != tuple(shape):
        _fail("P601", f"data '{data.name}' has shape {tuple(arr.shape)}, but "
              f"{tuple(shape)} was declared", span)  # fmt: skip
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        _fail("P601", f"data '{data.name}' holds a non-finite value at {bad}", span)
    if domain is not None and domain.discrete:
        allowed = np.asarray(domain.values())
        ok = np.isin(arr, allowed)
        if not ok.all():
            bad = tuple(int(i) for i in np.argwhere(~ok)[0])
            _fail("P601", f"data '{data.name}' holds {arr[bad]:g} at index {bad}, which is not a "
                  f"{domain} value", span,
                  f"{domain} values: " + ", ".join(f"{v:g}" for v in allowed))  # fmt: skip


def check_feeds(data: DataIR, domain: Domain, shape: tuple[int, ...], span: Span | None,
                what: str) -> np.ndarray:  # fmt: skip
    """Data that trains a field: shape (n_samples, *shape) and the field's domain.

    Returns the values reshaped to (n_samples, *shape)."""
    arr = data.values
    size = int(np.prod(shape))
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != size:
        _fail("P601", f"data '{data.name}' has shape {tuple(arr.shape)}; {what} needs "
              f"(samples, {', '.join(map(str, shape))})", span)  # fmt: skip
    check_values(data, domain, None, span)
    return arr.reshape(arr.shape[0], *shape)


# ---------------------------------------------------------------- index-defined arrays

_ELEMENTWISE = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "cos": "cos", "sin": "sin", "tanh": "tanh",
    "cosh": "cosh", "sinh": "sinh", "abs": "abs", "sign": "sign",
}  # fmt: skip


class IndexEvaluator:
    """Evaluates an index expression (``sum(xi[mu, i] * xi[mu, j] for mu) / N``) to an array.

    Built from the parse tree: every sub-expression becomes a torch tensor with named axes;
    products summed over an index become one ``torch.einsum`` (the Hebb rule is a matrix
    product, never a (P, N, N) intermediate). Nothing is handed to Python's evaluator.
    """

    def __init__(self, params: dict[str, Any], arrays: dict[str, np.ndarray],
                 what: str):  # fmt: skip
        self.params = params
        self.arrays = arrays
        self.what = what
        self.sizes: dict[str, int] = {}

    def fail(self, message: str, span: Span, hint: str | None = None, code: str = "P300"):
        _fail(code, message, span, hint)

    def evaluate(self, e: ast.Expr, free: list[str], shape: tuple[int, ...] | None):
        """The value of ``e`` as an array over the free indices, in order (shape given or
        inferred from the arrays the indices address)."""

        for name, n in zip(free, shape or ()):
            self.sizes[name] = n
        t, idx = self(e, set(free))
        for name in idx:
            if name not in free:
                self.fail(f"index '{name}' is not summed over and not on the left-hand side",
                          e.span, f"sum over it: sum(... for {name})")  # fmt: skip
        for name in free:
            if name not in self.sizes:
                self.fail(f"the range of index '{name}' is unknown", e.span,
                          "index a data array with it, or say where the array lives: "
                          "'param h on sites = ...'")  # fmt: skip
        t = _align(t, idx, free, self.sizes)
        return t.expand(*[self.sizes[n] for n in free]).clone()

    def __call__(self, e: ast.Expr, bound: set[str]):
        import torch

        if isinstance(e, ast.Number):
            return torch.tensor(float(e.value), dtype=torch.float64), ()
        if isinstance(e, ast.Name):
            if e.id in bound:
                self.fail(f"the index '{e.id}' cannot be used as a number", e.span)
            if e.id in self.params and isinstance(self.params[e.id], int | float):
                return torch.tensor(float(self.params[e.id]), dtype=torch.float64), ()
            if e.id == "pi":
                return torch.tensor(np.pi, dtype=torch.float64), ()
            if e.id in self.arrays:
                a = self.arrays[e.id]
                if np.ndim(a) == 0:
                    return torch.as_tensor(a, dtype=torch.float64), ()
                self.fail(f"'{e.id}' is an array: index it, e.g. {e.id}[i]", e.span, code="P302")
            self.fail(f"unknown name '{e.id}' in {self.what}", e.span,
                      did_you_mean(e.id, set(self.params) | set(self.arrays) | bound), "P200")  # fmt: skip
        if isinstance(e, ast.Index):
            return self._index(e, bound)
        if isinstance(e, ast.Unary) and e.op == "-":
            t, idx = self(e.operand, bound)
            return -t, idx
        if isinstance(e, ast.Binary) and e.op in ("+", "-", "*", "/", "^"):
            a, ia = self(e.left, bound)
            b, ib = self(e.right, bound)
            out = list(ia) + [n for n in ib if n not in ia]
            a, b = _align(a, ia, out, None), _align(b, ib, out, None)
            if e.op == "+":
                return a + b, tuple(out)
            if e.op == "-":
                return a - b, tuple(out)
            if e.op == "*":
                return a * b, tuple(out)
            if e.op == "/":
                if bool((b == 0).any()):
                    self.fail("division by zero", e.right.span, code="P400")
                return a / b, tuple(out)
            return a**b, tuple(out)
        if isinstance(e, ast.Call) and e.func in _ELEMENTWISE and len(e.args) == 1:
            t, idx = self(e.args[0], bound)
            return getattr(torch, _ELEMENTWISE[e.func])(t), idx
        if isinstance(e, ast.Generator) and e.func == "sum":
            return self._sum(e, bound)
        self.fail(f"this expression is not allowed in {self.what}", e.span,
                  "index expressions use + - * / ^, exp, log, tanh, ... and sum(... for mu)")  # fmt: skip

    def _index(self, e: ast.Index, bound: set[str]):
        import torch

        if not isinstance(e.base, ast.Name) or e.base.id not in self.arrays:
            name = e.base.id if isinstance(e.base, ast.Name) else "?"
            self.fail(f"'{name}' is not a data array or parameter array", e.base.span,
                      did_you_mean(name, set(self.arrays)), "P200")  # fmt: skip
        a = torch.as_tensor(self.arrays[e.base.id], dtype=torch.float64)
        if len(e.indices) != a.dim():
            self.fail(f"'{e.base.id}' has {a.dim()} axes, indexed with {len(e.indices)}", e.span,
                      code="P302")  # fmt: skip
        names = []
        for x, n in zip(e.indices, a.shape):
            if not isinstance(x, ast.Name) or x.id not in bound:
                self.fail("an index here is a bound index name (i, j, mu)", x.span,
                          "e.g. xi[mu, i] inside sum(... for mu)")  # fmt: skip
            if self.sizes.setdefault(x.id, n) != n:
                self.fail(f"index '{x.id}' ranges over {self.sizes[x.id]} values here it "
                          f"addresses an axis of length {n}", x.span, code="P302")  # fmt: skip
            names.append(x.id)
        if len(set(names)) < len(names):  # a repeated index takes a diagonal
            uniq = list(dict.fromkeys(names))
            letters = {n: chr(97 + k) for k, n in enumerate(uniq)}
            spec = "".join(letters[n] for n in names) + "->" + "".join(letters[n] for n in uniq)
            return torch.einsum(spec, a), tuple(uniq)
        return a, tuple(names)

    def _sum(self, e: ast.Generator, bound: set[str]):
        import torch

        loops = []
        for loop in e.loops:
            if len(loop.names) != 1:
                self.fail("sum over one index at a time here: sum(... for mu)", loop.span,
                          code="P302")  # fmt: skip
            name = loop.names[0]
            if loop.domain is not None:
                n = ConstEvaluator(self.params, what="a sum range")(
                    loop.domain.args[0] if isinstance(loop.domain, ast.Call)
                    and loop.domain.func == "range" and len(loop.domain.args) == 1
                    else loop.domain)  # fmt: skip
                if not isinstance(n, int) or n < 1:
                    self.fail("an index sum runs over range(n), n a positive integer",
                              loop.domain.span)  # fmt: skip
                self.sizes[name] = n
            loops.append(name)
        inner = bound | set(loops)
        factors = _factors(e.body)
        evaluated = [self(f, inner) for f in factors]
        for name in loops:
            if name not in self.sizes:
                self.fail(f"the range of '{name}' is unknown: index an array with it", e.span)
        all_idx = list(dict.fromkeys(n for _, idx in evaluated for n in idx))
        letters = {n: chr(97 + k) for k, n in enumerate(all_idx)}
        out = [n for n in all_idx if n not in loops]
        spec = ",".join("".join(letters[n] for n in idx) for _, idx in evaluated)
        spec += "->" + "".join(letters[n] for n in out)
        t = torch.einsum(spec, *[t for t, _ in evaluated])
        for name in loops:  # a summed index the body does not use counts its range
            if name not in all_idx:
                t = t * self.sizes[name]
        return t, tuple(out)


def _factors(e: ast.Expr) -> list[ast.Expr]:
    """A product a * b * c as its factors (so that a sum of it is one einsum)."""
    if isinstance(e, ast.Binary) and e.op == "*":
        return _factors(e.left) + _factors(e.right)
    return [e]


def _align(t, idx, out, sizes):
    """Permute and unsqueeze a tensor with axes ``idx`` to broadcast over axes ``out``."""
    idx = list(idx)
    perm = [idx.index(n) for n in out if n in idx]
    t = t.permute(*perm) if perm and perm != list(range(len(perm))) else t
    shape = []
    k = 0
    for n in out:
        if n in idx:
            shape.append(t.shape[k])
            k += 1
        else:
            shape.append(1)
    return t.reshape(shape)
