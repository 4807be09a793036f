"""A Pygments lexer for ``.phys`` files (docs, notebooks). Its word lists are read from the
grammar and the catalogue (:mod:`physml_lang.tools.vocabulary`) when it is imported.

Pygments finds it by name through the ``pygments.lexers`` entry point:
``pygments.lexers.get_lexer_by_name("physml")``; in Markdown, a fenced block ```` ```physml ````.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from .vocabulary import IDENTIFIER, NUMBER, OPERATOR, PUNCTUATION, highlighted_words, words_pattern

_WORDS = highlighted_words()


class PhysmlLexer(RegexLexer):
    """physml models, learners and run blocks."""

    name = "physml"
    aliases = ["physml", "phys"]
    filenames = ["*.phys"]
    mimetypes = ["text/x-physml"]

    tokens = {
        "root": [
            # a run statement's word starts its line (re.MULTILINE: ^ at each line); before
            # the whitespace rules, which would take the indentation
            (r"^([ \t]*)(" + words_pattern(_WORDS["statements"]) + ")",
             bygroups(Whitespace, Keyword.Pseudo)),
            (r"\n", Whitespace),
            (r"[ \t\f\r]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (NUMBER, Number),
            (words_pattern(_WORDS["keywords"]), Keyword),
            (words_pattern(_WORDS["registry"]), Name.Builtin),
            (words_pattern(_WORDS["symmetries"]), Name.Builtin.Pseudo),
            (words_pattern(_WORDS["functions"]), Name.Function),
            (words_pattern(_WORDS["constants"]), Name.Constant),
            (IDENTIFIER, Name),
            (OPERATOR, Operator),
            (PUNCTUATION, Punctuation),
        ],
    }


__all__ = ["PhysmlLexer"]
