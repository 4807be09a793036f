"""``physml fmt``: the canonical layout of ``.phys`` files (comments kept, idempotent).

The text is lexed by the parser itself (so every token has the type the grammar gives it) and
re-emitted with canonical spacing; the author's line breaks are kept (like gofmt). Only the
whitespace between tokens changes: a safety net compares the tokens and comments of the result
with those of the input and refuses to write when they differ.
"""

from __future__ import annotations

import difflib
import re
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physml_lang.diagnostics import PhysmlError
from physml_lang.syntax.parser import NotText, decode_text, lex, parse, parse_file

INDENT = 4
COMMENT = re.compile(r"#[^\n]*")
OPENERS = {"LPAR", "LSQB"}
CLOSERS = {"RPAR", "RSQB"}
VALUE_ENDS = {"NAME", "NUMBER", "IMAG_NUMBER", "STRING", "RPAR", "RSQB"}  # before a binary +/-
TIGHT = {"^", "**"}  # exponents are written without spaces: p^2, s^-1
# lark's Token (a str with type, line, column, start_pos) and Tree (data, children, meta): used
# through their attributes, as lark itself is imported by the syntax phase only
Token = Any
Tree = Any


class FormatterBug(RuntimeError):
    """The formatted text would not mean what the input means (a bug in the formatter)."""


@dataclass
class _Comment:
    line: int  # 1-based line of the input
    column: int  # 0-based column in the input
    text: str


@dataclass
class _Line:
    """One non-empty line of the input: its tokens and its comment (the last item)."""

    number: int
    tokens: list[Token] = field(default_factory=list)
    comment: _Comment | None = None


@dataclass
class _Out:
    """One line of the output, before trailing comments are aligned."""

    indent: int
    code: str
    comment: _Comment | None = None
    blank_before: bool = False


@dataclass
class _Syntax:
    """What spacing needs from the parse: where statements, run words, units and lists start."""

    statements: set[int] = field(default_factory=set)
    run_words: set[int] = field(default_factory=set)
    spaced_openers: set[int] = field(default_factory=set)  # '[' of a unit or a list literal


def _comments(text: str, tokens: list[Token]) -> list[_Comment]:
    """The comments of ``text``: the gaps between tokens hold only whitespace and comments."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    found: list[_Comment] = []
    edges = [0] + [p for t in tokens for p in (t.start_pos, t.end_pos)] + [len(text)]
    for begin, end in zip(edges[::2], edges[1::2], strict=True):
        for m in COMMENT.finditer(text, begin, end):
            line = bisect_right(starts, m.start())
            found.append(_Comment(line, m.start() - starts[line - 1], m.group().rstrip()))
    return found


def _syntax(tree: Tree) -> _Syntax:
    found = _Syntax()
    for node in tree.children:
        if getattr(node, "data", None) is None:  # a token
            continue
        found.statements.add(node.meta.start_pos)
        if node.data in ("model_decl", "run_decl"):
            for stmt in node.children:
                if getattr(stmt, "data", "param_list") != "param_list":
                    found.statements.add(stmt.meta.start_pos)
                    if stmt.data == "run_stmt":
                        found.run_words.add(stmt.meta.start_pos)
    for node in tree.iter_subtrees():
        if node.data in ("unit", "list_"):
            found.spaced_openers.add(node.meta.start_pos)
    return found


def _spaced(a: Token, b: Token, a_unary: bool, syntax: _Syntax) -> bool:
    """Whether one space separates the tokens ``a`` and ``b`` written on one line."""
    if a.type in OPENERS or b.type in CLOSERS or b.type in ("COMMA", "COLON"):
        return False
    if a_unary or a.value in TIGHT or b.value in TIGHT:
        return False
    if b.type in OPENERS:
        if a.start_pos in syntax.run_words or b.start_pos in syntax.spaced_openers:
            return True
        return a.type not in ("NAME", "RPAR", "RSQB")  # a call or an index
    return True


def _group_lines(tokens: list[Token], comments: list[_Comment]) -> list[_Line]:
    lines: dict[int, _Line] = {}
    for tok in tokens:
        lines.setdefault(tok.line, _Line(tok.line)).tokens.append(tok)
    for c in comments:
        lines.setdefault(c.line, _Line(c.line)).comment = c
    return [lines[n] for n in sorted(lines)]


class _Layout:
    """Walks the lines of the input, giving each its indentation and canonical spacing."""

    def __init__(self, syntax: _Syntax):
        self.syntax = syntax
        self.braces = 0  # '{' open
        self.brackets = 0  # '(' and '[' open
        self.previous: Token | None = None
        self.previous_unary = False
        # the lines of the current statement: (input column, output column) of their tokens
        self.statement: list[list[tuple[int, int]]] = []

    def indent(self, tokens: list[Token]) -> int:
        """The indentation of a line starting with ``tokens[0]`` (its input column decides the
        alignment of a continuation line)."""
        leading_braces = leading_brackets = 0
        for tok in tokens:
            if tok.type == "RBRACE":
                leading_braces += 1
            elif tok.type in CLOSERS:
                leading_brackets += 1
            else:
                break
        base = INDENT * max(0, self.braces - leading_braces)
        first = tokens[0]
        if first.type == "RBRACE" or first.start_pos in self.syntax.statements:
            self.statement = []
            return base
        column = first.column - 1
        for columns in reversed(self.statement):  # keep an alignment with an earlier token
            for before, after in columns:
                if before == column and after > base:
                    return after
        depth = self.brackets - leading_brackets
        return base + INDENT * (depth if leading_brackets else max(1, depth))

    def render(self, tokens: list[Token], indent: int) -> str:
        text, columns = "", []
        for tok in tokens:
            unary = tok.value in ("-", "+") and (
                self.previous is None
                or self.previous.type not in VALUE_ENDS
                or self.previous.start_pos in self.syntax.run_words
            )
            if text and _spaced(self.previous, tok, self.previous_unary, self.syntax):
                text += " "
            columns.append((tok.column - 1, indent + len(text)))
            text += tok.value
            self.previous, self.previous_unary = tok, unary
            if tok.type == "LBRACE":
                self.braces += 1
            elif tok.type == "RBRACE":
                self.braces -= 1
            elif tok.type in OPENERS:
                self.brackets += 1
            elif tok.type in CLOSERS:
                self.brackets -= 1
        self.statement.append(columns)
        return text


def _layout(lines: list[_Line], syntax: _Syntax) -> list[_Out]:
    layout = _Layout(syntax)
    out: list[_Out] = []
    pending: list[_Out] = []  # comment lines, indented like the code line after them
    previous_number = 0
    for line in lines:
        blank = bool(out or pending) and line.number - previous_number > 1
        if not pending and out and out[-1].code and layout.previous.type == "LBRACE":
            blank = False  # none after '{'
        previous_number = line.number
        if not line.tokens:
            pending.append(_Out(0, "", line.comment, blank))
            continue
        indent = layout.indent(line.tokens)
        continuing = not (line.tokens[0].type == "RBRACE"
                          or line.tokens[0].start_pos in syntax.statements)  # fmt: skip
        for p in pending:
            p.indent = indent if continuing else INDENT * layout.braces
        out += pending
        pending = []
        if line.tokens[0].type == "RBRACE":
            blank = False  # none before '}'
        code = layout.render(line.tokens, indent)
        out.append(_Out(indent, code, line.comment, blank))
    for p in pending:
        p.indent = INDENT * layout.braces
    return out + pending


def _align_comments(out: list[_Out]) -> None:
    """Trailing comments: two spaces after the code; a block of them (on consecutive lines) that
    was aligned stays aligned, at its column when there is room."""
    i = 0
    while i < len(out):
        j = i + 1
        if out[i].code and out[i].comment is not None:
            column = out[i].comment.column
            while (j < len(out) and out[j].code and out[j].comment is not None
                   and out[j].comment.column == column and not out[j].blank_before):  # fmt: skip
                j += 1
            width = max(o.indent + len(o.code) + 2 for o in out[i:j])
            if j - i > 1:
                width = max(width, column)
            for o in out[i:j]:
                o.code = o.code.ljust(width - o.indent)
        i = j


def _text(out: list[_Out]) -> str:
    rows = []
    for o in out:
        if o.blank_before:
            rows.append("")
        rows.append(" " * o.indent + o.code + (o.comment.text if o.comment else ""))
    return "\n".join(rows) + "\n" if rows else ""


def _meaning(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    tokens, _ = lex(text)
    return [(t.type, t.value) for t in tokens], [c.text for c in _comments(text, tokens)]


def format_source(text: str, path: str = "<string>") -> str:
    """``text`` in canonical layout; a file that does not parse raises its PhysmlError."""
    parse(text, path)  # a located syntax error, as `physml check` reports it
    tokens, tree = lex(text)
    syntax = _syntax(tree)
    out = _layout(_group_lines(tokens, _comments(text, tokens)), syntax)
    _align_comments(out)
    result = _text(out)
    if _meaning(result) != _meaning(text):
        raise FormatterBug(f"{path}: formatting would change its tokens or comments")
    return result


def _files(paths: list[str]) -> list[Path]:
    """The files named, and the .phys files below the folders named, in order."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        found += sorted(path.rglob("*.phys")) if path.is_dir() else [path]
    return found


def _read(path: Path) -> tuple[bytes, str]:
    """The bytes of a file and its text; a located P600 (cannot read) or P606 (not text)."""
    try:
        data = path.read_bytes()
        return data, decode_text(data)
    except (OSError, NotText):
        parse_file(path)  # raises the diagnostic `physml check` gives
        raise


def fmt_command(paths: list[str], check: bool = False) -> int:
    """Format ``paths`` (files or folders of .phys files) in place, or with ``check`` report
    (a diff) those that are not formatted; the exit code."""
    status = 0
    for path in _files(paths):
        try:
            data, text = _read(path)
            formatted = format_source(text, str(path))
        except PhysmlError as exc:
            print(exc.render(), file=sys.stderr)
            status = max(status, 1)
            continue
        except FormatterBug as exc:
            print(f"{exc}\n  = internal error (a bug in physml fmt, not in your file): the file "
                  "is left as it is; please report it with the file", file=sys.stderr)  # fmt: skip
            status = 3
            continue
        if formatted.encode() == data:
            continue
        if check:
            diff = difflib.unified_diff(
                data.decode().splitlines(keepends=True), formatted.splitlines(keepends=True),
                f"{path} (as written)", f"{path} (formatted)",
            )  # fmt: skip
            sys.stdout.writelines(diff)
            status = max(status, 1)
        else:
            path.write_bytes(formatted.encode())
            print(f"formatted {path}")
    return status
