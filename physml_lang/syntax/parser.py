"""Text -> syntax tree: lark LALR (strict) over ``grammar/physml.lark``, with located, tailored
syntax errors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from physml_lang.diagnostics import Diagnostic, PhysmlError, Source, Span, clip

from . import ast
from .tables import OPTIONS, grammar_text, load_tables

KEYWORDS = {
    "import", "model", "lattice", "graph", "field", "on", "phase_space", "coordinates", "param",
    "learnable", "trial",
    "data", "energy", "hamiltonian", "action", "potential", "kinetic", "plaquette", "let",
    "observable", "symmetry", "if", "conserve", "learner", "respecting", "run", "in", "via",
    "for", "or", "and", "not",
}  # fmt: skip

TOKEN_WORDS = {
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'",
    "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "NAME": "a name",
    "NUMBER": "a number", "IMAG_NUMBER": "an imaginary number", "STRING": "a string",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "COMPARE": "a comparison",
    "CIRCUMFLEX": "'^'", "PERCENT": "'%'", "$END": "end of file",
}  # fmt: skip

DECLARATIONS = "'model', 'learner', 'data', 'run' or 'import'"
MODEL_STATEMENTS = {
    "lattice", "graph", "field", "param", "learnable", "data", "energy", "hamiltonian", "action",
    "potential", "kinetic", "plaquette", "let", "observable", "symmetry", "phase_space", "conserve",
    "coordinates", "trial",
}  # fmt: skip


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = grammar_text()
    return load_tables(grammar) or Lark(grammar, **OPTIONS)


def keywords() -> tuple[str, ...]:
    """Every word the grammar spells out (its string terminals that are words): what
    highlighting and completion must know."""
    words = {t.pattern.value for t in _parser().terminals
             if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier()}  # fmt: skip
    return tuple(sorted(words))


def lex(text: str) -> tuple[list[Token], Tree]:
    """The parser's own tokens of ``text`` (each typed as the grammar reads it there) and the
    parse tree; lark's UnexpectedInput on a syntax error (``parse`` first for a diagnostic)."""
    interactive = _parser().parse_interactive(text)
    tokens = list(interactive.iter_parse())
    return tokens, interactive.feed_eof()


def _span(source: Source, meta) -> Span:
    return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(source: Source, tok: Token) -> Span:
    return Span(
        source, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1
    )


class _Builder:
    """lark tree -> :mod:`physml_lang.ast` nodes, attaching spans. Each grammar rule has a
    method taking the rule's position (meta) and its built children."""

    def __init__(self, source: Source):
        self.source = source
        self.rules = {
            name: getattr(self, name) for name in dir(type(self))
            if not name.startswith("_") and name not in ("s", "t", "transform")
        }  # fmt: skip

    def transform(self, tree: Tree):
        """Bottom-up over the lark tree (children first), one rule method per node."""
        rules = self.rules

        def build(node):
            if type(node) is not Tree:
                return node  # a token, or None for an absent optional part
            children = [build(c) for c in node.children]
            rule = rules.get(node.data)
            if rule is None:
                return Tree(node.data, children, node.meta)
            return rule(node.meta, children)

        return build(tree)

    def s(self, meta) -> Span:
        return _span(self.source, meta)

    def t(self, tok: Token) -> Span:
        return _token_span(self.source, tok)

    # -------- expressions
    def number(self, meta, c):
        text = str(c[0])
        value: int | float = int(text) if text.isdigit() else float(text)
        return ast.Number(self.s(meta), value)

    def imaginary(self, meta, c):
        return ast.Imaginary(self.s(meta), float(str(c[0])[:-1]))

    def string(self, meta, c):
        return ast.String(self.s(meta), str(c[0])[1:-1])

    def name(self, meta, c):
        return ast.Name(self.s(meta), str(c[0]))

    def list_(self, meta, c):
        return ast.ListExpr(self.s(meta), [x for x in c if x is not None])

    def _binary(self, meta, c, op: str) -> ast.Binary:
        return ast.Binary(self.s(meta), op, c[0], c[-1])

    def add(self, meta, c):
        return self._binary(meta, c, "+")

    def sub(self, meta, c):
        return self._binary(meta, c, "-")

    def mul(self, meta, c):
        return self._binary(meta, c, "*")

    def div(self, meta, c):
        return self._binary(meta, c, "/")

    def mod(self, meta, c):
        return self._binary(meta, c, "%")

    def pow(self, meta, c):
        return self._binary(meta, c, "^")

    def compare(self, meta, c):
        return ast.Binary(self.s(meta), str(c[1]), c[0], c[2])

    def or_(self, meta, c):
        out = c[0]
        for x in c[1:]:
            out = ast.Binary(self.s(meta), "or", out, x)
        return out

    def and_(self, meta, c):
        out = c[0]
        for x in c[1:]:
            out = ast.Binary(self.s(meta), "and", out, x)
        return out

    def not_(self, meta, c):
        return ast.Unary(self.s(meta), "not", c[0])

    def neg(self, meta, c):
        return ast.Unary(self.s(meta), "-", c[0])

    def factor(self, meta, c):  # unary plus
        return c[-1]

    def index(self, meta, c):
        return ast.Index(self.s(meta), c[0], list(c[1:]))

    def kwarg(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], self.s(meta))

    def args(self, meta, c):
        return list(c)

    def call(self, meta, c):
        name, args = c[0], c[1] or []
        pos = [a for a in args if not isinstance(a, ast.Keyword)]
        kws = [a for a in args if isinstance(a, ast.Keyword)]
        seen: set[str] = set()
        for k in kws:
            if k.name in seen:
                raise PhysmlError(Diagnostic("P201", f"argument '{k.name}' given twice", k.span))
            seen.add(k.name)
        return ast.Call(self.s(meta), str(name), self.t(name), pos, kws)

    def binder_name(self, meta, c):
        return [str(c[0])]

    def binder_tuple(self, meta, c):
        return [str(x) for x in c]

    def comprehension(self, meta, c):
        return ast.Loop(c[0], c[1], self.s(meta))

    def generator(self, meta, c):
        return ast.Generator(self.s(meta), str(c[0]), self.t(c[0]), c[1], list(c[2:]))

    # -------- declarations
    def type_name(self, meta, c):
        return ast.TypeExpr(self.s(meta), str(c[0]))

    def type_call(self, meta, c):
        args = c[1] or []
        pos = [a for a in args if not isinstance(a, ast.Keyword)]
        kws = [a for a in args if isinstance(a, ast.Keyword)]
        return ast.TypeExpr(self.s(meta), str(c[0]), pos, kws)

    def type_shape(self, meta, c):
        return ast.TypeExpr(self.s(meta), str(c[0]), shape=list(c[1:]))

    def param_decl(self, meta, c):
        return ast.ParamDecl(self.s(meta), str(c[0]), str(c[1]), self.t(c[1]), c[3], c[2])

    def unit(self, meta, c):
        return c[0]

    def param_list(self, meta, c):
        return [x for x in c if x is not None]

    def model_decl(self, meta, c):
        name, params, body = c[0], c[1] or [], c[2:]
        return ast.Model(self.s(meta), str(name), self.t(name), params, list(body))

    def lattice_stmt(self, meta, c):
        return ast.LatticeStmt(self.s(meta), c[0], False)

    def graph_stmt(self, meta, c):
        return ast.LatticeStmt(self.s(meta), c[0], True)

    def field_stmt(self, meta, c):
        return ast.FieldStmt(self.s(meta), str(c[0]), c[1], str(c[2]), self.t(c[2]))

    def phase_space_stmt(self, meta, c):
        return ast.PhaseSpaceStmt(self.s(meta), str(c[0]), str(c[1]), c[2])

    def coordinates_stmt(self, meta, c):
        return ast.CoordinatesStmt(self.s(meta), str(c[0]), c[1], c[2])

    def array_def(self, meta, c):
        name, rest = c[0], list(c[1:])
        value = rest.pop()
        on = None
        if rest and isinstance(rest[-1], Token) and rest[-1].type == "NAME":
            on = rest.pop()
        return ast.ArrayDef(
            self.s(meta),
            str(name),
            rest,
            str(on) if on else None,
            self.t(on) if on else None,
            value,
        )

    def array_stmt(self, meta, c):
        learnable = bool(c) and isinstance(c[0], Token) and c[0].type == "LEARNABLE"
        defs = [x for x in c if isinstance(x, ast.ArrayDef)]
        return ast.ArrayStmt(self.s(meta), learnable, defs)

    def data_decl(self, meta, c):
        return ast.DataDecl(self.s(meta), str(c[0]), c[1], c[2])

    def defkind(self, meta, c):
        return str(c[0])

    def definition(self, meta, c):
        kind, name, rest = c[0], c[1], list(c[2:])
        value = rest.pop()
        return ast.Definition(self.s(meta), kind, str(name), rest, value)

    def symmetry_item(self, meta, c):
        args = c[1] if len(c) > 1 and c[1] else []
        pos = [a for a in args if not isinstance(a, ast.Keyword)]
        kws = [a for a in args if isinstance(a, ast.Keyword)]
        return ast.SymmetryItem(self.s(meta), str(c[0]), pos, kws)

    def symmetry_stmt(self, meta, c):
        items = [x for x in c if isinstance(x, ast.SymmetryItem)]
        cond = c[-1] if c and not isinstance(c[-1], ast.SymmetryItem) else None
        return ast.SymmetryStmt(self.s(meta), items, cond)

    def conserve_stmt(self, meta, c):
        return ast.ConserveStmt(self.s(meta), c[0])

    def import_stdlib(self, meta, c):
        return ast.Import(self.s(meta), str(c[0]), False)

    def import_file(self, meta, c):
        return ast.Import(self.s(meta), str(c[0])[1:-1], True)

    def import_decl(self, meta, c):
        return list(c)

    def respecting(self, meta, c):
        return [(str(x), self.t(x)) for x in c]

    def learner_decl(self, meta, c):
        return ast.LearnerDecl(self.s(meta), str(c[0]), c[1], c[2] or [])

    def run_word(self, meta, c):
        return c[0]

    def named_item(self, meta, c):
        return ast.RunItem(self.s(meta), "named", c[1], name=str(c[0]))

    def in_item(self, meta, c):
        return ast.RunItem(self.s(meta), "in", c[1], name=str(c[0]))

    def via_item(self, meta, c):
        return ast.RunItem(self.s(meta), "via", c[0], via=c[1])

    def run_stmt(self, meta, c):
        word = c[0]
        items = [x if isinstance(x, ast.RunItem) else ast.RunItem(x.span, "expr", x) for x in c[1:]]
        return ast.RunStmt(self.s(meta), str(word), self.t(word), items)

    def run_decl(self, meta, c):
        return ast.Run(self.s(meta), str(c[0]), self.t(c[0]), list(c[1:]))

    def start(self, meta, c):
        program = ast.Program(
            Span(self.source, 1, 1, 1, 1), imports=[], models=[], learners=[], data=[], runs=[]
        )
        for item in c:
            if isinstance(item, list):
                program.imports += item
            elif isinstance(item, ast.Model):
                program.models.append(item)
            elif isinstance(item, ast.LearnerDecl):
                program.learners.append(item)
            elif isinstance(item, ast.DataDecl):
                program.data.append(item)
            elif isinstance(item, ast.Run):
                program.runs.append(item)
        return program


def _describe(expected: set[str]) -> str:
    words = sorted(
        {TOKEN_WORDS.get(e, f"'{e.lower()}'") for e in expected if not e.startswith("_")}
    )
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _unclosed(text: str, end: int, opener: str) -> tuple[int, int] | None:
    """(line, column) of the innermost ``opener`` ('(', '[' or '{') still open at offset ``end``,
    skipping comments and strings; None when every one is closed."""
    closer = {"(": ")", "[": "]", "{": "}"}[opener]
    stack: list[tuple[int, int]] = []
    line, column, i = 1, 1, 0
    in_string = in_comment = False
    while i < min(end, len(text)):
        c = text[i]
        if c == "\n":
            line, column, in_comment, in_string = line + 1, 0, False, False
        elif in_comment:
            pass
        elif in_string:
            in_string = c != '"'
        elif c == "#":
            in_comment = True
        elif c == '"':
            in_string = True
        elif c == opener:
            stack.append((line, column))
        elif c == closer and stack:
            stack.pop()
        i += 1
        column += 1
    return stack[-1] if stack else None


def _offset(source: Source, line: int, column: int) -> int:
    lines = source.text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def _at(where: tuple[int, int]) -> str:
    return f"line {where[0]}, column {where[1]}"


def _shown(char: str) -> str:
    """A character as it can be printed in a message (control characters escaped)."""
    return char if char.isprintable() else repr(char)[1:-1]


def _syntax_error(source: Source, exc: UnexpectedInput) -> Diagnostic:
    """Turn a lark error into a diagnostic, with tailored messages for the common mistakes."""
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        char = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else "?"
        span = Span(source, line, column, line, column + 1)
        hint = {
            ";": "statements end at the end of the line; no ';' is needed",
            "'": "strings use double quotes: \"patterns.npz\"",
            "&": "use 'and'", "|": "use 'or'", "!": "use 'not' (or '!=' to compare)",
            "{": "a '{' opens a model or run body: 'model Name(...) {' or 'run name {'",
        }.get(char)  # fmt: skip
        return Diagnostic("P102", f"unexpected character '{_shown(char)}'", span, hint)
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        expected = getattr(exc, "expected", set())
        lines = source.text.splitlines() or [""]
        last = len(lines)
        span = Span(source, last, max(1, len(lines[-1])), last, max(2, len(lines[-1]) + 1))
        hint = None
        if "RBRACE" in expected:
            hint = "a '{' block is not closed: add the missing '}'"
            where = _unclosed(source.text, len(source.text), "{")
            if where is not None:
                hint = f"the '{{' at {_at(where)} is not closed: add the missing '}}'"
        elif "RPAR" in expected:
            hint = "a '(' is not closed: add the missing ')'"
            where = _unclosed(source.text, len(source.text), "(")
            if where is not None:
                hint = f"the '(' at {_at(where)} is not closed: add the missing ')'"
        return Diagnostic(
            "P101", f"unexpected end of file; expected {_describe(expected)}", span, hint
        )
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = set(exc.expected)
    span = _token_span(source, tok)
    text = str(tok)
    hint = None
    message = f"unexpected '{text}'; expected {_describe(expected)}"
    history = getattr(exc, "token_history", None) or []
    previous = history[-1] if history else None
    if (
        previous is not None
        and str(previous) in KEYWORDS
        and previous.type != "NAME"
        and tok.type in ("RSQB", "RPAR", "COMMA", "STAR", "SLASH", "PERCENT", "CIRCUMFLEX",
                         "COMPARE", "RBRACE", "$END")
    ):  # fmt: skip
        return Diagnostic(
            "P100",
            f"'{previous}' is a reserved word and cannot be used as a name here",
            _token_span(source, previous),
            "choose another name",
        )
    if text in KEYWORDS and "NAME" in expected:
        message = f"'{text}' is a reserved word and cannot be used as a name here"
        hint = "choose another name"
    elif tok.type == "EQUAL" and "COMPARE" in expected:
        hint = "to compare two values use '=='"
    elif tok.type in ("NAME", "NUMBER") and "COMMA" in expected and "RPAR" in expected:
        hint = "is a ',' missing between arguments?"
    elif tok.type == "NAME" and text in MODEL_STATEMENTS and "RBRACE" not in expected:
        hint = f"'{text}' statements belong inside a 'model Name(...) {{ ... }}' body"
    elif expected >= {"MODEL", "RUN"} or ("RUN" in expected and "LEARNER" in expected):
        if text in MODEL_STATEMENTS:
            message = f"'{text}' must be inside a model body"
            hint = "write it between the braces of 'model Name(...) { ... }'"
        else:
            message = f"unexpected '{text}' at the top level; expected {DECLARATIONS}"
    elif "RPAR" in expected and (text in MODEL_STATEMENTS or text in ("run", "model", "}")):
        hint = f"a '(' is not closed before this '{text}'"
        where = _unclosed(source.text, _offset(source, tok.line, tok.column), "(")
        if where is not None:
            hint = f"the '(' at {_at(where)} is not closed before this '{text}'"
    elif tok.type == "LBRACE" and "RPAR" in expected:
        hint = "a '(' is not closed before this '{'"
    elif "RBRACE" in expected and tok.type == "NAME" and text not in KEYWORDS:
        hint = f"'{text}' is not a statement; model statements are: " + ", ".join(
            sorted(MODEL_STATEMENTS)
        )
    return Diagnostic("P100", message, span, hint)


def parse(text: str, name: str = "<string>", *, root: str | Path | None = None,
          allow_outside: bool = False) -> ast.Program:  # fmt: skip
    """Parse physml source text into a :class:`~physml_lang.ast.Program`.

    Raises :class:`PhysmlError` with a located diagnostic on a syntax error. ``root`` and
    ``allow_outside``: which files the text may name (see :class:`Source`).
    """
    source = Source(name, text, str(root) if root is not None else None, allow_outside)
    tree: Tree | None = None
    try:
        tree = _parser().parse(text)
        return _Builder(source).transform(tree)
    except UnexpectedInput as exc:
        raise PhysmlError(_syntax_error(source, exc)) from None
    except RecursionError:
        hint = "split the expression: define parts with 'let' and combine them"
        raise PhysmlError(Diagnostic(
            "P801", "this expression is nested too deeply to be read",
            _deepest(source, tree) if tree is not None else None, hint)) from None  # fmt: skip


def _deepest(source: Source, tree: Tree) -> Span | None:
    """The span of the most deeply nested node of a parse tree, found without recursion."""
    best, depth_best = None, -1
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        meta = node.meta
        if depth > depth_best and not meta.empty:
            best, depth_best = meta, depth
        stack.extend((child, depth + 1) for child in node.children)
    if best is None:
        return None
    return Span(source, best.line, best.column, best.end_line, best.end_column)


class NotText(ValueError):
    """Bytes that are not UTF-8 text, or hold a NUL byte (binary data): where (1-based line and
    column, byte offset) and why, never the bytes themselves."""

    def __init__(self, line: int, column: int, offset: int, reason: str):
        self.line, self.column, self.offset, self.reason = line, column, offset, reason
        super().__init__(f"line {line}, column {column}: {reason}")


def decode_text(data: bytes) -> str:
    """The UTF-8 text of a file's bytes, newlines made ``\\n``; :class:`NotText` at the first
    byte that is not UTF-8 or is NUL (a binary file)."""
    nul = data.find(b"\x00")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset, reason = exc.start, "a byte that is not UTF-8 text"
        if 0 <= nul < offset:
            offset, reason = nul, "a NUL byte (binary data)"
    else:
        if nul < 0:
            return text.replace("\r\n", "\n").replace("\r", "\n")  # as files read as text
        offset, reason = nul, "a NUL byte (binary data)"
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    raise NotText(line, column, offset, reason)


def parse_file(path: str | Path, *, span: Span | None = None, root: str | Path | None = None,
               allow_outside: bool = False) -> ast.Program:  # fmt: skip
    """Parse a .phys file. ``span``: where another file names it (an import), where its errors
    of reading are located; ``root``, ``allow_outside``: as for :func:`parse`. A file that is
    not UTF-8 text is a located P606 (its bytes never shown)."""
    path = Path(path)
    shown = clip(str(path), 80)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PhysmlError(
            Diagnostic("P600", f"file not found: {shown}", span, hint="check the path")
        ) from None
    except (OSError, ValueError) as exc:  # a folder, no permission, a name refused
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise PhysmlError(Diagnostic("P600", f"cannot read {shown}: {why}", span)) from None
    try:
        text = decode_text(data)
    except NotText as exc:
        where = f"line {exc.line}, column {exc.column} holds {exc.reason}"
        hint = "a .phys file is UTF-8 text"
        if span is None:  # the file itself, at the byte (its text is never shown)
            at = Span(Source(str(path), ""), exc.line, exc.column, exc.line, exc.column + 1)
            raise PhysmlError(Diagnostic(
                "P606", f"{shown} is not a text file: {where}", at, hint)) from None  # fmt: skip
        raise PhysmlError(Diagnostic(
            "P606", f"the imported file is not a text file: {where}", span, hint)) from None  # fmt: skip
    return parse(text, str(path), root=root, allow_outside=allow_outside)
