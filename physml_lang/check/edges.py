"""Edge lists of ``graph edges("file")``: a graph's bonds read from a data file, checked.

A text file (``.csv``, ``.txt``, ``.edges``) holds one bond per line, two site indices
separated by a comma or spaces; ``#`` starts a comment and a first line that is not numeric is
a header. A ``.npy`` file holds an integer array of shape (E, 2) (read without pickle). Sites
are numbered from 0; the graph has max index + 1 sites unless ``sites = N`` says more. Every
problem is a located P600/P601 naming the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physml_lang.diagnostics import Span, did_you_mean
from physml_lang.ir.walk import fail

TEXT_SUFFIXES = (".csv", ".txt", ".edges")
MAX_EDGES = 10_000_000


def resolve(path: str, span: Span | None) -> Path:
    """A path relative to the .phys file that names it (the working directory for strings)."""
    p = Path(path)
    src = span.source.name if span is not None and span.source is not None else "<string>"
    if not p.is_absolute() and not src.startswith("<"):
        p = Path(src).parent / p
    return p


def read_edges(path: Path, span: Span | None) -> list[tuple[int, int]]:
    """The (i, j) pairs of an edge file, i < j, in file order; located errors otherwise."""
    if not path.is_file():
        near = [q.name for q in path.parent.glob("*")] if path.parent.is_dir() else []
        fail("P600", f"edge list not found: {path}", span,
             did_you_mean(path.name, set(near)) or "paths are relative to the .phys file")  # fmt: skip
    suffix = path.suffix.lower()
    if suffix == ".npy":
        rows = _npy_rows(path, span)
    elif suffix in TEXT_SUFFIXES:
        rows = _text_rows(path, span)
    else:
        fail("P601", f"unsupported edge list type '{suffix}'", span,
             "use a .csv or .txt file of 'i, j' lines, or an (E, 2) integer .npy array")  # fmt: skip
    return _checked(rows, path, span)


def _text_rows(path: Path, span: Span | None) -> list[tuple[int, int, str]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail("P601", f"cannot read {path.name}: {exc}", span, "an edge list is a text file")
    rows: list[tuple[int, int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].replace(",", " ").split()
        if not body:
            continue
        where = f"{path.name} line {number}"
        if len(body) != 2:
            if not rows and not _numeric(body):
                continue  # a header
            fail("P601", f"{where}: expected two site indices, got {len(body)} field(s): "
                 f"{line.strip()!r}", span, "one bond per line: i, j")  # fmt: skip
        try:
            i, j = (int(x) for x in body)
        except ValueError:
            if not rows and not _numeric(body):
                continue
            fail("P601", f"{where}: site indices are integers, got {line.strip()!r}", span)
        rows.append((i, j, where))
        if len(rows) > MAX_EDGES:
            fail("P601", f"{path.name} has more than {MAX_EDGES} edges", span)
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
        fail("P601", f"cannot read {path.name}: {exc}", span,
             "the file is corrupt or not a numeric array (object arrays are never unpickled)")  # fmt: skip
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        fail("P601", f"{path.name}: an edge list is an integer array of shape (E, 2), got "
             f"{arr.dtype} {arr.shape}", span)  # fmt: skip
    return [(int(i), int(j), f"{path.name} row {k}") for k, (i, j) in enumerate(arr.tolist())]


def _checked(rows: list[tuple[int, int, str]], path: Path,
             span: Span | None) -> list[tuple[int, int]]:  # fmt: skip
    if not rows:
        fail("P601", f"{path.name} lists no edges", span, "one bond per line: i, j")
    seen: dict[tuple[int, int], str] = {}
    out = []
    for i, j, where in rows:
        if i < 0 or j < 0:
            fail("P601", f"{where}: site indices start at 0, got ({i}, {j})", span)
        if i == j:
            fail("P601", f"{where}: a bond joins two different sites, got ({i}, {j})", span)
        key = (min(i, j), max(i, j))
        if key in seen:
            fail("P601", f"{where}: the bond ({i}, {j}) is listed twice (first at "
                 f"{seen[key]})", span, "list each bond once")  # fmt: skip
        seen[key] = where
        out.append(key)
    return out
