"""``physml lsp`` over stdio, driven by pygls's client: the diagnostics ``check`` reports,
completion of registry names and options, and their docs on hover."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

from physml_lang.tools import language  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 20  # seconds for one answer of the server (it starts in about a second)

GOOD = """\
model Ising(L: int = 4, J: real = 1.0) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
}

run scan {
    model Ising(L = 4)
    sampler metropolis(chains = 4, sweeps = 10, burn_in = 5)
    let T = 2.0
    measure m = abs(magnetization) / sites, binder
}
"""
# two independent mistakes: an option of the sampler, an observable
BAD = GOOD.replace("sweeps = 10", "sweps = 10").replace("binder", "bindr")


@contextlib.asynccontextmanager
async def _session(root: Path):
    """A started and initialised server; yields (client, published diagnostics by uri)."""
    client = LanguageClient("physml-test", "0")
    published: dict[str, asyncio.Queue] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published.setdefault(params.uri, asyncio.Queue()).put_nowait(params.diagnostics)

    await client.start_io(sys.executable, "-m", "physml_lang.cli", "lsp", cwd=str(REPO))
    try:
        await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(root)))),
            TIMEOUT)  # fmt: skip
        client.initialized(types.InitializedParams())
        yield client, published
        await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
        client.exit(None)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), TIMEOUT)


def _open(client, path: Path, text: str) -> str:
    uri = from_fs_path(str(path))
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="physml", version=1, text=text)))  # fmt: skip
    return uri


async def _diagnostics(published: dict[str, asyncio.Queue], uri: str) -> list:
    while uri not in published:
        await asyncio.sleep(0.05)
    return list(await asyncio.wait_for(published[uri].get(), TIMEOUT))


def _position(text: str, needle: str, after: int = 0) -> types.Position:
    """The position ``after`` characters into the first ``needle``."""
    offset = text.index(needle) + after
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def test_the_server_publishes_every_error_check_reports_with_its_range_and_code(tmp_path):
    async def scenario():
        async with _session(tmp_path) as (client, published):
            bad = _open(client, tmp_path / "bad.phys", BAD)
            good = _open(client, tmp_path / "good.phys", GOOD)
            return await _diagnostics(published, bad), await _diagnostics(published, good)

    bad, good = asyncio.run(scenario())
    assert good == []
    assert [d.code for d in bad] == ["P401", "P208"]
    # the places check reports (1-based, end exclusive) as LSP ranges (0-based)
    spans = [d.span for d in language.check_text(BAD, tmp_path / "bad.phys")]
    assert [(d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character)
            for d in bad] == [(s.line - 1, s.column - 1, s.end_line - 1, s.end_column - 1)
                              for s in spans]  # fmt: skip
    option, observable = bad
    assert option.range.start == _position(BAD, "sweps")
    assert observable.range == types.Range(_position(BAD, "bindr"), _position(BAD, "bindr", 5))
    assert "sweps" in option.message and "hint: did you mean 'sweeps'" in option.message
    assert option.severity == types.DiagnosticSeverity.Error and option.source == "physml"


def test_a_change_republishes(tmp_path):
    async def scenario():
        async with _session(tmp_path) as (client, published):
            uri = _open(client, tmp_path / "m.phys", BAD)
            first = await _diagnostics(published, uri)
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                [types.TextDocumentContentChangeWholeDocument(text=GOOD)]))  # fmt: skip
            return first, await _diagnostics(published, uri)

    first, second = asyncio.run(scenario())
    assert len(first) == 2 and second == []


def test_completion_and_hover(tmp_path):
    text = GOOD.replace("sampler metropolis(chains = 4, ", "sampler metropolis(chains = 4, \n    ")

    async def scenario():
        async with _session(tmp_path) as (client, published):
            uri = _open(client, tmp_path / "c.phys", text)
            doc = types.TextDocumentIdentifier(uri=uri)
            after_sampler = await client.text_document_completion_async(
                types.CompletionParams(doc, _position(text, "sampler ", 8)))
            options = await client.text_document_completion_async(
                types.CompletionParams(doc, _position(text, "chains", 3)))
            hover = await client.text_document_hover_async(
                types.HoverParams(doc, _position(text, "metropolis", 4)))
            option_hover = await client.text_document_hover_async(
                types.HoverParams(doc, _position(text, "burn_in", 2)))
            return after_sampler, options, hover, option_hover

    after_sampler, options, hover, option_hover = asyncio.run(scenario())
    items = {i.label: i for i in after_sampler.items}
    assert {"metropolis", "wolff", "square", "binder", "model", "measure"} <= set(items)
    samplers = sorted(items.values(), key=lambda i: i.sort_text)[:5]
    assert all(i.detail.startswith("sampler") for i in samplers)  # the kind asked for first
    chains = {i.label: i for i in options.items}["chains"]
    # metropolis samples lattice, gauge and quantum models: each family's default
    assert "int = 64 [lattice]" in chains.detail and "int = 8 [gauge]" in chains.detail
    assert chains.kind == types.CompletionItemKind.Property
    assert "independent chains" in chains.documentation
    assert "single-site Metropolis" in hover.contents.value
    assert "burn_in: int = 500" in option_hover.contents.value


# ---------------------------------------------------------------- the logic, without a server
def test_check_text_is_what_check_reports_and_relative_files_resolve(tmp_path):
    (tmp_path / "models.phys").write_text(GOOD.split("run scan")[0])
    main = 'import "models.phys"\n' + "run scan" + GOOD.split("run scan")[1]
    assert language.check_text(main, tmp_path / "main.phys") == []
    [found] = language.check_text(main.replace("sites", "site"), tmp_path / "main.phys")
    assert (found.code, found.span.line, found.span.column) == ("P200", 6, 38)
    [syntax] = language.check_text("model {", None)
    assert (syntax.code, syntax.span.line, syntax.span.column) == ("P100", 1, 7)


def test_an_error_in_an_imported_file_is_shown_at_the_top_with_its_place(tmp_path):
    from pygls.workspace import TextDocument

    from physml_lang.tools.lsp import lsp_diagnostics

    (tmp_path / "models.phys").write_text(GOOD.split("run scan")[0].replace("bonds", "bond"))
    main = 'import "models.phys"\n' + "run scan" + GOOD.split("run scan")[1]
    document = TextDocument(from_fs_path(str(tmp_path / "main.phys")), main)
    [found] = lsp_diagnostics(document)
    assert found.code == "P200" and found.range.start == types.Position(0, 0)
    assert found.message.startswith(f"{tmp_path / 'models.phys'}:4:51: unknown name 'bond'")


def test_completion_contexts():
    text = "run r {\n    sampler wolff(ch"
    context = language.context_at(text, len(text))
    assert context.call == "wolff" and context.option_name
    assert {c.label for c in language.completions(text, len(text))} >= {"chains", "sweeps"}
    text = "model M {\n    field s: "
    first = min(language.completions(text, len(text)), key=lambda c: c.sort)
    assert first.detail == "field domain"
    text = "learner q = "
    first = min(language.completions(text, len(text)), key=lambda c: c.sort)
    assert first.detail == "learner"
    text = 'sampler metropolis(start = "(", chains = 2) # (\nmeasure '
    assert language.context_at(text, len(text)).call is None


def test_without_pygls_the_command_names_the_extra():
    import subprocess

    hide = "import sys; sys.modules['pygls'] = None; from physml_lang.cli import main; "
    done = subprocess.run([sys.executable, "-c", hide + "sys.exit(main(['lsp']))"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pip install 'physml[editor]'" in done.stderr
