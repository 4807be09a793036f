"""Regenerate the parser's stored LALR tables after a change to grammar/physml.lark."""

from physml_lang.syntax.tables import write_tables

if __name__ == "__main__":
    print(f"wrote {write_tables()}")
