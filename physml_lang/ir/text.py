"""The text form of the IR: ``print_ir`` and ``parse_ir``, exact inverses.

Records print as ``(tag :field value ...)`` with fields at their defaults left out (so adding
a field with a default does not change the text of existing programs), tuples as ``[a b]``,
strings in double quotes, ``true``/``false``/``nil`` for booleans and None, ``(complex re im)``.
Expressions print between braces as s-expressions in which bare words are names and numbers
are literals::

    {(- (* (neg J) (sum (* (at s i) (at s j)) (for (i j) bonds))) (* h (sum (at s i) (for (i) sites))))}

Spans are not printed (they are not part of equality), so ``parse_ir(print_ir(ir)) == ir``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from . import expr as E
from . import model as M
from . import program as P
from . import task as T
from .walk import Walker

RECORDS: dict[str, type] = {
    "program": P.ProgramIR, "learner": P.LearnerIR,
    "model": M.ModelIR, "param": M.ParamIR, "lattice": M.LatticeIR, "graph": M.GraphIR,
    "domain": M.DomainIR, "field": M.FieldIR, "array": M.ArrayIR, "diagonal": M.DiagonalIR,
    "data": M.DataIR, "define": M.DefinitionIR, "symmetry": M.SymmetryIR,
    "phase_space": M.PhaseSpaceIR, "conserve": M.ConservedIR,
    "coordinates": M.CoordinatesIR, "column": M.ColumnIR,
    "task": T.TaskIR, "model_ref": T.ModelRefIR, "scan": T.ScanIR, "measure": T.MeasureIR,
    "plot": T.PlotIR, "statement": T.StatementIR, "item": T.ItemIR, "option": T.Option,
    "word": T.Word, "call": T.CallValue,
}  # fmt: skip
TAGS = {cls: tag for tag, cls in RECORDS.items()}
WIDTH = 100


class IRSyntaxError(ValueError):
    """Text that is not a printed IR."""


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.compare]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# ------------------------------------------------------------------------------------ printing


def _float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _atom(v: Any) -> str:
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, complex):
        return f"(complex {_float(v.real)} {_float(v.imag)})"
    if isinstance(v, str):
        return json.dumps(v)
    raise TypeError(f"cannot print {type(v).__name__} in the IR")


class _Sexp(Walker[str]):
    """An expression as an s-expression (names bare, numbers literal, strings quoted)."""

    def on_number(self, e: E.Num, env: Any) -> str:
        v = e.value
        if isinstance(v, float) and not math.isfinite(v):
            return "#" + _float(v)
        return str(v) if isinstance(v, int) else repr(v)

    def on_imaginary(self, e: E.Imag, env: Any) -> str:
        return f"(imag {self.on_number(E.Num(e.value), env)})"

    def on_string(self, e: E.Str, env: Any) -> str:
        return json.dumps(e.value)

    def on_name(self, e: E.Name, env: Any) -> str:
        return e.id

    def on_list(self, e: E.ListExpr, env: Any) -> str:
        return "(list" + "".join(" " + self.walk(x) for x in e.items) + ")"

    def on_unary(self, e: E.Unary, env: Any) -> str:
        return f"({'neg' if e.op == '-' else 'not'} {self.walk(e.operand)})"

    def on_binary(self, e: E.Binary, env: Any) -> str:
        return f"({e.op} {self.walk(e.left)} {self.walk(e.right)})"

    def on_index(self, e: E.Index, env: Any) -> str:
        return f"(at {self.walk(e.base)}" + "".join(" " + self.walk(x) for x in e.indices) + ")"

    def on_call(self, e: E.Call, env: Any) -> str:
        parts = [self.walk(a) for a in e.args]
        parts += [f"(= {k.name} {self.walk(k.value)})" for k in e.kwargs]
        return f"(call {e.func}" + "".join(" " + p for p in parts) + ")"

    def on_reduce(self, e: E.Reduce, env: Any) -> str:
        loops = []
        for lp in e.loops:
            dom = "" if lp.domain is None else " " + self.walk(lp.domain)
            loops.append(f"(for ({' '.join(lp.names)}){dom})")
        return f"({e.func} {self.walk(e.body)} {' '.join(loops)})"


_expr = _Sexp().walk


def _compact(v: Any) -> str:
    if isinstance(v, E.Expr):
        return "{" + _expr(v) + "}"
    if isinstance(v, tuple):
        return "[" + " ".join(_compact(x) for x in v) + "]"
    if type(v) in TAGS:
        parts = [TAGS[type(v)]]
        for f in _fields(type(v)):
            value = getattr(v, f.name)
            if value == _default(f) and type(value) is type(_default(f)):
                continue
            parts.append(f":{f.name} {_compact(value)}")
        return "(" + " ".join(parts) + ")"
    return _atom(v)


def _pretty(v: Any, indent: int, column: int) -> str:
    """``v`` starting at ``column`` of a line indented by ``indent``: flat when it fits, else
    one field (or item) per line, indented two more than the line it starts on."""
    flat = _compact(v)
    if column + len(flat) <= WIDTH:
        return flat
    pad = " " * (indent + 2)
    if isinstance(v, tuple) and all(type(x) in (int, float, str, bool) for x in v):
        lines, line = [], ""
        for x in v:  # atoms fill lines
            word = _atom(x)
            if line and len(pad) + len(line) + 1 + len(word) > WIDTH:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        return "[" + "".join("\n" + pad + x for x in lines) + "]"
    if isinstance(v, tuple):
        return "[" + "".join("\n" + pad + _pretty(x, indent + 2, indent + 2) for x in v) + "]"
    if type(v) in TAGS:
        out = "(" + TAGS[type(v)]
        for f in _fields(type(v)):
            value = getattr(v, f.name)
            if value == _default(f) and type(value) is type(_default(f)):
                continue
            label = f":{f.name} "
            out += "\n" + pad + label + _pretty(value, indent + 2, indent + 2 + len(label))
        return out + ")"
    return flat


def print_ir(ir: Any) -> str:
    """The text of an IR record (a program, model, task, ...), one field per line when long."""
    return _pretty(ir, 0, 0) + "\n"


# ------------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(r'\s*(?:(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<str>"(?:[^"\\]|\\.)*")'
                    r"|(?P<atom>[^\s()\[\]{}\"]+))")  # fmt: skip


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise IRSyntaxError(f"unexpected text at offset {pos}: {text[pos:pos + 20]!r}")
            break
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def _number(text: str) -> int | float | None:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("inf", "-inf", "nan"):
        return float(text)
    try:
        return float(text) if re.fullmatch(r"-?[\d.]+(e[+-]?\d+)?", text) else None
    except ValueError:
        return None


class _Reader:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise IRSyntaxError("unexpected end of text")
        return self.toks[self.i]

    def next(self) -> tuple[str, str]:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        kind, v = self.next()
        if v != value:
            raise IRSyntaxError(f"expected {value!r}, got {v!r}")

    # -------------------------------------------------------------- plain values
    def value(self) -> Any:
        kind, v = self.next()
        if kind == "str":
            return json.loads(v)
        if kind == "atom":
            if v in ("nil", "true", "false"):
                return {"nil": None, "true": True, "false": False}[v]
            n = _number(v)
            if n is None:
                raise IRSyntaxError(f"unexpected word {v!r} outside an expression")
            return n
        if v == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.next()
            return tuple(items)
        if v == "{":
            e = self.expr()
            self.expect("}")
            return e
        if v == "(":
            kind, tag = self.next()
            if tag == "complex":
                re_, im = self.value(), self.value()
                self.expect(")")
                return complex(re_, im)
            cls = RECORDS.get(tag)
            if cls is None:
                raise IRSyntaxError(f"unknown record '{tag}'")
            kwargs = {}
            names = {f.name for f in _fields(cls)}
            while self.peek()[1] != ")":
                kind, label = self.next()
                if not label.startswith(":") or label[1:] not in names:
                    raise IRSyntaxError(f"unexpected {label!r} in ({tag} ...)")
                kwargs[label[1:]] = self.value()
            self.next()
            try:
                return cls(**kwargs)
            except TypeError as exc:
                raise IRSyntaxError(f"({tag} ...): {exc}") from None
        raise IRSyntaxError(f"unexpected {v!r}")

    # -------------------------------------------------------------- expressions
    def expr(self) -> E.Expr:
        kind, v = self.next()
        if kind == "str":
            return E.Str(json.loads(v))
        if kind == "atom":
            if v.startswith("#"):
                return E.Num(float(v[1:]))
            n = _number(v)
            return E.Name(v) if n is None else E.Num(n)
        if v != "(":
            raise IRSyntaxError(f"unexpected {v!r} in an expression")
        kind, head = self.next()
        args: list[Any] = []
        if head == "call":
            func = self.next()[1]
            pos, kws = [], []
            while self.peek()[1] != ")":
                if self.peek()[1] == "(" and self.toks[self.i + 1][1] == "=":
                    self.next()
                    self.next()
                    name = self.next()[1]
                    kws.append(E.Keyword(name, self.expr()))
                    self.expect(")")
                else:
                    pos.append(self.expr())
            self.next()
            return E.Call(func, tuple(pos), tuple(kws))
        if head in E.REDUCTIONS:
            body = self.expr()
            loops = []
            while self.peek()[1] != ")":
                self.expect("(")
                self.expect("for")
                self.expect("(")
                names = []
                while self.peek()[1] != ")":
                    names.append(self.next()[1])
                self.next()
                domain = None if self.peek()[1] == ")" else self.expr()
                self.expect(")")
                loops.append(E.Loop(tuple(names), domain))
            self.next()
            return E.Reduce(head, body, tuple(loops))
        while self.peek()[1] != ")":
            args.append(self.expr())
        self.next()
        if head == "imag":
            return E.Imag(float(args[0].value))
        if head == "list":
            return E.ListExpr(tuple(args))
        if head in ("neg", "not"):
            return E.Unary("-" if head == "neg" else "not", args[0])
        if head == "at":
            return E.Index(args[0], tuple(args[1:]))
        if head in E.BINARY_OPS and len(args) == 2:
            return E.Binary(head, args[0], args[1])
        raise IRSyntaxError(f"unknown expression ({head} ...)")


def parse_ir(text: str) -> Any:
    """The IR record printed by :func:`print_ir` (IRSyntaxError for anything else)."""
    reader = _Reader(text)
    try:
        out = reader.value()
    except (ValueError, IndexError) as exc:
        if isinstance(exc, IRSyntaxError):
            raise
        raise IRSyntaxError(str(exc)) from None
    if reader.i != len(reader.toks):
        raise IRSyntaxError("text after the end of the record")
    return out
