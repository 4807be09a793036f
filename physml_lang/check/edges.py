"""Edge lists of ``graph edges("file")``: a graph's bonds read from a data file, checked.

A text file (``.csv``, ``.txt``, ``.edges``) holds one bond per line, two site indices
separated by a comma or spaces; ``#`` starts a comment and a first line that is not numeric is
a header. A ``.npy`` file holds an integer array of shape (E, 2) (read without pickle). Sites
are numbered from 0; the graph has max index + 1 sites unless ``sites = N`` says more. Every
problem is a located P600/P601 (P605 outside the project tree, P606 not text) naming the line,
never quoting it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physml_lang.diagnostics import Span, clip
from physml_lang.ir.walk import fail

from .paths import array_file_error, read_text_file, resolve_user_path

TEXT_SUFFIXES = (".csv", ".txt", ".edges")
MAX_EDGES = 10_000_000
EDGE_HINT = "use a .csv or .txt file of 'i, j' lines, or an (E, 2) integer .npy array"


def resolve(path: str, span: Span | None) -> Path:
    """The edge list a ``graph edges("...")`` names: relative to the .phys file that names it,
    inside the project tree (``check/paths.py``); located P600/P601/P605 otherwise."""
    return resolve_user_path(path, span, "edge list", {*TEXT_SUFFIXES, ".npy"},
                             suffix_hint=EDGE_HINT, type_code="P607")  # fmt: skip


def read_edges(path: Path, span: Span | None) -> list[tuple[int, int]]:
    """The (i, j) pairs of an edge file (resolved by :func:`resolve`), i < j, in file order;
    located errors otherwise. Messages name lines, never quote the file's contents."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        rows = _npy_rows(path, span)
    elif suffix in TEXT_SUFFIXES:
        rows = _text_rows(path, span)
    else:
        fail("P607", f"unsupported edge list type '{clip(suffix, 20)}'", span, EDGE_HINT)
    return _checked(rows, path, span)


def _text_rows(path: Path, span: Span | None) -> list[tuple[int, int, str]]:
    text = read_text_file(path, span, "edge list", "P607")
    rows: list[tuple[int, int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].replace(",", " ").split()
        if not body:
            continue
        where = f"{path.name} line {number}"
        if len(body) != 2:
            if not rows and not _numeric(body):
                continue  # a header
            fail("P607", f"{where}: expected two site indices, got {len(body)} field(s)", span,
                 "one bond per line: i, j")  # fmt: skip
        try:
            i, j = (int(x) for x in body)
        except ValueError:
            if not rows and not _numeric(body):
                continue
            fail("P607", f"{where}: site indices are integers", span, "one bond per line: i, j")
        rows.append((i, j, where))
        if len(rows) > MAX_EDGES:
            fail("P607", f"{path.name} has more than {MAX_EDGES} edges", span)
    return rows


def _numeric(fields: list[str]) -> bool:
    try:
        [float(x) for x in fields]
    except ValueError:
        return False
    return True


def _npy_rows(path: Path, span: Span | None) -> list[tuple[int, int, str]]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        array_file_error(path, exc, span, "P607")
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        fail("P607", f"{path.name}: an edge list is an integer array of shape (E, 2), got "
             f"{arr.dtype} {arr.shape}", span)  # fmt: skip
    return [(int(i), int(j), f"{path.name} row {k}") for k, (i, j) in enumerate(arr.tolist())]


def _checked(rows: list[tuple[int, int, str]], path: Path,
             span: Span | None) -> list[tuple[int, int]]:  # fmt: skip
    if not rows:
        fail("P607", f"{path.name} lists no edges", span, "one bond per line: i, j")
    seen: dict[tuple[int, int], str] = {}
    out = []
    for i, j, where in rows:
        if i < 0 or j < 0:
            fail("P607", f"{where}: site indices start at 0, got ({i}, {j})", span)
        if i == j:
            fail("P607", f"{where}: a bond joins two different sites, got ({i}, {j})", span)
        key = (min(i, j), max(i, j))
        if key in seen:
            fail("P607", f"{where}: the bond ({i}, {j}) is listed twice (first at "
                 f"{seen[key]})", span, "list each bond once")  # fmt: skip
        seen[key] = where
        out.append(key)
    return out
