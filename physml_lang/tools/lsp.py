"""``physml lsp``: a minimal language server over stdio (pygls, the 'editor' extra).

On opening, changing or saving a document it publishes the diagnostics ``physml check``
reports for its text (all errors, located; warnings), completes keywords, run statements,
registry names and, inside an entry's call, its options; hover shows an entry's or option's
docs as ``physml list`` prints them. Imported only by ``physml lsp``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from physml_lang.diagnostics import Diagnostic

from . import language

try:
    from lsprotocol import types
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path
    from pygls.workspace import TextDocument
except ImportError:  # the command's message, not a traceback
    raise SystemExit("physml lsp needs pygls, which is not installed: "
                     "pip install 'physml[editor]'") from None  # fmt: skip

log = logging.getLogger(__name__)

COMPLETION_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "statement": types.CompletionItemKind.Keyword,
    "entry": types.CompletionItemKind.Function,
    "option": types.CompletionItemKind.Property,
    "symmetry": types.CompletionItemKind.EnumMember,
    "function": types.CompletionItemKind.Function,
}
SEVERITIES = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def _document_path(document: TextDocument) -> Path | None:
    """The file a document is (its folder resolves imports and data), None if unsaved."""
    if not document.uri.startswith("file:"):
        return None
    path = to_fs_path(document.uri)
    return Path(path) if path else None


def _located_here(d: Diagnostic, path: Path | None) -> bool:
    return d.span is not None and d.span.source.name == (str(path) if path else "<string>")


def _range(document: TextDocument, d: Diagnostic, path: Path | None) -> types.Range:
    """The LSP range (0-based, client units) of a diagnostic located in this document; the
    first character for one without a place or located in another file (an import)."""
    span = d.span
    if span is None or not _located_here(d, path):
        return types.Range(types.Position(0, 0), types.Position(0, 0))
    start = language.offset_of(document.source, span.line - 1, span.column - 1)
    end = language.offset_of(document.source, span.end_line - 1, span.end_column - 1)
    return types.Range(document.client_position_at_offset(start),
                       document.client_position_at_offset(max(start, end)))  # fmt: skip


def lsp_diagnostics(document: TextDocument) -> list[types.Diagnostic]:
    """The document's diagnostics as ``physml check`` reports them, in LSP form."""
    path = _document_path(document)
    out = []
    for d in language.check_text(document.source, path):
        message = d.message
        if d.span is not None and not _located_here(d, path):  # in an imported file
            message = f"{d.span.source.name}:{d.span.line}:{d.span.column}: {message}"
        extra = [f"note: {n}" for n in d.notes] + ([f"hint: {d.hint}"] if d.hint else [])
        out.append(types.Diagnostic(
            range=_range(document, d, path), message="\n".join([message, *extra]),
            severity=SEVERITIES.get(d.severity, types.DiagnosticSeverity.Error),
            code=d.code, source="physml"))  # fmt: skip
    return out


def make_server() -> LanguageServer:
    """The server with its features registered."""
    server = LanguageServer("physml", "0.1.0")

    def publish(uri: str) -> None:
        document = server.workspace.get_text_document(uri)
        try:
            found = lsp_diagnostics(document)
        except Exception as exc:  # noqa: BLE001 - a bug in physml must not stop the server
            log.exception("checking %s failed", uri)
            found = [types.Diagnostic(
                range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                message=f"internal error of physml (not in your file): {type(exc).__name__}: "
                f"{exc}", severity=types.DiagnosticSeverity.Error, source="physml")]  # fmt: skip
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version, diagnostics=found))  # fmt: skip

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=params.text_document.uri, diagnostics=[]))  # fmt: skip

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["(", ","]))  # fmt: skip
    def completion(params: types.CompletionParams) -> types.CompletionList:
        document = server.workspace.get_text_document(params.text_document.uri)
        offset = document.offset_at_position(params.position)
        items = [types.CompletionItem(
            label=c.label, kind=COMPLETION_KINDS[c.kind], detail=c.detail or None,
            documentation=c.doc or None, sort_text=c.sort or None)
            for c in language.completions(document.source, offset)]  # fmt: skip
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(params: types.HoverParams) -> types.Hover | None:
        document = server.workspace.get_text_document(params.text_document.uri)
        offset = document.offset_at_position(params.position)
        text = language.hover_text(document.source, offset)
        if text is None:
            return None
        _, start, end = language.word_at(document.source, offset)
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                         value=f"```text\n{text}\n```"),
            range=types.Range(document.client_position_at_offset(start),
                              document.client_position_at_offset(end)))  # fmt: skip

    return server


def serve() -> None:
    """Run the language server on stdin/stdout until the client exits."""
    make_server().start_io()


__all__ = ["lsp_diagnostics", "make_server", "serve"]
