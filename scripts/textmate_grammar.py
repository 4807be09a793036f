"""Regenerate the TextMate grammar of the VS Code extension (editors/vscode) from the grammar
and the catalogue, after a keyword, a run-statement word or a registry name changes
(tests/tools/test_highlighting.py fails until it is regenerated)."""

from pathlib import Path

from physml_lang.tools.vocabulary import textmate_json

TARGET = Path(__file__).resolve().parents[1] / "editors/vscode/syntaxes/physml.tmLanguage.json"

if __name__ == "__main__":
    TARGET.write_text(textmate_json())
    print(f"wrote {TARGET}")
