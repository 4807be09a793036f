"""The Pygments lexer and the TextMate grammar highlight every word the grammar and the catalogue
accept, lex every example and stdlib file without an error token, and the committed TextMate
grammar is what ``scripts/textmate_grammar.py`` generates now."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from physml_lang.tools import vocabulary

pygments = pytest.importorskip("pygments")
from pygments.lexers import get_lexer_by_name  # noqa: E402
from pygments.token import Error, Keyword, Name  # noqa: E402

from physml_lang.tools.lexer import PhysmlLexer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEXTMATE = REPO / "editors" / "vscode" / "syntaxes" / "physml.tmLanguage.json"
PROGRAMS = sorted([*REPO.glob("examples/*.phys"), *REPO.glob("stdlib/*.phys"),
                   *REPO.glob("tests/golden/good/*.phys")])  # fmt: skip


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in PhysmlLexer().get_tokens(text) if v.strip()]


def _only_token(text: str):
    tokens = _tokens(text)
    assert len(tokens) == 1, tokens
    return tokens[0][0]


# ---------------------------------------------------------------- the word lists
def test_the_words_come_from_the_grammar_and_the_catalogue():
    keywords = vocabulary.grammar_keywords()
    assert {"model", "run", "energy", "via", "respecting", "learnable", "for"} <= set(keywords)
    assert "NAME" not in keywords and "(" not in keywords
    names = vocabulary.registry_names()
    assert names["metropolis"] == ("samplers",)
    assert "glauber" in names and set(names["glauber"]) == {"samplers", "updates"}
    assert {"square", "rbm", "adam", "leapfrog", "binder", "digits", "power_law", "sample"} <= set(
        names
    )
    assert {"sampler", "scan", "measure", "plot", "train"} <= set(vocabulary.statement_words())


# ---------------------------------------------------------------- Pygments
def test_pygments_finds_the_lexer_by_name_and_file_name():
    assert isinstance(get_lexer_by_name("physml"), PhysmlLexer)
    assert isinstance(get_lexer_by_name("phys"), PhysmlLexer)
    from pygments.lexers import get_lexer_for_filename

    assert isinstance(get_lexer_for_filename("ising.phys"), PhysmlLexer)


@pytest.mark.parametrize("word", vocabulary.grammar_keywords())
def test_every_grammar_keyword_is_a_keyword(word):
    assert _only_token(word) in Keyword


def test_every_registry_name_is_a_builtin_or_keyword():
    wrong = {}
    for name in vocabulary.registry_names():
        # mid-line: a name that is also a run-statement word is that word at a line's start
        token = _tokens(f"x {vocabulary.example_word(name)}")[1][0]
        expected = Keyword if name in vocabulary.grammar_keywords() else Name.Builtin
        if token not in expected:
            wrong[name] = token
    assert not wrong


def test_run_statement_words_are_keywords_at_the_start_of_a_line():
    for word in vocabulary.statement_words():
        tokens = _tokens(f"run r {{\n    {word} x\n}}")
        assert tokens[3] == (Keyword.Pseudo, word), tokens
    # elsewhere a statement word is a name (or the catalogue name it also is)
    assert _tokens("run scan {")[1] == (Name, "scan")


def test_tokens_of_a_statement():
    text = 'sampler metropolis(chains = 64, start = ordered) # go\nscan T in linspace(1.5, 3, 9)'
    kinds = {v: t for t, v in _tokens(text)}
    assert kinds["sampler"] is Keyword.Pseudo and kinds["metropolis"] is Name.Builtin
    assert kinds["chains"] is Name and kinds["64"] in pygments.token.Number
    assert kinds["# go"] in pygments.token.Comment and kinds["linspace"] is Name.Function
    assert kinds["in"] in Keyword and kinds["="] in pygments.token.Operator


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_program_lexes_without_errors_and_round_trips(path):
    text = path.read_text()
    tokens = list(PhysmlLexer().get_tokens_unprocessed(text))
    assert [v for _, t, v in tokens if t is Error] == []
    assert "".join(v for _, _, v in tokens) == text


# ---------------------------------------------------------------- TextMate
def test_the_committed_textmate_grammar_is_current():
    assert TEXTMATE.read_text() == vocabulary.textmate_json(), (
        "the TextMate grammar is stale: run python scripts/textmate_grammar.py")


def _scan(line: str, patterns: list[dict]) -> list[tuple[str, str]]:
    """(text, scope) of one line as a TextMate engine scans it: at each position the rule whose
    match starts first wins, the earlier rule on a tie; a rule's capture 1 gives its scope."""
    compiled = [(re.compile(p["match"]), p) for p in patterns]
    out, pos = [], 0
    while pos < len(line):
        best = None
        for regex, rule in compiled:
            m = regex.search(line, pos)
            if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                best = (m, rule)
        if best is None:
            break
        m, rule = best
        if "captures" in rule:
            out.append((m.group(1), rule["captures"]["1"]["name"]))
        else:
            out.append((m.group(0), rule["name"]))
        pos = m.end()
    return out


@pytest.fixture(scope="module")
def textmate_patterns() -> list[dict]:
    return json.loads(TEXTMATE.read_text())["patterns"]


def test_textmate_patterns_keep_to_the_common_subset(textmate_patterns):
    for rule in textmate_patterns:
        assert "(?<" not in rule["match"] and "(?P" not in rule["match"], rule


def test_every_keyword_and_registry_name_has_its_textmate_scope(textmate_patterns):
    keywords = set(vocabulary.grammar_keywords())
    wrong = {}
    for word in keywords:
        if _scan(f"x {word} y", textmate_patterns)[1] != (word, vocabulary.SCOPES["keywords"]):
            wrong[word] = _scan(f"x {word} y", textmate_patterns)
    for name in vocabulary.registry_names():
        word = vocabulary.example_word(name)
        scope = vocabulary.SCOPES["keywords" if name in keywords else "registry"]
        if _scan(f"x {word} y", textmate_patterns)[1] != (word, scope):
            wrong[name] = _scan(f"x {word} y", textmate_patterns)
    for word in vocabulary.statement_words():
        if _scan(f"    {word} x", textmate_patterns)[0] != (word, vocabulary.SCOPES["statements"]):
            wrong[word] = _scan(f"    {word} x", textmate_patterns)
    assert not wrong


def test_textmate_scans_every_program_like_pygments(textmate_patterns):
    """Each line's words get the TextMate scope of the class Pygments gives them."""
    scope_of = {Keyword: "keyword.control.physml", Keyword.Pseudo: "keyword.other.statement.physml",
                Name.Builtin: "support.function.catalogue.physml",
                Name.Builtin.Pseudo: "support.constant.symmetry.physml",
                Name.Function: "support.function.builtin.physml",
                Name.Constant: "constant.language.physml", Name: "variable.other.physml"}  # fmt: skip
    for path in PROGRAMS:
        for line in path.read_text().splitlines():
            scanned = [(t, s) for t, s in _scan(line, textmate_patterns) if s in scope_of.values()]
            lexed = [(v, scope_of[t]) for t, v in PhysmlLexer().get_tokens(line) if t in scope_of]
            assert scanned == lexed, (path.name, line)
