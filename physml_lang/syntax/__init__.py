"""The syntax phase: text -> syntax tree with spans (lark LALR over ``grammar/physml.lark``).

The only phase that touches lark; everything after it reads :mod:`physml_lang.syntax.ast`
(through the checker) and then the IR.
"""

from .parser import parse, parse_file

__all__ = ["parse", "parse_file"]
