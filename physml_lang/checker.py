"""Checks a model declaration and instantiates it with concrete parameters: the model IR.

Resolves and checks every name (with did-you-mean hints), the types of parameters, field
domains, lattices and their options, coupling arrays, and the shape of energy expressions. All
failures are located diagnostics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from physml_lang.compiler.lattices import (
    GRAPHS,
    LATTICES,
    LatticeOptions,
    make_complete_graph,
    make_lattice,
)
from physml_lang.compiler.sitesets import (  # noqa: E402,I001
    GRAPH_BUILDERS,
    GRAPH_DOCS,
    SiteSetGraph,
    pair_structures,
    site_sets,
)

from . import ast
from .diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from .evaluate import ConstEvaluator, Ident
from .ir import ArrayIR, DefinitionIR, Domain, FieldIR, ModelIR, SymmetryIR

MAX_SITES = 2**31 - 1
MAX_POTTS_STATES = 1024
PARAM_TYPES = {"int": int, "real": float, "bool": bool, "complex": complex}
DOMAINS = {
    "spin": "Ising spin, values -1 and +1",
    "binary": "binary unit, values 0 and 1",
    "potts": "potts(q): values 0 .. q-1",
    "qubit": "spin-1/2 degree of freedom (Pauli operators X, Y, Z)",
    "real": "real number",
    "angle": "angle in (-pi, pi] (XY / O(2) models)",
    "z2": "Z2 gauge link, values -1 and +1",
    "u1": "U(1) gauge link exp(i theta)",
    "su2": "SU(2) gauge link, 2x2 special unitary matrix",
}
STRUCTURES = {"sites", "bonds", "pairs", "links", "plaquettes"}
SYMMETRIES = {
    "translation": "invariance under lattice translations",
    "spin_flip": "invariance under a global flip of every spin (s -> -s)",
    "gauge": "invariance under local gauge transformations",
    "symplectic": "canonical structure of phase space",
    "point_group": "lattice rotations and reflections",
}
ARRAY_STRUCTURES = {"sites", "bonds", "bonds2", "pairs"}
RANDOM_INITS = {"normal", "uniform", "choice"}
EXPR_FUNCTIONS = {
    "abs", "exp", "log", "sqrt", "cos", "sin", "tan", "tanh", "cosh", "sinh", "delta", "re",
    "im", "conj", "sign", "min", "max", "arg", "wrap", "trace", "dagger",
}  # fmt: skip
GENERATOR_FUNCTIONS = {"sum", "prod"}


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


def validate_options(
    schema, values: dict[str, Any], spans: dict[str, Span], where: Span, what: str
):
    """Validate options against a pydantic schema; located errors for unknown or bad values."""
    fields = set(schema.model_fields)
    for name, span in spans.items():
        if name not in fields:
            hint = did_you_mean(name, fields) or ("options: " + ", ".join(sorted(fields)))
            fail("P401", f"unknown option '{name}' for {what}", span, hint)
    plain = {k: (str(v) if isinstance(v, Ident) else v) for k, v in values.items()}
    try:
        return schema.model_validate(plain, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        span = spans.get(name, where)
        msg = err["msg"].replace("Input should be", "must be").replace("String should", "must")
        if isinstance(values.get(name), Ident) and "valid" in msg:
            msg = f"'{values[name]}' is not allowed"
        info = schema.model_fields.get(name)
        hint = info.description if info is not None and info.description else None
        fail("P402", f"invalid value for option '{name}' of {what}: {msg}", span, hint)


class ModelChecker:
    """Instantiates one ``model`` declaration with parameter overrides."""

    def __init__(self, node: ast.Model):
        self.node = node

    # ---------------------------------------------------------------- parameters
    def parameters(
        self, overrides: dict[str, Any], override_spans: dict[str, Span | None]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        types: dict[str, str] = {}
        declared = {p.name for p in self.node.params}
        for name, span in override_spans.items():
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"model {self.node.name} has parameters: " + ", ".join(sorted(declared))
                    if declared
                    else f"model {self.node.name} has no parameters"
                )
                fail("P200", f"model {self.node.name} has no parameter '{name}'", span, hint)
        for p in self.node.params:
            if p.name in values:
                fail("P201", f"parameter '{p.name}' declared twice", p.span)
            if p.type_name not in PARAM_TYPES:
                hint = (
                    did_you_mean(p.type_name, set(PARAM_TYPES)) or "types: int, real, bool, complex"
                )
                fail("P300", f"unknown parameter type '{p.type_name}'", p.type_span, hint)
            types[p.name] = p.type_name
            if p.name in overrides:
                value = overrides[p.name]
                span = override_spans.get(p.name) or p.span
            elif p.default is not None:
                value = ConstEvaluator(values, what=f"the default of '{p.name}'")(p.default)
                span = p.default.span
            else:
                fail(
                    "P400",
                    f"parameter '{p.name}' of model {self.node.name} has no default and no value",
                    p.span,
                    f"give a default ('{p.name}: {p.type_name} = ...') or a value",
                )
            values[p.name] = self._coerce(p, value, span)
        return values, types

    def _coerce(self, p: ast.ParamDecl, value: Any, span: Span | None) -> Any:
        kind = p.type_name
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                fail("P300", f"parameter '{p.name}' is an int, got {value!r}", span)
            return value
        if kind == "real":
            if isinstance(value, bool) or not isinstance(value, int | float):
                fail("P300", f"parameter '{p.name}' is real, got {value!r}", span)
            return float(value)
        if kind == "bool":
            if not isinstance(value, bool):
                fail("P300", f"parameter '{p.name}' is a bool, got {value!r}", span)
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | complex):
            fail("P300", f"parameter '{p.name}' is complex, got {value!r}", span)
        return complex(value)

    # ---------------------------------------------------------------- instantiate
    def instantiate(
        self,
        overrides: dict[str, Any] | None = None,
        override_spans: dict[str, Span | None] | None = None,
    ) -> ModelIR:
        overrides = overrides or {}
        spans = override_spans or {k: None for k in overrides}
        params, types = self.parameters(overrides, spans)
        model = ModelIR(self.node.name, params, types, None, {}, {}, {}, [], self.node)
        seen: dict[str, Span] = {}

        def declare(name: str, span: Span) -> None:
            if name in seen or name in params:
                first = seen.get(name)
                where = f"first declared at {first!r}" if first else "it is a model parameter"
                raise PhysmlError(
                    Diagnostic("P201", f"'{name}' is already declared", span, notes=[where])
                )
            seen[name] = span

        for stmt in self.node.body:
            if isinstance(stmt, ast.LatticeStmt):
                if model.lattice is not None:
                    fail("P201", "a model has one lattice or graph", stmt.span)
                model.lattice = self.lattice(stmt, params)
            elif isinstance(stmt, ast.FieldStmt):
                declare(stmt.name, stmt.span)
                model.fields[stmt.name] = self.field(stmt, params, model.lattice)
            elif isinstance(stmt, ast.ArrayStmt):
                defined: set[str] = set()
                for d in stmt.defs:
                    if d.name in defined and d.indices:  # W[i, i] = 0 after W[i, j] = ...
                        self.array_update(model.arrays[d.name], d, model)
                        continue
                    declare(d.name, d.span)
                    defined.add(d.name)
                    model.arrays[d.name] = self.array(d, stmt.learnable, model)
            elif isinstance(stmt, ast.Definition):
                declare(stmt.name, stmt.span)
                model.definitions[stmt.name] = DefinitionIR(
                    stmt.kind, stmt.name, stmt.indices, stmt.value, stmt.span
                )
            elif isinstance(stmt, ast.SymmetryStmt):
                active = True
                if stmt.condition is not None:
                    active = bool(
                        ConstEvaluator(params, what="a symmetry condition")(stmt.condition)
                    )
                for item in stmt.items:
                    if item.name not in SYMMETRIES:
                        fail(
                            "P200",
                            f"unknown symmetry '{item.name}'",
                            item.span,
                            did_you_mean(item.name, set(SYMMETRIES))
                            or "symmetries: " + ", ".join(SYMMETRIES),
                        )
                    model.symmetries.append(
                        SymmetryIR(item.name, item.span, active, stmt.condition)
                    )
            elif isinstance(stmt, ast.PhaseSpaceStmt):
                model.phase_space = stmt
            elif isinstance(stmt, ast.DataDecl):
                declare(stmt.name, stmt.span)
                model.data[stmt.name] = self.data(stmt, params)
            elif isinstance(stmt, ast.ConserveStmt):
                pass
        if (
            model.fields
            and model.lattice is None
            and any(f.on in ("sites", "links") for f in model.fields.values())
        ):
            f = next(iter(model.fields.values()))
            fail(
                "P400",
                f"field '{f.name}' lives on {f.on}, but model {model.name} declares no lattice",
                f.span,
                "add e.g. 'lattice square(L, L)' or 'graph complete(N)'",
            )
        ExpressionChecker(model).check_all()
        return model

    # ---------------------------------------------------------------- pieces
    def lattice(self, stmt: ast.LatticeStmt, params: dict[str, Any]):
        call = stmt.call
        known = {**GRAPHS, **GRAPH_DOCS} if stmt.is_graph else LATTICES
        what = "graph" if stmt.is_graph else "lattice"
        if call.func not in known:
            other = LATTICES if stmt.is_graph else GRAPHS
            hint = did_you_mean(call.func, set(known)) or f"{what}s: " + ", ".join(known)
            if call.func in other:
                hint = f"'{call.func}' is a {'lattice' if stmt.is_graph else 'graph'}: write "
                hint += f"'{'lattice' if stmt.is_graph else 'graph'} {call.func}(...)'"
            fail("P200", f"unknown {what} '{call.func}'", call.func_span, hint)
        ev = ConstEvaluator(params, allow_idents=True, what=f"the {what} arguments")
        sizes = []
        for a in call.args:
            v = ev(a)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool):
                fail("P300", f"a {what} size must be an integer, got {v!r}", a.span)
            if v < 2:
                fail(
                    "P400",
                    f"a {what} size must be at least 2, got {v}",
                    a.span,
                    "a lattice of fewer than 2 sites along an axis has no bonds",
                )
            sizes.append(v)
        total = 1
        for v in sizes:
            total *= v
        if total > MAX_SITES:
            fail("P400", f"{total} sites is more than physml handles ({MAX_SITES})", call.span)
        if stmt.is_graph and call.func in GRAPH_BUILDERS:
            if len(sizes) != 2 or call.kwargs:
                fail("P302", f"{call.func}(Nv, Nh) takes two sizes", call.span)
            return GRAPH_BUILDERS[call.func](*sizes)
        if stmt.is_graph:
            if len(sizes) != 1 or call.kwargs:
                fail("P302", "complete(N) takes exactly one size", call.span)
            return make_complete_graph(sizes[0])
        entry = LATTICES[call.func]
        if len(sizes) not in (1, entry.dim):
            fail(
                "P302",
                f"{call.func} takes 1 or {entry.dim} sizes, got {len(sizes)}",
                call.span,
                f"e.g. {call.func}({', '.join(['L'] * entry.dim)})",
            )
        opts = validate_options(
            LatticeOptions,
            {k.name: ev(k.value) for k in call.kwargs},
            {k.name: k.span for k in call.kwargs},
            call.span,
            f"lattice {call.func}",
        )
        return make_lattice(call.func, sizes, opts.boundary)

    def field(self, stmt: ast.FieldStmt, params: dict[str, Any], lattice=None) -> FieldIR:
        t = stmt.type
        if t.name not in DOMAINS:
            hint = did_you_mean(t.name, set(DOMAINS)) or "domains: " + ", ".join(DOMAINS)
            fail("P301", f"unknown field domain '{t.name}'", t.span, hint)
        q = None
        if t.name == "potts":
            if len(t.args) != 1 or t.kwargs:
                fail("P302", "potts takes the number of states: potts(q)", t.span, "e.g. potts(3)")
            q = ConstEvaluator(params, what="the number of Potts states")(t.args[0])
            if isinstance(q, float) and q.is_integer():
                q = int(q)
            if not isinstance(q, int) or isinstance(q, bool):
                fail("P300", f"the number of Potts states must be an integer, got {q!r}", t.span)
            if q < 2 or q > MAX_POTTS_STATES:
                fail(
                    "P400",
                    f"a Potts variable needs 2 <= q <= {MAX_POTTS_STATES} states, got q = {q}",
                    t.args[0].span,
                )
        elif t.args or t.kwargs or t.shape:
            fail("P302", f"domain '{t.name}' takes no arguments", t.span)
        if isinstance(lattice, SiteSetGraph):
            if stmt.on not in lattice.set_names:
                sets = set(lattice.set_names)
                fail("P200", f"a {lattice.kind} graph has site sets " + ", ".join(sorted(sets))
                     + f", not '{stmt.on}'", stmt.on_span, did_you_mean(stmt.on, sets))  # fmt: skip
            return FieldIR(stmt.name, Domain(t.name, q), stmt.on, stmt.span)
        if stmt.on not in ("sites", "links"):
            hint = did_you_mean(stmt.on, {"sites", "links"}) or "fields live on sites or links"
            fail(
                "P200", f"a field lives on 'sites' or 'links', not '{stmt.on}'", stmt.on_span, hint
            )
        return FieldIR(stmt.name, Domain(t.name, q), stmt.on, stmt.span)

    def data(self, stmt: ast.DataDecl, params: dict[str, Any]):
        """A data declaration inside a model: loaded, drawn or sampled now (P600/P601)."""
        from pathlib import Path

        from .data import evaluate_data

        name = stmt.span.source.name
        base = Path(name).parent if not name.startswith("<") else None
        return evaluate_data(stmt, params, base, _stdlib_resolver)

    def array(self, d: ast.ArrayDef, learnable: bool, model: ModelIR) -> ArrayIR:
        lat = model.lattice
        if d.on is not None:
            known = _array_structures(lat)
            if d.on not in known:
                hint = did_you_mean(d.on, known) or ", ".join(sorted(known))
                fail("P200", f"unknown structure '{d.on}'", d.on_span, hint)
        if lat is None:
            fail("P400", f"'{d.name}' lives on a lattice structure, but no lattice is declared "
                 "yet", d.span, "declare the lattice before the parameters that live on it")  # fmt: skip
        shape = _array_shape(lat, d.on, d.on_span) if d.on is not None else None
        value = d.value
        uniform, init = True, "constant"
        if d.indices:
            values, on = self._index_defined(d, model, shape)
            uniform, init = False, "index"
        elif isinstance(value, ast.Call) and value.func == "load":
            if shape is None:
                fail("P400", f"say where '{d.name}' lives: 'param {d.name} on edges = load(...)'",
                     d.span)  # fmt: skip
            values, on = _load_array(value, d.name, shape, model.params), d.on
            uniform, init = False, "load"
        elif d.on is None:
            fail("P400", f"say where '{d.name}' lives: 'param {d.name} on bonds = ...'", d.span,
                 f"or define it by its indices: 'param {d.name}[i, j] = ...'")  # fmt: skip
        elif isinstance(value, ast.Call) and value.func in RANDOM_INITS:
            on = d.on
            values = _random_array(value, shape, d.on, model.params)
            uniform, init = False, value.func
        else:
            on = d.on
            v = ConstEvaluator(model.params, what=f"the value of '{d.name}'")(value)
            if isinstance(v, bool) or not isinstance(v, int | float):
                fail("P300", f"'{d.name}' must be a number or a random draw", value.span,
                     "e.g. normal(0, 1, seed = 1), uniform(-1, 1, seed = 2), choice([-1, 1], seed = 3)")  # fmt: skip
            values = np.full(shape, float(v))
            if d.on == "pairs":
                np.fill_diagonal(values, 0.0)
        return ArrayIR(d.name, on, values, uniform and not learnable, learnable, d.span, init)

    def _index_defined(self, d: ast.ArrayDef, model: ModelIR, shape):
        """``param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N``: evaluated with einsum."""
        from .data import IndexEvaluator

        free = []
        for x in d.indices:
            if not isinstance(x, ast.Name) or x.id in free:
                fail("P300", "the indices of a definition are distinct names: W[i, j] = ...",
                     x.span)  # fmt: skip
            free.append(x.id)
        if shape is not None and len(shape) != len(free):
            fail("P302", f"'{d.name}' on {d.on} takes {len(shape)} index(es), got {len(free)}",
                 d.span)  # fmt: skip
        arrays = {k: v.values for k, v in model.data.items()}
        arrays.update({k: v.values for k, v in model.arrays.items()})
        ev = IndexEvaluator(model.params, arrays, f"the definition of '{d.name}'")
        values = ev.evaluate(d.value, free, shape).numpy()
        on = d.on or _infer_structure(model.lattice, values.shape, d.span, d.name)
        expected = _array_shape(model.lattice, on, d.span)
        if tuple(values.shape) != tuple(expected):
            fail("P302", f"'{d.name}' has shape {tuple(values.shape)}, but arrays on {on} have "
                 f"shape {tuple(expected)}", d.span)  # fmt: skip
        if not np.isfinite(values).all():
            fail("P400", f"'{d.name}' has non-finite entries", d.value.span)
        return values, on

    def array_update(self, arr: ArrayIR, d: ast.ArrayDef, model: ModelIR) -> None:
        """``W[i, i] = 0``: assign the entries whose indices repeat (a diagonal)."""
        from .data import IndexEvaluator

        names = [x.id if isinstance(x, ast.Name) else None for x in d.indices]
        if None in names or len(names) != arr.values.ndim or len(set(names)) == len(names):
            fail("P300", f"'{d.name}' is already defined; a second definition assigns a "
                 f"diagonal, e.g. {d.name}[i, i] = 0", d.span)  # fmt: skip
        if d.on is not None:
            fail("P300", "a diagonal assignment takes no 'on'", d.on_span)
        uniq = list(dict.fromkeys(names))
        sizes = [arr.values.shape[names.index(n)] for n in uniq]
        arrays = {k: v.values for k, v in model.data.items()}
        arrays.update({k: v.values for k, v in model.arrays.items()})
        ev = IndexEvaluator(model.params, arrays, f"the definition of '{d.name}'")
        sub = ev.evaluate(d.value, uniq, tuple(sizes)).numpy()
        grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
        index = tuple(grids[uniq.index(n)] for n in names)
        values = arr.values.copy()
        values[index] = sub
        arr.values = values


def _stdlib_resolver(name: str, span: Span):
    """Models that a model-level ``sample(...)`` data source may name: the standard library."""
    from .parser import parse
    from .program import stdlib_index

    index = stdlib_index()
    if name not in index:
        fail("P200", f"unknown model '{name}' (data inside a model samples stdlib models)", span,
             did_you_mean(name, set(index)))  # fmt: skip
    fname, text = index[name]
    node = next(m for m in parse(text, f"<stdlib>/{fname}").models if m.name == name)
    return ModelChecker(node)


def _array_structures(lat) -> set[str]:
    if isinstance(lat, SiteSetGraph):
        return set(lat.set_names) | set(pair_structures(lat))
    return set(ARRAY_STRUCTURES)


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
        if lat.complete and shape == (lat.n_sites, lat.n_sites):
            candidates.append("pairs")
    if len(candidates) != 1:
        fail("P400", f"cannot tell where '{name}' of shape {shape} lives", span,
             f"say it: 'param {name}[...] on STRUCTURE = ...'"
             + (f" (one of {', '.join(candidates)})" if candidates else ""))  # fmt: skip
    return candidates[0]


def _load_array(call: ast.Call, name: str, shape, params) -> np.ndarray:
    """``load("params.safetensors", key = "W")``: a learned array saved by a training run."""
    from pathlib import Path

    ev = ConstEvaluator(params, what="the arguments of load")
    if len(call.args) != 1:
        fail("P302", "load takes a file: load(\"params.safetensors\", key = \"W\")", call.span)
    path = ev(call.args[0])
    key = name
    for k in call.kwargs:
        if k.name != "key":
            fail("P401", f"unknown option '{k.name}' for load", k.span, "only 'key'")
        key = ev(k.value)
    if not isinstance(path, str) or not isinstance(key, str):
        fail("P300", "load takes a file name and a key (strings)", call.span)
    src = call.span.source.name
    p = Path(path)
    if not p.is_absolute() and not src.startswith("<"):
        p = Path(src).parent / p
    if not p.is_file():
        fail("P600", f"parameter file not found: {p}", call.args[0].span)
    if p.suffix != ".safetensors":
        fail("P601", f"parameters are loaded from .safetensors files, not '{p.suffix}'",
             call.args[0].span)  # fmt: skip
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(p))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        fail("P601", f"cannot read {p.name}: {exc}", call.args[0].span)
    if key not in tensors:
        fail("P601", f"{p.name} has no tensor '{key}'", call.span,
             did_you_mean(key, set(tensors)) or "tensors: " + ", ".join(sorted(tensors)))  # fmt: skip
    values = np.asarray(tensors[key], dtype=np.float64)
    if tuple(values.shape) != tuple(shape):
        fail("P601", f"'{key}' in {p.name} has shape {tuple(values.shape)}, expected "
             f"{tuple(shape)}", call.span)  # fmt: skip
    if not np.isfinite(values).all():
        fail("P601", f"'{key}' in {p.name} holds non-finite values", call.span)
    return values


def _array_shape(lat, on: str, span) -> tuple[int, ...]:
    if isinstance(lat, SiteSetGraph):
        sets = site_sets(lat)
        if on in sets:
            return (sets[on],)
        a, b = pair_structures(lat)[on]
        return (sets[a], sets[b])
    if on == "sites":
        return lat.shape
    if on == "pairs":
        return (lat.n_sites, lat.n_sites)
    if lat.complete:
        fail("P400", f"a complete graph has pairs, not {on}", span, "use 'on pairs'")
    shell = 2 if on == "bonds2" else 1
    return (*lat.shape, len(lat.shells[shell]))


def _random_array(call: ast.Call, shape: tuple[int, ...], on: str, params: dict) -> np.ndarray:
    ev = ConstEvaluator(params, what=f"the arguments of {call.func}")
    args = [ev(a) for a in call.args]
    kw = {k.name: ev(k.value) for k in call.kwargs}
    for k in kw:
        if k != "seed":
            fail("P401", f"unknown option '{k}' for {call.func}", call.kwarg(k).span, "only 'seed'")
    seed = kw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        fail("P402", "seed must be a non-negative integer", call.kwarg("seed").span)
    rng = np.random.default_rng(seed)
    n_expected = {"normal": 2, "uniform": 2, "choice": 1}[call.func]
    if len(args) != n_expected:
        usage = {"normal": "normal(mean, std, seed = 1)", "uniform": "uniform(low, high, seed = 1)",
                 "choice": "choice([-1, 1], seed = 1)"}[call.func]  # fmt: skip
        fail("P302", f"{call.func} takes {n_expected} argument(s)", call.span, usage)
    if call.func == "normal":
        if args[1] < 0:
            fail("P400", "the standard deviation must be >= 0", call.args[1].span)
        values = rng.normal(args[0], args[1], size=shape)
    elif call.func == "uniform":
        values = rng.uniform(args[0], args[1], size=shape)
    else:
        if not isinstance(args[0], list) or not args[0]:
            fail("P300", "choice takes a non-empty list of values", call.args[0].span)
        values = rng.choice(np.asarray(args[0], dtype=float), size=shape)
    if on == "pairs" and len(shape) == 2 and shape[0] == shape[1]:
        values = np.triu(values, 1)
        values = values + values.T
    return values.astype(np.float64)


def _builtin_extra_names(model: ModelIR) -> set[str]:
    names: set[str] = set()
    if any(f.domain.kind == "qubit" for f in model.fields.values()):
        names |= {"X", "Y", "Z", "Sp", "Sm", "Sz", "Nop"}  # Pauli and spin operators
    if model.phase_space is not None:
        names |= {model.phase_space.q, model.phase_space.p}
    return names


# Capabilities add the names their models may use (operators, coordinates) through this list.
EXTRA_NAMES: list = [_builtin_extra_names]


class ExpressionChecker:
    """Resolves every name in a model's definitions and checks indexing and sums."""

    def __init__(self, model: ModelIR):
        self.model = model
        self.known = (
            set(model.params)
            | set(model.fields)
            | set(model.arrays)
            | set(model.definitions)
            | set(model.data)
            | {"pi", "I", "N", "sites_count"}
        )
        if isinstance(model.lattice, SiteSetGraph):  # site sets and pair structures are summed
            self.known |= set(model.lattice.set_names) | set(pair_structures(model.lattice))
        for extra in EXTRA_NAMES:
            self.known |= extra(model)

    def check_all(self) -> None:
        for d in self.model.definitions.values():
            bound = {x.id for x in d.indices if isinstance(x, ast.Name)}
            self.check(d.expr, bound)

    def check(self, e: ast.Expr, bound: set[str]) -> None:
        if isinstance(e, ast.Name):
            if e.id in bound or e.id in self.known or e.id in STRUCTURES or _is_shift(e.id):
                return
            hint = did_you_mean(e.id, self.known | bound | STRUCTURES)
            fail("P200", f"unknown name '{e.id}'", e.span, hint)
        elif isinstance(e, ast.Index):
            self.check(e.base, bound)
            for x in e.indices:
                self.check(x, bound)
            if isinstance(e.base, ast.Name) and e.base.id in self.model.params:
                fail("P202", f"'{e.base.id}' is a scalar parameter and cannot be indexed", e.span)
        elif isinstance(e, ast.Binary):
            self.check(e.left, bound)
            self.check(e.right, bound)
        elif isinstance(e, ast.Unary):
            self.check(e.operand, bound)
        elif isinstance(e, ast.Call):
            if e.func not in EXPR_FUNCTIONS and e.func not in self.model.definitions:
                hint = did_you_mean(e.func, EXPR_FUNCTIONS)
                fail("P200", f"unknown function '{e.func}'", e.func_span, hint)
            for a in e.args:
                self.check(a, bound)
        elif isinstance(e, ast.Generator):
            if e.func not in GENERATOR_FUNCTIONS:
                fail("P200", f"unknown reduction '{e.func}'", e.func_span,
                     did_you_mean(e.func, GENERATOR_FUNCTIONS) or "use sum(...) or prod(...)")  # fmt: skip
            inner = set(bound)
            for loop in e.loops:
                d = loop.domain
                if isinstance(d, ast.Call) and d.func in STRUCTURES:
                    for a in d.args:
                        self.check(a, bound)  # bonds(2): the second neighbour shell
                elif d is not None:
                    self.check(d, bound)
                inner |= set(loop.names)
            self.check(e.body, inner)
        elif isinstance(e, ast.ListExpr):
            for x in e.items:
                self.check(x, bound)


def _is_shift(name: str) -> bool:
    """Unit lattice vectors e0, e1, ... used in index arithmetic (x + e0)."""
    return len(name) >= 2 and name[0] == "e" and name[1:].isdigit()
