"""``data`` declarations realised: arrays loaded from files, drawn at random, or sampled from a
model.

    data xi: spin[P, N] = random(seed = 1)                 # P random patterns of N spins
    data X: binary = load("digits.npz", key = "X")         # .npz (key), .npy or .csv
    data S: spin = sample(Ising(L = 8), n = 10000, T = 2.5, seed = 1)
    data D: binary = digits(threshold = 8)                 # scikit-learn's 8 x 8 digits

Sources are catalogue entries (options schemas in ``physml_lang/catalogue/data.py``); their
loaders are bound by :func:`bind`. Files are read without pickle
(``np.load(allow_pickle=False)``). The declared type ``domain[shape]`` is checked against what
was loaded: a wrong shape, a value outside the domain (a 2 in spin data), a missing key or a
corrupt file are located diagnostics (P600 file not found, P601 bad data).
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.data import DigitsOptions, LoadOptions, RandomOptions, SampleOptions
from physml_lang.check.constants import ConstEvaluator, evaluate
from physml_lang.check.model import validate_options
from physml_lang.check.paths import array_file_error, read_text_file, resolve_user_path
from physml_lang.compiler.instance import RealData
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.model import DataIR, DomainIR
from physml_lang.ir.task import CallValue, Word
from physml_lang.ir.walk import as_call

Domain = DomainIR

MAX_ELEMENTS = 2**31 - 1


def _fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class DataSource:
    """The implementation of a data source: ``load(options, domain, shape, span, ctx)`` -> the
    array; ``positional``: the options that may be given by position (``load("x.npz")``)."""

    load: Callable[..., np.ndarray]
    positional: tuple[str, ...] = ()


def _random(opts: RandomOptions, domain: Domain | None, shape, span, ctx) -> np.ndarray:
    if shape is None:
        _fail("P411", "random data needs a declared shape", span, "e.g. data xi: spin[P, N] = "
              "random(seed = 1)")  # fmt: skip
    if domain is None or not domain.discrete:
        _fail("P413", "random data needs a discrete domain (spin, binary, potts(q))", span)
    values = np.asarray(domain.values())
    rng = np.random.default_rng(opts.seed)
    if len(values) == 2:
        k = (rng.random(size=shape) < opts.p).astype(np.int64)
    else:
        k = rng.integers(0, len(values), size=shape)
    return values[k].astype(np.float64)


def _load(opts: LoadOptions, domain, shape, span, ctx) -> np.ndarray:
    """An array from a .npz (by key), .npy or .csv file, named relative to the .phys file and
    inside the project tree (``check/paths.py``); located at the file name's string."""
    at = ctx.get("path_span") or span
    path = resolve_user_path(opts.path, at, "data file", {".npz", ".npy", ".csv"},
                             base=ctx.get("base_dir") if at is None else None,
                             suffix_hint="use .npz, .npy or .csv")  # fmt: skip
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
        else:
            if opts.key is not None:
                _fail("P401", "a .csv file holds one array: no key", span)
            arr = _read_csv(path, at)
    except PhysmlError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        array_file_error(path, exc, at)
    if arr.dtype.kind not in "biuf":
        _fail("P601", f"{path.name}: the array has dtype {arr.dtype}, not numbers", span)
    return np.asarray(arr, dtype=np.float64)


def _read_csv(path: Path, span) -> np.ndarray:
    """Rows of comma-separated numbers (UTF-8 text; ``#`` starts a comment; a first line that
    is not numeric is a header); errors name the line, never quote it."""
    text = read_text_file(path, span, "CSV data file")
    rows: list[list[float]] = []
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        fields = body.split(",")
        try:
            row = [float(x) for x in fields]
        except ValueError:
            if first:  # a header line
                first = False
                continue
            bad = next(k for k, x in enumerate(fields, start=1) if not _number(x))
            _fail("P601", f"{path.name} line {number}: value {bad} is not a number", span,
                  "a CSV of numbers, one row each")  # fmt: skip
        first = False
        if rows and len(row) != len(rows[0]):
            _fail("P601", f"{path.name} line {number}: {len(row)} values, but the first row has "
                  f"{len(rows[0])}", span, "a CSV of numbers, one row each")  # fmt: skip
        rows.append(row)
        if len(rows) * len(row) > MAX_ELEMENTS:
            _fail("P400", f"{path.name} holds too many values", span)
    if not rows:
        _fail("P601", f"{path.name} holds no rows of numbers", span, "a CSV of numbers, one row each")
    return np.asarray(rows, dtype=np.float64)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sample(opts: SampleOptions, domain, shape, span, ctx) -> np.ndarray:
    model_call: CallValue = ctx["model_call"]
    compile_model = ctx.get("compile_model")
    if compile_model is None:
        _fail("P800", "sample(...) data needs a program to resolve its model", span)
    entry = CATALOGUE.samplers.get(opts.sampler, "lattice")
    if entry is None:
        _fail("P206", f"unknown sampler '{opts.sampler}'", span,
              did_you_mean(opts.sampler, set(CATALOGUE.samplers.names("lattice"))))  # fmt: skip
    if model_call.args:
        _fail("P318", "model parameters are given by name: sample(Ising(L = 8), ...)", span)
    args = {o.name: (str(o.value) if isinstance(o.value, Word) else o.value)
            for o in model_call.kwargs}  # fmt: skip
    cm = compile_model(model_call.name, args, model_call.span)
    if ctx.get("static"):  # checked, not sampled: a placeholder of the sampled shape
        fill = domain.values()[0] if domain is not None and domain.discrete else 0.0
        return np.full((opts.n, *cm.lattice.shape), float(fill))
    chains = min(opts.chains, opts.n)
    sopts = validate_options(entry.schema, {"chains": chains}, {}, span, opts.sampler)
    return entry.implementation.configurations(cm, sopts, n=opts.n, T=opts.T, seed=opts.seed,
                                               burn_in=opts.burn_in, thin=opts.thin)  # fmt: skip


DIGITS_SHAPE = (1797, 64)  # scikit-learn's 8 x 8 digits: 1797 images


def _digits(opts: DigitsOptions, domain, shape, span, ctx) -> np.ndarray:
    if importlib.util.find_spec("sklearn") is None:
        _fail("P600", "digits(...) needs scikit-learn (the 'examples' extra), which is not "
              "installed", span, "pip install 'physml[examples]'")  # fmt: skip
    if ctx.get("static"):  # checked, not loaded: importing scikit-learn alone takes ~0.8 s
        x = np.zeros(DIGITS_SHAPE)
    else:
        from sklearn.datasets import load_digits

        x = (load_digits().data >= opts.threshold).astype(np.float64)
    if domain is not None and domain.ising:
        x = 2 * x - 1
    return x


RANDOM = DataSource(_random)
LOAD = DataSource(_load, ("path",))
SAMPLE = DataSource(_sample)
DIGITS = DataSource(_digits)


def bind(catalogue: Catalogue) -> None:
    """Attach the loaders of the data sources to their catalogue entries."""
    for name, source in (("random", RANDOM), ("load", LOAD), ("sample", SAMPLE),
                         ("digits", DIGITS)):  # fmt: skip
        catalogue.sources.bind(name, source)


# ---------------------------------------------------------------- evaluation


def data_shape(decl: DataIR, values: dict[str, Any]) -> tuple[int, ...] | None:
    """The declared shape of ``spin[P, N]`` evaluated with the parameter values."""
    if decl.shape is None:
        return None
    shape = []
    for x in decl.shape:
        v = evaluate(x, values, "a data shape")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            _fail("P304", f"a data shape is made of positive integers, got {v!r}", x.span)
        shape.append(v)
    if int(np.prod(shape)) > MAX_ELEMENTS:
        _fail("P407", "this data array is too large", decl.span)
    return tuple(shape)


class DataLoader:
    """Realises data declarations: ``loader(decl, values) -> RealData`` (cached per values).

    ``base_dir``: where relative file names start; ``compile_model(name, args, span)``: the
    compiled model a ``sample(Model(...), ...)`` source samples (given by the program).
    ``static``: for ``check``: ``compile_model`` derives the sampled model (torch-free) and
    sampled data are a placeholder of their shape; files are read and checked as in a run."""

    def __init__(self, base_dir: Path | None = None, compile_model: Callable | None = None,
                 static: bool = False):  # fmt: skip
        self.base_dir = base_dir
        self.compile_model = compile_model
        self.static = static
        self._cache: dict[tuple, RealData] = {}

    def __call__(self, decl: DataIR, values: dict[str, Any]) -> RealData:
        key = (decl, tuple(sorted((k, repr(v)) for k, v in values.items())))
        if key in self._cache:
            return self._cache[key]
        data = self._realise(decl, values)
        if len(self._cache) > 32:
            self._cache.clear()
        self._cache[key] = data
        return data

    def _realise(self, decl: DataIR, values: dict[str, Any]) -> RealData:
        domain, shape = decl.domain, data_shape(decl, values)
        call = as_call(decl.source)
        entry = CATALOGUE.sources.lookup(call.func, span=call.func_span)
        src: DataSource = CATALOGUE.sources.implementation(call.func)
        ev = ConstEvaluator(values, allow_words=True, allow_calls=True,
                            what=f"the arguments of {call.func}")  # fmt: skip
        opts: dict[str, Any] = {}
        spans: dict[str, Span | None] = {}
        ctx: dict[str, Any] = {"base_dir": self.base_dir, "compile_model": self.compile_model,
                               "static": self.static}  # fmt: skip
        args = list(call.args)
        if call.func == "sample":
            ctx["model_call"] = ev.walk(args.pop(0))
        if len(args) > len(src.positional):
            _fail("P316", f"{call.func} takes {len(src.positional)} positional argument(s)",
                  args[len(src.positional)].span)  # fmt: skip
        for name, a in zip(src.positional, args):
            opts[name], spans[name] = ev.walk(a), a.span
        for k in call.kwargs:
            opts[k.name], spans[k.name] = ev.walk(k.value), k.span
        if spans.get("path") is not None:
            ctx["path_span"] = spans["path"]  # file errors are located at the file's name
        for k, v in opts.items():
            if isinstance(v, Word):
                opts[k] = v.name
            if isinstance(v, float) and v.is_integer() and k in ("seed", "n", "chains", "burn_in",
                                                                "thin"):  # fmt: skip
                opts[k] = int(v)
        valid = validate_options(entry.schema, opts, spans, call.span, f"data source {call.func}")
        arr = src.load(valid, domain, shape, call.span, ctx)
        meta = {"T": valid.T, "model": ctx["model_call"].name} if call.func == "sample" else {}
        data = RealData(decl.name, arr, domain, decl.span, call.func, meta)
        check_values(data, domain, shape, call.span)
        if decl.columns is not None:
            check_table(data, decl, call.span)
        return data


def check_values(data: RealData, domain: Domain | None, shape, span: Span | None) -> None:
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


def check_table(data: RealData, decl: DataIR, span: Span | None) -> None:
    """A table has one column per declared column (rows of a CSV, or a 2-d array)."""
    arr, n = data.values, len(decl.columns or ())
    if arr.ndim == 1 and n == 1:
        data.values = arr.reshape(-1, 1)
    elif arr.ndim != 2 or arr.shape[1] != n:
        names = ", ".join(c.name for c in decl.columns or ())
        _fail("P601", f"table '{data.name}' has shape {tuple(arr.shape)}, but {n} column(s) were "
              f"declared ({names})", span, "one column per declared name, one row per "
              "measurement")  # fmt: skip


def check_feeds(data: RealData, domain: Domain, shape: tuple[int, ...], span: Span | None,
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
