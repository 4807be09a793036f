"""Model declarations -> model IR: names, types, domains, lattices and their options, arrays,
data, definitions and symmetries, checked and instantiated with concrete parameter values.

Nothing here realises an array or reads a data file: the IR records what is declared (the
compiler builds the geometry and evaluates arrays; the runtime loads and samples data). All
failures are located diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from pydantic import ValidationError

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.domains import (
    DATA_DOMAINS,
    DOMAINS,
    MAX_POTTS_STATES,
    SCHEMAS,
    SYMMETRIES,
    domain_args,
)
from physml_lang.catalogue.lattices import GRAPHS, LATTICES
from physml_lang.catalogue.options import LatticeOptions
from physml_lang.diagnostics import (
    Diagnostic,
    ErrorCollector,
    PhysmlError,
    Poisoned,
    Span,
    clip,
    did_you_mean,
    warn,
)
from physml_lang.ir import expr as E
from physml_lang.ir.model import (
    ArrayIR,
    ColumnIR,
    ConservedIR,
    CoordinatesIR,
    DataIR,
    DefinitionIR,
    DiagonalIR,
    DomainIR,
    FieldIR,
    GraphIR,
    LatticeIR,
    ModelIR,
    ParamIR,
    PhaseSpaceIR,
    SymmetryIR,
)
from physml_lang.ir.task import Word
from physml_lang.ir.walk import as_call, fail, name_of
from physml_lang.syntax import ast

from .constants import POISONED, ConstEvaluator, evaluate
from .edges import read_edges
from .edges import resolve as resolve_edges
from .lowering import to_ir
from .names import CONSTANT_NAMES, QUANTUM_OPERATORS, NameChecker
from .units import unit_of

MAX_SITES = 2**31 - 1
MAX_ELEMENTS = 2**31 - 1
PARAM_TYPES = {"int": int, "real": float, "bool": bool, "complex": complex}
ARRAY_STRUCTURES = {"sites", "bonds", "bonds2", "pairs"}
RANDOM_INITS = {"normal": 2, "uniform": 2, "choice": 1}
GAUGE_LATTICES = {"square", "cubic", "hypercubic", "chain"}


def plain(value: Any) -> Any:
    """An IR value as plain Python for option schemas: tuples -> lists (words stay words, so
    that a schema's message can name them)."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def option_names(schema) -> set[str]:
    """The names an options schema accepts: its fields and the old names it renamed."""
    return set(schema.model_fields) | set(getattr(schema, "renamed", {}))


MAX_COUNT = 2**40  # sweeps, steps, samples, epochs: beyond any run, and beyond int64 counters


def _count_too_large(name: str, v: Any) -> bool:
    """An integer option that no loop could count to (seeds are keys, not counts: exempt)."""
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_COUNT and (
        "seed" not in name)


def validate_options(schema, values: dict[str, Any], spans: dict[str, Span | None],
                     where: Span | None, what: str):  # fmt: skip
    """Validate options against a pydantic schema; located errors for unknown or bad values,
    every bad option at once (one error each). A schema's ``renamed`` (old name -> name)
    accepts an old name with a P403 warning."""
    values, spans = dict(values), dict(spans)
    errors = ErrorCollector()
    bad: set[str] = set()  # options already reported: not validated again
    for old, new in getattr(schema, "renamed", {}).items():
        if old in values or old in spans:
            if new in values:
                with errors:
                    fail("P401", f"option '{old}' of {what} is the old name of '{new}': give one",
                         spans.get(old), f"keep {new}")  # fmt: skip
                bad.add(old)
                continue
            values[new] = values.pop(old)
            spans[new] = spans.pop(old, None)
            warn(Diagnostic("P403", f"option '{old}' of {what} is now called '{new}'",
                            spans[new], f"write {new} = ... (the old name will be removed)"))
    fields = set(schema.model_fields)
    for name, span in spans.items():
        if name not in fields and name not in bad:
            hint = did_you_mean(name, fields) or ("options: " + ", ".join(sorted(fields)))
            bad.add(name)
            with errors:
                fail("P401", f"unknown option '{name}' for {what}", span, hint)
    plain = {k: (str(v) if isinstance(v, Word) else v) for k, v in values.items() if k not in bad}
    for name, v in list(plain.items()):
        if not _finite(v):
            del plain[name]
            with errors:
                fail("P402", f"invalid value for option '{name}' of {what}: must be a finite "
                     f"number, got {clip(repr(v), 80)}", spans.get(name, where))  # fmt: skip
        elif _count_too_large(name, v):
            del plain[name]
            with errors:
                fail("P421", f"option '{name}' of {what} is too large: {clip(repr(v), 40)} "
                     f"(at most 2^40 for a count)", spans.get(name, where),
                     "no run can do that many steps, sweeps or samples")  # fmt: skip
    try:
        options = schema.model_validate(plain, strict=True)
    except ValidationError as exc:
        earlier = bool(errors.diagnostics)
        reported: set[str] = set()
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in reported or (earlier and name not in plain):
                continue  # one error per option; none from options left out above
            reported.add(name)
            msg = err["msg"].replace("Input should be", "must be").replace("String should", "must")
            msg = msg.removeprefix("Value error, ")
            if isinstance(values.get(name), Word) and "valid" in msg:
                msg = f"'{values[name]}' is not allowed"
            info = schema.model_fields.get(name)
            hint = info.description if info is not None and info.description else None
            if err["type"] == "missing":  # a required option left out: say so, not "invalid"
                with errors:
                    fail("P402", f"{what} needs option '{name}'", where,
                         f"write {name} = ..." + (f" ({hint})" if hint else ""))  # fmt: skip
                continue
            with errors:
                fail("P402", f"invalid value for option '{name}' of {what}: {msg}",
                     spans.get(name, where), hint)  # fmt: skip
        errors.raise_if_any()
        raise  # pragma: no cover - every validation error is reported above
    errors.raise_if_any()
    return options


def declared_kind(node: ast.Model) -> str:
    """The kind of a model from its statements alone (no instantiation): phase_space,
    landscape, table, field, gauge, quantum, boltzmann or lattice."""
    fields = [s for s in node.body if isinstance(s, ast.FieldStmt)]
    defs = {s.kind for s in node.body if isinstance(s, ast.Definition)}
    if any(isinstance(s, ast.PhaseSpaceStmt) for s in node.body):
        return "phase_space"
    if any(isinstance(s, ast.CoordinatesStmt) for s in node.body):
        return "landscape"
    physics = {"energy", "hamiltonian", "action", "potential", "kinetic", "plaquette", "trial"}
    if not fields and not defs & physics and not any(isinstance(s, ast.LatticeStmt)
                                                     for s in node.body):  # fmt: skip
        return "table"  # parameters and data only: measured tables, or no model at all
    if fields and all(f.type.name in ("real", "angle") and f.on == "sites" for f in fields):
        return "field"
    if any(f.on == "links" for f in fields):
        return "gauge"
    if any(f.type.name == "qubit" for f in fields) and "hamiltonian" in defs:
        return "quantum"
    graph = next((s for s in node.body if isinstance(s, ast.LatticeStmt) and s.is_graph), None)
    if graph is not None and "energy" in defs:
        if graph.call.func in ("bipartite", "boltzmann"):
            return "boltzmann"
        if any(isinstance(s, ast.ArrayStmt) and s.learnable for s in node.body):
            return "boltzmann"
    return "lattice"


class ModelChecker:
    """One ``model`` declaration: checked, and instantiated with parameter values on request."""

    def __init__(self, node: ast.Model):
        self.node = node
        self.name = node.name
        self.name_span = node.name_span
        self.param_names = [p.name for p in node.params]
        self.kind = declared_kind(node)
        self.names_checked = False  # names do not depend on parameter values: checked once

    # ---------------------------------------------------------------- parameters
    def parameters(self, overrides: dict[str, Any], override_spans: dict[str, Span | None],
                   errors: ErrorCollector) -> tuple[tuple[ParamIR, ...], dict[str, Any]]:  # fmt: skip
        """The checked parameters and their values. Each parameter is checked on its own
        (its errors go to ``errors``); one that fails has the value :data:`POISONED`, so
        that what uses it later is skipped instead of reported again."""
        values: dict[str, Any] = {}
        out: list[ParamIR] = []
        declared = set(self.param_names)
        for name, span in override_spans.items():
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"model {self.name} has parameters: " + ", ".join(sorted(declared))
                    if declared else f"model {self.name} has no parameters")
                with errors:
                    fail("P205", f"model {self.name} has no parameter '{name}'", span, hint)
        for p in self.node.params:
            if p.name in values:
                with errors:
                    fail("P201", f"parameter '{p.name}' declared twice", p.span)
                continue
            checked = False
            with errors:
                if p.type_name not in PARAM_TYPES:
                    hint = did_you_mean(p.type_name, set(PARAM_TYPES)) or \
                        "types: int, real, bool, complex"  # fmt: skip
                    fail("P321", f"unknown parameter type '{p.type_name}'", p.type_span, hint)
                if p.name in overrides:
                    value = overrides[p.name]
                    span = override_spans.get(p.name) or p.span
                elif p.default is not None:
                    value = evaluate(to_ir(p.default), values, f"the default of '{p.name}'")
                    span = p.default.span
                else:
                    fail("P411", f"parameter '{p.name}' of model {self.name} has no default and "
                         "no value", p.span, f"give a default ('{p.name}: {p.type_name} = ...') "
                         "or a value")  # fmt: skip
                values[p.name] = _coerce(p, value, span)
                unit = None
                if p.unit is not None:
                    unit = to_ir(p.unit)
                    if p.type_name not in ("real", "complex", "int"):
                        fail("P212", f"parameter '{p.name}' is a {p.type_name}: it has no unit",
                             p.unit.span)  # fmt: skip
                    unit_of(unit)  # a located P212 for an unknown or malformed unit
                out.append(ParamIR(p.name, p.type_name, values[p.name], unit, span=p.span))
                checked = True
            if not checked:
                values[p.name] = POISONED
        return tuple(out), values

    # ---------------------------------------------------------------- instantiate
    def instantiate(self, overrides: dict[str, Any] | None = None,
                    override_spans: dict[str, Span | None] | None = None) -> ModelIR:  # fmt: skip
        """The model IR with these parameter values. Independent statements are checked
        independently: every error of the model is raised at once (in source order)."""
        overrides = overrides or {}
        spans = override_spans or dict.fromkeys(overrides)
        errors = ErrorCollector()
        params, values = self.parameters(overrides, spans, errors)
        b = _Builder(self, values, errors)
        for stmt in self.node.body:
            b.statement(stmt)
        return b.finish(params)


class _Builder:
    """Collects the IR of one model body, statement by statement. Each statement is checked
    on its own and its errors collected; a statement that fails poisons the names it declares
    (a failed lattice: what lives on it), and what uses them later is skipped, not reported."""

    def __init__(self, checker: ModelChecker, values: dict[str, Any], errors: ErrorCollector):
        self.checker = checker
        self.node = checker.node
        self.values = values
        self.errors = errors
        self.poisoned: set[str] = {n for n, v in values.items() if v is POISONED}
        self.lattice: LatticeIR | GraphIR | None = None
        self.failed_lattice: ast.LatticeStmt | None = None
        self.fields: dict[str, FieldIR] = {}
        self.arrays: dict[str, ArrayIR] = {}
        self.data: dict[str, DataIR] = {}
        self.definitions: dict[str, DefinitionIR] = {}
        self.symmetries: list[SymmetryIR] = []
        self.phase_space: PhaseSpaceIR | None = None
        self.coordinates: CoordinatesIR | None = None
        self.conserved: list[ConservedIR] = []
        self.seen: dict[str, Span] = {}

    @contextmanager
    def attempt(self, *names: str) -> Iterator[None]:
        """One independent check: its errors are collected; when it fails (or is skipped
        because it uses a poisoned name), ``names`` are poisoned in turn."""
        done = False
        with self.errors:
            yield
            done = True
        if not done:
            self.poisoned.update(names)

    def declare(self, name: str, span: Span) -> None:
        if name in self.seen or name in self.values:
            first = self.seen.get(name)
            where = f"first declared at {first!r}" if first else "it is a model parameter"
            raise PhysmlError(Diagnostic("P201", f"'{name}' is already declared", span,
                                         notes=[where]))  # fmt: skip
        self.seen[name] = span

    def needs_lattice(self) -> None:
        """Skip a check that needs the lattice when the lattice statement failed."""
        if self.failed_lattice is not None:
            raise Poisoned("lattice")

    def statement(self, stmt: ast.ModelStmt) -> None:
        if isinstance(stmt, ast.LatticeStmt):
            if self.lattice is not None or self.failed_lattice is not None:
                with self.errors:
                    fail("P201", "a model has one lattice or graph", stmt.span)
                return
            with self.attempt():
                self.lattice = self.graph(stmt) if stmt.is_graph else self.regular(stmt)
            if self.lattice is None:
                self.failed_lattice = stmt
        elif isinstance(stmt, ast.FieldStmt):
            with self.attempt(stmt.name):
                self.declare(stmt.name, stmt.span)
                self.fields[stmt.name] = self.field(stmt)
        elif isinstance(stmt, ast.ArrayStmt):
            defined: set[str] = set()
            for d in stmt.defs:
                if d.name in defined and d.indices:  # W[i, i] = 0 after W[i, j] = ...
                    if d.name in self.arrays:  # (not after a definition that failed)
                        with self.attempt():
                            self.diagonal(d)
                    continue
                defined.add(d.name)
                with self.attempt(d.name):
                    self.declare(d.name, d.span)
                    self.arrays[d.name] = self.array(d, stmt.learnable)
        elif isinstance(stmt, ast.Definition):
            with self.attempt(stmt.name):
                self.declare(stmt.name, stmt.span)
                indices = []
                for x in stmt.indices:
                    if not isinstance(x, ast.Name):
                        fail("P320", "the indices of a definition are names", x.span)
                    indices.append(x.id)
                self.definitions[stmt.name] = DefinitionIR(
                    stmt.kind, stmt.name, tuple(indices), to_ir(stmt.value), span=stmt.span)
        elif isinstance(stmt, ast.SymmetryStmt):
            with self.attempt():
                active, condition = True, None
                if stmt.condition is not None:
                    condition = to_ir(stmt.condition)
                    active = bool(evaluate(condition, self.values, "a symmetry condition"))
                for item in stmt.items:
                    with self.attempt():
                        if item.name not in SYMMETRIES:
                            fail("P210", f"unknown symmetry '{item.name}'", item.span,
                                 did_you_mean(item.name, set(SYMMETRIES))
                                 or "symmetries: " + ", ".join(SYMMETRIES))  # fmt: skip
                        args = tuple(to_ir(a) for a in item.args)
                        self.symmetries.append(SymmetryIR(item.name, active, condition, args,
                                                          span=item.span))  # fmt: skip
        elif isinstance(stmt, ast.PhaseSpaceStmt):
            with self.attempt(stmt.q, stmt.p):
                self.phase_space = self.phase(stmt)
        elif isinstance(stmt, ast.CoordinatesStmt):
            with self.attempt(stmt.name):
                if self.coordinates is not None or self.phase_space is not None:
                    fail("P201", "a model has one 'coordinates' (or 'phase_space') statement",
                         stmt.span)  # fmt: skip
                self.declare(stmt.name, stmt.span)
                self.coordinates = self.coordinate_space(stmt)
        elif isinstance(stmt, ast.DataDecl):
            with self.attempt(stmt.name):
                self.declare(stmt.name, stmt.span)
                self.data[stmt.name] = data_declaration(stmt, self.values)
        elif isinstance(stmt, ast.ConserveStmt):
            with self.attempt():
                self.conserved.append(ConservedIR(to_ir(stmt.expr), span=stmt.span))

    def finish(self, params: tuple[ParamIR, ...]) -> ModelIR:
        """The model IR, or every error collected while checking it (in source order)."""
        node = self.node
        if self.fields and self.lattice is None and self.failed_lattice is None and any(
                f.on in ("sites", "links") for f in self.fields.values()):  # fmt: skip
            f = next(iter(self.fields.values()))
            with self.errors:
                fail("P411", f"field '{f.name}' lives on {f.on}, but model {node.name} declares "
                     "no lattice", f.span, "add e.g. 'lattice square(L, L)' or 'graph "
                     "complete(N)'")  # fmt: skip
        model = ModelIR(
            node.name, self.checker.kind, params, self.lattice, tuple(self.fields.values()),
            tuple(self.arrays.values()), tuple(self.data.values()),
            tuple(self.definitions.values()), tuple(self.symmetries), self.phase_space,
            tuple(self.conserved), self.coordinates, span=node.span, name_span=node.name_span,
        )  # fmt: skip
        if not self.checker.names_checked:
            extra = self._names_of_failed()
            if extra is not None:  # else: the names a failed graph provides are unknown
                before = len(self.errors.diagnostics)
                check_names(model, self.errors, extra)
                failed = self.errors.diagnostics[before:]
                self.checker.names_checked = not failed and not extra
        self.errors.raise_if_any()
        return model

    def _names_of_failed(self) -> set[str] | None:
        """Names that count as declared in the name check although their declaration failed:
        the poisoned names, and the site sets of a graph whose statement failed (None when
        that graph is not even known: then its names are not known either)."""
        names = set(self.poisoned)
        failed = self.failed_lattice
        if failed is not None and (failed.is_graph or failed.call.func in GRAPHS):
            spec = GRAPHS.get(failed.call.func)
            if spec is None:
                return None
            names |= set(spec.sets) | set(spec.pairs)
        return names

    # ---------------------------------------------------------------- lattices and graphs
    def _sizes(self, call: ast.Call, what: str) -> list[int]:
        ev = ConstEvaluator(self.values, allow_words=True, what=f"the {what} arguments")
        sizes = []
        for a in call.args:
            v = ev.walk(to_ir(a))
            if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_SITES:
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool):
                fail("P304", f"a {what} size must be an integer, got {v!r}", a.span)
            if v < 2:
                fail("P405", f"a {what} size must be at least 2, got {v}", a.span,
                     "a lattice of fewer than 2 sites along an axis has no bonds")  # fmt: skip
            sizes.append(v)
        return sizes

    def _unknown(self, call: ast.Call, is_graph: bool) -> None:
        known = GRAPHS if is_graph else LATTICES
        what = "graph" if is_graph else "lattice"
        other = LATTICES if is_graph else GRAPHS
        hint = did_you_mean(call.func, set(known)) or f"{what}s: " + ", ".join(known)
        if call.func in other:
            right = "lattice" if is_graph else "graph"
            hint = f"'{call.func}' is a {right}: write '{right} {call.func}(...)'"
        fail("P209", f"unknown {what} '{call.func}'", call.func_span, hint)

    def graph(self, stmt: ast.LatticeStmt) -> GraphIR:
        call = stmt.call
        if call.func not in GRAPHS:
            self._unknown(call, True)
        if call.func == "edges":
            return self.edge_graph(stmt)
        sizes = self._sizes(call, "graph")
        _site_limit(sizes, call.span, total=sum(sizes))
        spec = GRAPHS[call.func]
        if len(sizes) != len(spec.sets) or call.kwargs:
            if len(spec.sets) == 1:
                fail("P317", f"{call.func}(N) takes exactly one size", call.span)
            fail("P317", f"{call.func}(Nv, Nh) takes two sizes", call.span)
        return GraphIR(call.func, tuple(sizes), span=stmt.span)

    def edge_graph(self, stmt: ast.LatticeStmt) -> GraphIR:
        """``graph edges("file.csv")`` or ``edges("file.csv", sites = N)``: bonds from a file."""
        call = stmt.call
        ev = ConstEvaluator(self.values, allow_words=True, what="the graph arguments")
        if len(call.args) != 1:
            fail("P317", "edges takes the edge list's file: edges(\"graph.csv\")", call.span,
                 "optionally the number of sites: edges(\"graph.csv\", sites = 12)")  # fmt: skip
        path = ev.walk(to_ir(call.args[0]))
        if not isinstance(path, str) or isinstance(path, Word):
            fail("P303", f"the edge list is a file name in quotes, got {path!r}", call.args[0].span)
        for k in call.kwargs:
            if k.name != "sites":
                fail("P401", f"unknown option '{k.name}' for graph edges", k.span,
                     did_you_mean(k.name, {"sites"}) or "options: sites")  # fmt: skip
        edges = read_edges(resolve_edges(path, call.args[0].span), call.args[0].span)
        n = max(max(e) for e in edges) + 1
        given = call.kwarg("sites")
        if given is not None:
            v = ev.walk(to_ir(given.value))
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or v < n:
                fail("P405", f"sites = {v!r}, but the edge list names site {n - 1}", given.span,
                     f"sites >= {n}")  # fmt: skip
            n = v
        _site_limit([n], call.span, total=n)
        return GraphIR("edges", (n,), tuple(edges), path, span=stmt.span)

    def regular(self, stmt: ast.LatticeStmt) -> LatticeIR:

        call = stmt.call
        if call.func not in LATTICES:
            self._unknown(call, False)
        sizes = self._sizes(call, "lattice")
        spec = LATTICES[call.func]
        if len(sizes) not in (1, spec.dim):
            fail("P317", f"{call.func} takes 1 or {spec.dim} sizes, got {len(sizes)}", call.span,
                 f"e.g. {call.func}({', '.join(['L'] * spec.dim)})")  # fmt: skip
        if len(sizes) == 1:
            sizes = sizes * spec.dim
        _site_limit(sizes, call.span)
        ev = ConstEvaluator(self.values, allow_words=True, what="the lattice arguments")
        values = {k.name: ev.walk(to_ir(k.value)) for k in call.kwargs}
        if isinstance(values.get("boundary"), (list, tuple)):  # one boundary per axis
            values["boundary"] = [str(v) if isinstance(v, Word) else v for v in values["boundary"]]
        opts = validate_options(
            LatticeOptions, values,
            {k.name: k.span for k in call.kwargs}, call.span, f"lattice {call.func}",
        )  # fmt: skip
        if isinstance(opts.boundary, list):
            if len(opts.boundary) != len(sizes):
                fail("P317", f"{call.func} has {len(sizes)} axes: give one boundary each, got "
                     f"{len(opts.boundary)}", call.kwarg("boundary").span,
                     "e.g. boundary = [" + ", ".join(["periodic"] * len(sizes)) + "]")  # fmt: skip
            periodic = tuple(b == "periodic" for b in opts.boundary)
        else:
            periodic = tuple(opts.boundary == "periodic" for _ in sizes)
        return LatticeIR(call.func, tuple(sizes), periodic, spec.vectors, spec.basis,
                         span=stmt.span)  # fmt: skip

    # ---------------------------------------------------------------- fields
    def domain(self, t: ast.TypeExpr, known: dict | tuple, code: str = "P301",
               what: str = "field domain") -> DomainIR:  # fmt: skip
        if t.name not in known:
            hint = did_you_mean(t.name, set(known)) or "domains: " + ", ".join(known)
            fail(code, f"unknown {what} '{t.name}'", t.span, hint)
        if t.name == "potts":
            options = set(CATALOGUE.domains.lookup("potts").schema.model_fields)
            for k in t.kwargs:
                if k.name not in options:
                    fail("P401", f"unknown option '{k.name}' for domain potts", k.span,
                         did_you_mean(k.name, options) or "options: " + ", ".join(options))
            given = [*t.args, *(k.value for k in t.kwargs)]
            if len(given) != 1:
                fail("P317", "potts takes the number of states: potts(q)", t.span, "e.g. potts(3)")
            q = evaluate(to_ir(given[0]), self.values, "the number of Potts states")
            if isinstance(q, float) and q.is_integer():
                q = int(q)
            if not isinstance(q, int) or isinstance(q, bool):
                fail("P304", f"the number of Potts states must be an integer, got {q!r}", t.span)
            if q < 2 or q > MAX_POTTS_STATES:
                fail("P405", f"a Potts variable needs 2 <= q <= {MAX_POTTS_STATES} states, got "
                     f"q = {q}", given[0].span)  # fmt: skip
            return DomainIR("potts", (q,))
        schema = SCHEMAS.get(t.name)
        if (t.args or t.kwargs) and schema is not None:
            return self._domain_options(t, schema)
        if t.name == "integer":
            fail("P317", "integer takes its smallest and largest value: integer(lo, hi)", t.span,
                 "e.g. integer(-2, 2)")  # fmt: skip
        if t.args or t.kwargs:
            fail("P317", f"domain '{t.name}' takes no arguments", t.span)
        return DomainIR(t.name)

    def _domain_options(self, t: ast.TypeExpr, schema) -> DomainIR:
        """``spin(1)``, ``spin(S = 3/2)``, ``integer(-2, 2)``: positional arguments in the
        schema's order, then named ones; constants evaluated, the schema validated."""
        names = list(schema.model_fields)
        if len(t.args) > len(names):
            fail("P317", f"{t.name} takes at most {len(names)} argument(s): "
                 f"{t.name}({', '.join(names)})", t.span)  # fmt: skip
        values: dict[str, Any] = {}
        spans: dict[str, Span | None] = {}
        for name, arg in zip(names, t.args):
            values[name], spans[name] = arg, arg.span
        for k in t.kwargs:
            if k.name in values:
                fail("P401", f"option '{k.name}' of {t.name} is given twice", k.span)
            values[k.name], spans[k.name] = k.value, k.span
        ev = ConstEvaluator(self.values, what=f"the arguments of {t.name}")
        for name in list(values):
            if name in schema.model_fields:
                v = ev.walk(to_ir(values[name]))
                if isinstance(v, float) and v.is_integer() and \
                        schema.model_fields[name].annotation is int:  # fmt: skip
                    v = int(v)
                if isinstance(v, int) and schema.model_fields[name].annotation is float:
                    v = float(v)
                values[name] = v
        options = validate_options(schema, values, spans, t.span, f"domain {t.name}")
        return DomainIR(t.name, domain_args(t.name, options))

    def field(self, stmt: ast.FieldStmt) -> FieldIR:
        t = stmt.type
        if t.shape:
            fail("P317", f"domain '{t.name}' takes no arguments", t.span)
        domain = self.domain(t, DOMAINS)
        failed = self.failed_lattice
        if failed is not None and (failed.is_graph or failed.call.func in GRAPHS):
            raise Poisoned("lattice")  # the site sets are those of the graph that failed
        lat = self.lattice
        if isinstance(lat, GraphIR) and len(GRAPHS[lat.kind].sets) > 1:
            sets = GRAPHS[lat.kind].sets
            if stmt.on not in sets:
                fail("P209", f"a {lat.kind} graph has site sets " + ", ".join(sorted(sets))
                     + f", not '{stmt.on}'", stmt.on_span, did_you_mean(stmt.on, set(sets)))
            return FieldIR(stmt.name, domain, stmt.on, span=stmt.span)
        if stmt.on not in ("sites", "links"):
            hint = did_you_mean(stmt.on, {"sites", "links"}) or "fields live on sites or links"
            fail("P209", f"fields live on 'sites' or 'links', not '{stmt.on}'", stmt.on_span, hint)
        return FieldIR(stmt.name, domain, stmt.on, span=stmt.span)

    def phase(self, stmt: ast.PhaseSpaceStmt) -> PhaseSpaceIR:
        """``phase_space (q, p)`` (shape ()), ``: real[N]`` or ``: real[N, D]``."""
        shape = () if stmt.type is None else self.real_shape(stmt.type, "phase_space (q, p)")
        return PhaseSpaceIR(stmt.q, stmt.p, shape, span=stmt.span)

    def real_shape(self, t: ast.TypeExpr, usage: str) -> tuple[int, ...]:
        """The shape of ``real``, ``real[N]`` or ``real[N, D]`` (continuous coordinates)."""
        if t.name != "real" or t.args or t.kwargs:
            fail("P301", f"coordinates are real: {usage}: real[N, D]", t.span)
        dims = []
        for x in t.shape:
            v = evaluate(to_ir(x), self.values, "the shape of the coordinates")
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                fail("P405", f"a dimension of the coordinates must be a positive integer, got "
                     f"{v!r}", x.span)  # fmt: skip
            dims.append(v)
        if len(dims) > 2:
            fail("P317", f"{usage.split()[0]} takes real, real[N] or real[N, D]", t.span)
        _site_limit(dims, t.span)
        return tuple(dims)

    def coordinate_space(self, stmt: ast.CoordinatesStmt) -> CoordinatesIR:
        """``coordinates x: real[N, D] [in [lower, upper]]``."""
        usage = f"coordinates {stmt.name}"
        shape = self.real_shape(stmt.type, usage)
        lower = upper = None
        if stmt.bounds is not None:
            b = evaluate(to_ir(stmt.bounds), self.values, "the bounds of the coordinates")
            ok = isinstance(b, list | tuple) and len(b) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in b)  # fmt: skip
            if not ok or not b[0] < b[1]:
                fail("P426", f"the bounds of the coordinates are [lower, upper] with lower < "
                     f"upper, got {b!r}", stmt.bounds.span,
                     f"e.g. {usage}: real[2] in [-5.12, 5.12]")  # fmt: skip
            lower, upper = float(b[0]), float(b[1])
        return CoordinatesIR(stmt.name, shape, lower, upper, span=stmt.span)

    # ---------------------------------------------------------------- arrays
    def structures(self) -> set[str]:
        lat = self.lattice
        if isinstance(lat, GraphIR):
            spec = GRAPHS[lat.kind]
            if len(spec.sets) > 1:
                return set(spec.sets) | set(spec.pairs)
        return set(ARRAY_STRUCTURES)

    def array(self, d: ast.ArrayDef, learnable: bool) -> ArrayIR:
        self.needs_lattice()
        if d.on is not None:
            known = self.structures()
            if d.on not in known:
                hint = did_you_mean(d.on, known) or ", ".join(sorted(known))
                fail("P209", f"unknown structure '{d.on}'", d.on_span, hint)
        if self.lattice is None:
            fail("P411", f"'{d.name}' lives on a lattice structure, but no lattice is declared "
                 "yet", d.span, "declare the lattice before the parameters that live on it")
        if isinstance(self.lattice, GraphIR) and self.lattice.kind == "complete" and \
                d.on in ("bonds", "bonds2"):  # fmt: skip
            fail("P408", f"a complete graph has pairs, not {d.on}", d.on_span or d.span,
                 "use 'on pairs'")  # fmt: skip
        if isinstance(self.lattice, GraphIR) and self.lattice.kind == "edges" and \
                d.on == "bonds2":  # fmt: skip
            fail("P408", "a graph read from an edge list has bonds and pairs, not bonds2",
                 d.on_span or d.span, "use 'on bonds'")  # fmt: skip
        value = to_ir(d.value)
        if d.indices:
            free = []
            for x in d.indices:
                if not isinstance(x, ast.Name) or x.id in free:
                    fail("P320", "the indices of a definition are distinct names: W[i, j] = ...",
                         x.span)  # fmt: skip
                free.append(x.id)
            return ArrayIR(d.name, d.on, value, learnable, tuple(free), span=d.span)
        call = as_call(value)
        if call is not None and call.func == "load":
            if d.on is None:
                fail("P411", f"say where '{d.name}' lives: 'param {d.name} on edges = load(...)'",
                     d.span)  # fmt: skip
            _check_load(call, self.values)
        elif d.on is None:
            fail("P411", f"say where '{d.name}' lives: 'param {d.name} on bonds = ...'", d.span,
                 f"or define it by its indices: 'param {d.name}[i, j] = ...'")  # fmt: skip
        elif call is not None and call.func in RANDOM_INITS:
            _check_random(call, self.values)
        else:
            v = evaluate(value, self.values, f"the value of '{d.name}'")
            if isinstance(v, bool) or not isinstance(v, int | float):
                fail("P303", f"'{d.name}' must be a number or a random draw", value.span,
                     "e.g. normal(0, 1, seed = 1), uniform(-1, 1, seed = 2), choice([-1, 1], "
                     "seed = 3)")  # fmt: skip
        return ArrayIR(d.name, d.on, value, learnable, span=d.span)

    def diagonal(self, d: ast.ArrayDef) -> None:
        """``W[i, i] = 0`` after ``W[i, j] = ...``: a diagonal assignment."""
        arr = self.arrays[d.name]
        names = [x.id if isinstance(x, ast.Name) else None for x in d.indices]
        n_axes = len(arr.indices) if arr.indices else len(names)
        if None in names or len(names) != n_axes or len(set(names)) == len(names):
            fail("P320", f"'{d.name}' is already defined; a second definition assigns a "
                 f"diagonal, e.g. {d.name}[i, i] = 0", d.span)  # fmt: skip
        if d.on is not None:
            fail("P320", "a diagonal assignment takes no 'on'", d.on_span)
        diag = DiagonalIR(tuple(names), to_ir(d.value), span=d.span)
        self.arrays[d.name] = ArrayIR(arr.name, arr.on, arr.value, arr.learnable, arr.indices,
                                      arr.diagonal + (diag,), span=arr.span)  # fmt: skip


def _site_limit(sizes: list[int], span: Span, total: int | None = None) -> None:
    if total is None:
        total = 1
        for v in sizes:
            total *= v
    if total > MAX_SITES:
        fail("P407", f"{total} sites is more than physml handles ({MAX_SITES})", span)


def _coerce(p: ast.ParamDecl, value: Any, span: Span | None) -> Any:
    kind = p.type_name
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            fail("P321", f"parameter '{p.name}' is an int, got {value!r}", span)
        return value
    if kind == "real":
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("P321", f"parameter '{p.name}' is real, got {value!r}", span)
        if not math.isfinite(value):  # an infinite coupling has no Boltzmann weight to sample
            fail("P321", f"parameter '{p.name}' is a finite real number, got {value!r}", span,
                 "a limit such as T = 0 or K = inf is approached by large finite values")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            fail("P321", f"parameter '{p.name}' is a bool, got {value!r}", span)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | complex):
        fail("P321", f"parameter '{p.name}' is complex, got {value!r}", span)
    return complex(value)


def _check_random(call: E.Call, values: dict[str, Any]) -> None:
    """``normal(mean, std, seed = 1)`` / ``uniform(low, high, ...)`` / ``choice([...], ...)``."""
    what = f"the arguments of {call.func}"
    args = [evaluate(a, values, what) for a in call.args]
    for k in call.kwargs:
        if k.name != "seed":
            fail("P401", f"unknown option '{k.name}' for {call.func}", k.span, "only 'seed'")
    seed_kw = call.kwarg("seed")
    seed = evaluate(seed_kw.value, values, what) if seed_kw is not None else 0
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        fail("P402", "seed must be a non-negative integer", seed_kw.span if seed_kw else call.span)
    n = RANDOM_INITS[call.func]
    if len(args) != n:
        usage = {"normal": "normal(mean, std, seed = 1)", "uniform": "uniform(low, high, seed = 1)",
                 "choice": "choice([-1, 1], seed = 1)"}[call.func]  # fmt: skip
        fail("P316", f"{call.func} takes {n} argument(s)", call.span, usage)
    check_random_arguments(call, args)


def check_random_arguments(call: E.Call, args: list[Any]) -> None:
    """The evaluated arguments of ``normal``, ``uniform`` or ``choice`` (``call``'s, in order):
    finite reals, a spread >= 0, low <= high, a non-empty list of finite values. Run where a
    declaration is checked and again where its values are realised (other parameter values)."""
    if call.func in ("normal", "uniform"):
        names = ("mean", "std") if call.func == "normal" else ("low", "high")
        for a, v, name in zip(call.args, args, names):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                fail("P303", f"the {name} of {call.func} is a finite real number, got "
                     f"{clip(repr(v), 80)}", a.span)  # fmt: skip
    if call.func == "normal" and args[1] < 0:
        fail("P405", "the standard deviation must be >= 0", call.args[1].span)
    if call.func == "uniform" and args[1] < args[0]:
        fail("P405", f"uniform(low, high) needs low <= high, got {args[0]} > {args[1]}", call.span)
    if call.func == "choice" and (not isinstance(args[0], list) or not args[0]):
        fail("P303", "choice takes a non-empty list of values", call.args[0].span)
    if call.func == "choice" and not all(
            not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
            for v in args[0]):  # fmt: skip
        fail("P303", "choice takes finite real values", call.args[0].span)


def _finite(v: Any) -> bool:
    """No infinity or NaN anywhere in an option value (lists included)."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, complex):
        return math.isfinite(v.real) and math.isfinite(v.imag)
    if isinstance(v, list | tuple):
        return all(_finite(x) for x in v)
    return True


def _check_load(call: E.Call, values: dict[str, Any]) -> None:
    """``load("params.safetensors", key = "W")``: one file name, an optional key."""
    if len(call.args) != 1:
        fail("P316", "load takes a file: load(\"params.safetensors\", key = \"W\")", call.span)
    path = evaluate(call.args[0], values, "the arguments of load")
    for k in call.kwargs:
        if k.name != "key":
            fail("P401", f"unknown option '{k.name}' for load", k.span, "only 'key'")
        if not isinstance(evaluate(k.value, values, "the arguments of load"), str):
            fail("P303", "load takes a file name and a key (strings)", call.span)
    if not isinstance(path, str):
        fail("P303", "load takes a file name and a key (strings)", call.span)


# -------------------------------------------------------------------- data


def declared_type(t: ast.TypeExpr | None, values: dict[str, Any]):
    """The domain and shape of ``spin[P, N]`` / ``binary`` / ``potts(3)[M, L, L]``."""
    if t is None:
        return None, None
    if t.name not in DATA_DOMAINS:
        fail("P301", f"unknown data domain '{t.name}'", t.span,
             did_you_mean(t.name, set(DATA_DOMAINS)) or "domains: "
             + ", ".join(sorted(DATA_DOMAINS)))  # fmt: skip
    domain = DomainIR(t.name)
    if t.name == "potts":
        if len(t.args) != 1:
            fail("P317", "potts takes the number of states: potts(q)", t.span)
        q = evaluate(to_ir(t.args[0]), values, "the number of Potts states")
        if not isinstance(q, int) or isinstance(q, bool) or q < 2:
            fail("P304", "the number of Potts states must be an integer >= 2", t.args[0].span)
        domain = DomainIR("potts", (q,))
    elif t.args or t.kwargs:
        fail("P317", f"domain '{t.name}' takes no arguments", t.span)
    shape = None
    if t.shape:
        shape = tuple(to_ir(x) for x in t.shape)
    return domain, shape


def table_columns(t: ast.TypeExpr) -> tuple[ColumnIR, ...]:
    """The columns of ``table(a = AU, P = yr, n)``: names in order, with their units."""
    if t.shape:
        fail("P317", "a table's shape is its file's: table(a = m, t = s)", t.span)
    columns: list[ColumnIR] = []
    for a in t.args:
        name = name_of(to_ir(a))
        if name is None:
            fail("P317", "a table names its columns: table(a = AU, P = yr)", a.span)
        columns.append(ColumnIR(name, None, span=a.span))
    for k in t.kwargs:
        unit = to_ir(k.value)
        unit_of(unit)  # a located P212 for an unknown or malformed unit
        columns.append(ColumnIR(k.name, unit, span=k.span))
    if not columns:
        fail("P317", "a table names its columns: table(a = AU, P = yr)", t.span)
    columns.sort(key=lambda c: (c.span.line, c.span.column) if c.span else (0, 0))  # as written
    names = [c.name for c in columns]
    for c in columns:
        if names.count(c.name) > 1:
            fail("P212", f"column '{c.name}' is named twice", c.span)
    return tuple(columns)


def data_declaration(decl: ast.DataDecl, values: dict[str, Any]) -> DataIR:
    """A data declaration: its declared type and its source, checked for shape (not loaded)."""
    if decl.type is not None and decl.type.name == "table":
        columns = table_columns(decl.type)
        source = to_ir(decl.value)
        call = as_call(source)
        if call is None or call.func != "load":
            fail("P303", "a table is loaded from a file: load(\"planets.csv\")",
                 source.span)  # fmt: skip
        return DataIR(decl.name, None, None, source, columns, span=decl.span)
    domain, shape = declared_type(decl.type, values)
    source = to_ir(decl.value)
    call = as_call(source)
    sources = {e.name: e.doc for e in CATALOGUE.sources}
    if call is None or call.func not in sources:
        name = call.func if call is not None else None
        fail("P203" if name else "P303",
             f"unknown data source '{name}'" if name else "data comes from a source call",
             call.func_span if call is not None else source.span,
             (did_you_mean(name, set(sources)) if name else None)
             or "sources: " + ", ".join(f"{k} ({v})" for k, v in sources.items()))  # fmt: skip
    if call.func == "sample" and (not call.args or as_call(call.args[0]) is None):
        fail("P316", "sample takes a model first: sample(Ising(L = 8), n = 1000, T = 2.0)",
             call.span)  # fmt: skip
    return DataIR(decl.name, domain, shape, source, span=decl.span)


# -------------------------------------------------------------------- names


def kind_names(model: ModelIR) -> set[str]:
    """Names a model's kind provides: Pauli operators, phase-space coordinates and sums."""
    names: set[str] = set()
    if any(f.domain.kind == "qubit" for f in model.fields):
        names |= QUANTUM_OPERATORS
    if model.phase_space is not None:
        names |= {model.phase_space.q, model.phase_space.p, "particles", "dims"}
    if model.coordinates is not None:
        names |= {model.coordinates.name, "particles", "dims"}
    return names


def check_names(model: ModelIR, errors: ErrorCollector | None = None,
                known_too: set[str] | None = None) -> None:  # fmt: skip
    """Every name in every definition of the model resolves. With ``errors``, each definition
    is checked on its own and its error collected; ``known_too``: names that count as known
    (declarations that failed, reported where they failed)."""
    known = (set(model.values) | set(model.field_map) | set(model.array_map)
             | set(model.definition_map) | set(model.data_map) | CONSTANT_NAMES
             | (known_too or set()))  # fmt: skip
    if isinstance(model.lattice, GraphIR) and len(GRAPHS[model.lattice.kind].sets) > 1:
        spec = GRAPHS[model.lattice.kind]
        known |= set(spec.sets) | set(spec.pairs)
    known |= kind_names(model)
    scalars = set(model.values)
    gauge = any(f.on == "links" for f in model.fields)
    checker = NameChecker(known, scalars, set(model.definition_map), gauge)
    for d in model.definitions:
        with errors if errors is not None else nullcontext():
            checker.check(d.expr, set(d.indices))


def structure_name(e: E.Expr | None) -> str | None:
    """The structure a loop runs over (``bonds``, ``bonds(2)`` -> ``bonds``)."""
    if e is None:
        return None
    call = as_call(e)
    return call.func if call is not None else name_of(e)
