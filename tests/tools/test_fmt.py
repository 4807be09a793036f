"""``physml fmt``: canonical layout, idempotent, comments kept, meaning (tokens, IR) unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from physml_lang import cli
from physml_lang.api import Program
from physml_lang.check.program import check_program
from physml_lang.diagnostics import PhysmlError
from physml_lang.ir.text import print_ir
from physml_lang.syntax.parser import lex, parse
from physml_lang.tools import formatter
from physml_lang.tools.formatter import FormatterBug, format_source

REPO = Path(__file__).resolve().parents[2]
FMT = REPO / "tests" / "golden" / "fmt"
SHIPPED = sorted([*(REPO / "examples").rglob("*.phys"), *(REPO / "stdlib").glob("*.phys")])
GOOD = sorted((REPO / "tests" / "golden" / "good").glob("*.phys"))
ALL = SHIPPED + GOOD + [FMT / "messy.phys"]
CHECKED = sorted((REPO / "examples").glob("*.phys")) + GOOD  # programs that check alone


def _id(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _ir(text: str, path: Path) -> str:
    """The printed IR of ``text`` read as if it were the file ``path`` (its data files found)."""
    return print_ir(Program(check_program(parse(text, str(path)), path, str(path))).ir())


def _messed(text: str, seed: int) -> str:
    """``text``'s tokens with random whitespace (spaces, tabs, line breaks) between them."""
    rng = random.Random(seed)
    tokens, _ = lex(text)
    gaps = [" ", "   ", "\n", "\n\t  ", " \n\n\n "]
    return "".join(t.value + rng.choice(gaps) for t in tokens)


def _comments(text: str) -> list[str]:
    return [c.text for c in formatter._comments(text, lex(text)[0])]


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_idempotent_and_keeps_tokens_and_comments(path):
    text = path.read_text()
    once = format_source(text, str(path))  # the safety net inside never fires
    assert format_source(once, str(path)) == once
    assert formatter._meaning(once) == formatter._meaning(text)
    assert _comments(once) == [c.rstrip() for c in _comments(text)]
    assert once.endswith("\n") and "\n\n\n" not in once
    assert all(line == line.rstrip() for line in once.splitlines())


def test_shipped_files_are_formatted(capsys):
    assert cli.main(["fmt", "--check", str(REPO / "examples"), str(REPO / "stdlib")]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("path", CHECKED, ids=_id)
def test_formatting_keeps_the_ir(path):
    text = path.read_text()
    messed = _messed(text, seed=len(text))
    formatted = format_source(messed, str(path))
    assert format_source(formatted, str(path)) == formatted
    assert _ir(formatted, path) == _ir(text, path)


def test_messy_golden():
    messy = (FMT / "messy.phys").read_text()
    formatted = (FMT / "messy.formatted.phys").read_text()
    assert format_source(messy) == formatted
    assert _comments(formatted) == _comments(messy) and len(_comments(messy)) == 7


@pytest.mark.parametrize(("source", "expected"), [
    ("model M{field s:spin on sites}", "model M { field s: spin on sites }\n"),
    ("\n\n# c\n\n\n\n# d   \n\n", "# c\n\n# d\n"),
    ("", ""),
    ("model M {\r\n\tlet x = a +\r\n\t\t# why\r\n\t\tb\r\n}\r\n",
     "model M {\n    let x = a +\n        # why\n        b\n}\n"),
    ("run r {\n  plot (a+b)/2, -x, [1,-2]\n}", "run r {\n    plot (a + b) / 2, -x, [1, -2]\n}\n"),
    ("model M {\n\n  let x = 1\n\n}\n", "model M {\n    let x = 1\n}\n"),
    ('data x = load("a#b.csv")   # c "q" #2', 'data x = load("a#b.csv")  # c "q" #2\n'),
])  # fmt: skip
def test_small_layouts(source, expected):
    assert format_source(source) == expected


def test_syntax_error_is_located():
    with pytest.raises(PhysmlError) as info:
        format_source("model M {\n    let x = (1 +\n}\n", "m.phys")
    assert info.value.diagnostics[0].code == "P100"
    assert info.value.render().startswith("m.phys:3:1: error[P100]")


def test_fmt_rewrites_in_place(tmp_path, capsys):
    messy = (FMT / "messy.phys").read_text()
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "sub" / "a.phys", tmp_path / "b.phys"
    a.write_text(messy)
    b.write_text((FMT / "messy.formatted.phys").read_text())
    (tmp_path / "notes.txt").write_text("model {")
    assert cli.main(["fmt", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"formatted {a}\n"  # b is already formatted
    assert a.read_text() == b.read_text()
    assert cli.main(["fmt", str(a), str(b)]) == 0
    assert capsys.readouterr().out == ""


def test_fmt_check_shows_a_diff_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "m.phys"
    path.write_text("model M {\n  let x=1\n}\n")
    assert cli.main(["fmt", "--check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "-  let x=1\n+    let x = 1\n" in out and f"+++ {path} (formatted)" in out
    assert path.read_text() == "model M {\n  let x=1\n}\n"
    path.write_text("model M {\n    let x = 1\n}\n")
    assert cli.main(["fmt", "--check", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_fmt_refuses_a_bad_file_and_leaves_it(tmp_path, capsys):
    bad, good = tmp_path / "bad.phys", tmp_path / "good.phys"
    bad.write_text("model M {\n  let x = = 1\n}\n")
    good.write_text("model M {\n  let x=1\n}\n")
    assert cli.main(["fmt", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:2:11: error[P100]" in captured.err and "Traceback" not in captured.err
    assert bad.read_text() == "model M {\n  let x = = 1\n}\n"
    assert good.read_text() == "model M {\n    let x = 1\n}\n"  # the others still formatted


def test_fmt_missing_path_and_binary_file(tmp_path, capsys):
    assert cli.main(["fmt", str(tmp_path / "nope.phys")]) == 1
    assert "error[P600]: file not found" in capsys.readouterr().err
    (tmp_path / "b.phys").write_bytes(b"model \x00")
    assert cli.main(["fmt", "--check", str(tmp_path / "b.phys")]) == 1
    assert "error[P606]" in capsys.readouterr().err


def test_safety_net_refuses_to_write(tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.phys"
    path.write_text("model M {\n  let x=1 # why\n}\n")
    monkeypatch.setattr(formatter, "_text", lambda out: "model M {\n    let x = 2\n}\n")
    with pytest.raises(FormatterBug):
        format_source(path.read_text())
    assert cli.main(["fmt", str(path)]) == 3
    assert "internal error" in capsys.readouterr().err
    assert path.read_text() == "model M {\n  let x=1 # why\n}\n"
