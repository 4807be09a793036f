"""Tools around the language that sit on top of the API: the formatter (``physml fmt``), the
Pygments lexer and the language server (``physml lsp``), the Jupyter magics, and the
generated pages of the documentation site (``reference_docs``)."""
