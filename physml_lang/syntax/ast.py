"""The typed syntax tree of a .phys file. Every node carries the span it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from physml_lang.diagnostics import Span

# ---------------------------------------------------------------- expressions


@dataclass
class Expr:
    span: Span


@dataclass
class Number(Expr):
    value: int | float


@dataclass
class Imaginary(Expr):
    value: float


@dataclass
class String(Expr):
    value: str


@dataclass
class Name(Expr):
    id: str


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class Unary(Expr):
    op: str  # "-" or "not"
    operand: Expr


@dataclass
class Binary(Expr):
    op: str  # + - * / % ^ == != < <= > >= and or
    left: Expr
    right: Expr


@dataclass
class Index(Expr):
    base: Expr
    indices: list[Expr]


@dataclass
class Keyword:
    name: str
    value: Expr
    span: Span


@dataclass
class Call(Expr):
    func: str
    func_span: Span
    args: list[Expr] = field(default_factory=list)
    kwargs: list[Keyword] = field(default_factory=list)

    def kwarg(self, name: str) -> Keyword | None:
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass
class Loop:
    """``for (i, j) in bonds`` / ``for mu``: names bound by a generator, and their domain."""

    names: list[str]
    domain: Expr | None
    span: Span


@dataclass
class Generator(Expr):
    """``sum(body for ... in ...)``, also prod/max/min over a structure."""

    func: str
    func_span: Span
    body: Expr
    loops: list[Loop]


# ---------------------------------------------------------------- declarations


@dataclass
class Node:
    span: Span


@dataclass
class TypeExpr(Node):
    name: str
    args: list[Expr] = field(default_factory=list)
    kwargs: list[Keyword] = field(default_factory=list)
    shape: list[Expr] = field(default_factory=list)


@dataclass
class ParamDecl(Node):
    name: str
    type_name: str
    type_span: Span
    default: Expr | None
    unit: Expr | None = None  # l: real [m]


@dataclass
class LatticeStmt(Node):
    call: Call
    is_graph: bool


@dataclass
class FieldStmt(Node):
    name: str
    type: TypeExpr
    on: str
    on_span: Span


@dataclass
class PhaseSpaceStmt(Node):
    q: str
    p: str
    type: TypeExpr | None


@dataclass
class CoordinatesStmt(Node):
    name: str
    type: TypeExpr
    bounds: Expr | None


@dataclass
class ArrayDef(Node):
    name: str
    indices: list[Expr]
    on: str | None
    on_span: Span | None
    value: Expr


@dataclass
class ArrayStmt(Node):
    learnable: bool
    defs: list[ArrayDef]


@dataclass
class DataDecl(Node):
    name: str
    type: TypeExpr | None
    value: Expr


@dataclass
class Definition(Node):
    kind: str  # energy, hamiltonian, action, potential, kinetic, plaquette, let, observable, trial
    name: str
    indices: list[Expr]
    value: Expr


@dataclass
class SymmetryItem(Node):
    name: str
    args: list[Expr] = field(default_factory=list)
    kwargs: list[Keyword] = field(default_factory=list)


@dataclass
class SymmetryStmt(Node):
    items: list[SymmetryItem]
    condition: Expr | None


@dataclass
class ConserveStmt(Node):
    expr: Expr


ModelStmt = (
    LatticeStmt
    | FieldStmt
    | PhaseSpaceStmt
    | CoordinatesStmt
    | ArrayStmt
    | DataDecl
    | Definition
    | SymmetryStmt
    | ConserveStmt
)


@dataclass
class Model(Node):
    name: str
    name_span: Span
    params: list[ParamDecl]
    body: list[ModelStmt]


@dataclass
class Import(Node):
    name: str
    is_file: bool


@dataclass
class LearnerDecl(Node):
    name: str
    call: Call
    respecting: list[tuple[str, Span]]


@dataclass
class RunItem(Node):
    """One item of a run statement.

    kind "expr": ``value``; "named": ``name = value``; "in": ``name in value``;
    "via": ``value via via``.
    """

    kind: str
    value: Expr
    name: str | None = None
    via: Expr | None = None


@dataclass
class RunStmt(Node):
    word: str
    word_span: Span
    items: list[RunItem]


@dataclass
class Run(Node):
    name: str
    name_span: Span
    stmts: list[RunStmt]


@dataclass
class Program(Node):
    imports: list[Import]
    models: list[Model]
    learners: list[LearnerDecl]
    data: list[DataDecl]
    runs: list[Run]


# ---------------------------------------------------------------- printing


def _dump_value(v, indent: int) -> str:
    pad = "  " * indent
    if isinstance(v, list):
        if not v:
            return "[]"
        return "\n" + "\n".join(f"{pad}- {_dump_value(x, indent + 1).lstrip()}" for x in v)
    if hasattr(v, "__dataclass_fields__"):
        return dump(v, indent)
    if isinstance(v, tuple):
        return "(" + ", ".join(str(x) for x in v) + ")"
    return repr(v)


def dump(node, indent: int = 0) -> str:
    """The syntax tree as indented text (``physml compile FILE --emit ast``); spans left out."""
    pad = "  " * indent
    name = type(node).__name__
    fields = [(k, v) for k, v in vars(node).items() if not k.endswith("span")]
    simple = all(not isinstance(v, list) and not hasattr(v, "__dataclass_fields__")
                 for _, v in fields)  # fmt: skip
    if simple:
        return f"{pad}{name}(" + ", ".join(f"{k}={v!r}" for k, v in fields) + ")"
    lines = [f"{pad}{name}"]
    for k, v in fields:
        text = _dump_value(v, indent + 2)
        if text.startswith("\n") or hasattr(v, "__dataclass_fields__"):
            lines.append(f"{pad}  {k}:" + ("" if text.startswith("\n") else "\n") + text)
        else:
            lines.append(f"{pad}  {k}: {text}")
    return "\n".join(lines)
