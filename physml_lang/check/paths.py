"""File names written in a .phys file, resolved by one set of rules.

Every file a program names (``import "models.phys"``, ``graph edges("g.csv")``, data
``load("x.npz")``, ``param W = load("w.safetensors")``, ``params "fit/params.safetensors"``,
``trajectories load("orbits.npz")``) goes through :func:`resolve_user_path`:

* a relative name starts at the folder of the .phys file that names it (an imported file's
  names at the imported file's folder); in source text given without a path, at the working
  directory;
* the file, after following symbolic links, must lie inside the *project tree*: the folder of
  the top-level .phys file being checked or run (for text without a path, the working
  directory), which stays the same through nested imports. An absolute path, a ``..`` or a
  link that leads out of it is a located P605 unless ``--allow-outside``
  (``allow_outside=True`` in Python) was given;
* a name the file system refuses (a NUL byte, too long, a loop of links) is a located P600;
* messages quote the name as written (clipped), never a file's contents: text data files are
  read by :func:`read_text_file` (UTF-8 only; binary or non-UTF-8 bytes are a P606 naming the
  line), numeric arrays by ``np.load(allow_pickle=False)`` with :func:`array_file_error`.

Standard-library imports by name never touch the file system.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import NoReturn

from physml_lang.diagnostics import Diagnostic, PhysmlError, Source, Span, clip, did_you_mean
from physml_lang.syntax.parser import NotText, decode_text

ALLOW_HINT = "run with --allow-outside (Python: allow_outside=True) to read it"


def _fail(code: str, message: str, span: Span | None, hint: str | None = None) -> NoReturn:
    raise PhysmlError(Diagnostic(code, message, span, hint))


def _is_file_source(source: Source | None) -> bool:
    return source is not None and not source.name.startswith("<")


def naming_folder(source: Source | None) -> Path:
    """Where relative names of a text start: its file's folder; the working directory for
    source text without a path (``<string>``)."""
    return Path(source.name).parent if _is_file_source(source) else Path()


def project_root(source: Source | None) -> Path:
    """The project tree of a text: the root it was parsed with (the top-level file's folder,
    kept through imports), else its own file's folder, else the working directory."""
    if source is not None and source.root is not None:
        return Path(source.root)
    return naming_folder(source)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_user_path(
    name: str,
    span: Span | None,
    kind: str,
    suffixes: Collection[str] | None = None,
    *,
    base: Path | None = None,
    allow_outside: bool | None = None,
    missing_hint: str | None = None,
    suffix_hint: str | None = None,
    type_code: str = "P601",
) -> Path:
    """The path of an existing file named ``name`` in a program, checked by the rules above.

    ``span``: the string that names it (its source gives the folder, the project tree and
    whether files outside it are allowed; ``base`` and ``allow_outside`` override those);
    ``kind``: what the file is, in messages ("edge list", "data file", ...); ``suffixes``: the
    file types accepted (lower case, with the dot), checked first. Returns the path as joined
    (relative names stay relative, so messages show them as written); raises a located
    PhysmlError: P603 (an import of a non-.phys file) or ``type_code`` (another wrong file
    type: the kind's bad-file code), P605 (outside the project tree), P600 (a refused name, or
    no such file)."""
    shown = clip(name, 80)
    source = span.source if span is not None else None
    if not name or "\x00" in name:
        shown = clip(name.replace("\x00", "\\x00"), 80)
        _fail("P600", f"'{shown}' is not a file name" if name else f"the {kind} name is empty",
              span, "a file name relative to the .phys file")  # fmt: skip
    suffix = Path(name).suffix.lower()
    if suffixes is not None and suffix not in suffixes:
        wanted = " or ".join(sorted(suffixes))
        if kind == "imported file":  # never read (or echo) a file that is not a model file
            _fail("P603", f"an import names a .phys file, not '{shown}'", span,
                  "import a stdlib model by name (import Ising) or a file: import \"models.phys\"")  # fmt: skip
        _fail(type_code, f"unsupported {kind} type '{clip(suffix, 20) or shown}'", span,
              suffix_hint or f"use a {wanted} file")  # fmt: skip
    folder = base if base is not None else naming_folder(source)
    root = project_root(source)
    outside_ok = source.allow_outside if allow_outside is None and source is not None \
        else bool(allow_outside)  # fmt: skip
    target = Path(name) if Path(name).is_absolute() else folder / name
    try:
        real = target.resolve(strict=False)
        real_root = root.resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # a loop of symbolic links, ...
        why = "a loop of symbolic links" if isinstance(exc, RuntimeError) else \
            getattr(exc, "strerror", None) or type(exc).__name__  # fmt: skip
        _fail("P600", f"cannot use the {kind} '{shown}': {why}", span)
    if not outside_ok and not _inside(real, real_root):
        lexical = Path(os.path.abspath(target))
        if Path(name).is_absolute():
            how = "is an absolute path outside the project tree"
        elif not _inside(lexical, Path(os.path.abspath(root))):
            how = "leads out of the project tree ('..')"
        else:
            how = "is a symbolic link to a file outside the project tree"
        _fail("P605", f"{kind} '{shown}' {how}", span,
              "files are read from the folder of the top-level .phys file and below; "
              + ALLOW_HINT)  # fmt: skip
    try:
        found = target.is_file()
    except (OSError, ValueError) as exc:  # a name the file system refuses (too long, ...)
        why = getattr(exc, "strerror", None) or type(exc).__name__
        _fail("P600", f"cannot use the {kind} '{shown}': {why}", span)
    if not found:
        try:
            if target.is_dir():
                _fail("P600", f"the {kind} '{shown}' is a folder, not a file", span)
            near = {q.name for q in target.parent.iterdir()} if target.parent.is_dir() else set()
        except OSError:
            near = set()
        near.discard(target.name)
        _fail("P600", f"{kind} not found: {shown}", span,
              did_you_mean(target.name, near) or missing_hint
              or "paths are relative to the .phys file that names them")  # fmt: skip
    return target


def read_text_file(path: Path, span: Span | None, kind: str, code: str = "P601") -> str:
    """The text of a data file (edge list, CSV) as UTF-8; a binary or non-UTF-8 file is a P606
    located at the string that names it, with the line of the first bad byte in the message
    (``code``: the kind's bad-file code, for a file that cannot be read at all)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(code, f"cannot read {clip(path.name, 80)}: {exc.strerror or type(exc).__name__}",
              span)  # fmt: skip
    try:
        return decode_text(data)
    except NotText as exc:
        _fail("P606", f"{clip(path.name, 80)} line {exc.line}: not a text file (column "
              f"{exc.column} holds {exc.reason})", span, f"a {kind} is UTF-8 text")  # fmt: skip


def array_file_error(path: Path, exc: BaseException, span: Span | None,
                     code: str = "P601") -> NoReturn:  # fmt: skip
    """A located error (``code``: the kind's bad-file code, P601 for data) for an .npy/.npz file
    numpy could not read: pickled object arrays are refused by name; other faults say what,
    without the file's contents."""
    text = str(exc).lower()
    shown = clip(path.name, 80)
    hint = "save plain numeric arrays (np.save / np.savez of numbers); files are never unpickled"
    if "object arrays" in text:
        _fail(code, f"{shown} holds an array of Python objects: pickled arrays are refused",
              span, hint)  # fmt: skip
    if "pickle" in text:
        _fail(code, f"{shown} is not a numeric array file (pickled data is refused)", span, hint)
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
        f"not a valid {clip(path.suffix, 20) or 'array'} file"  # fmt: skip
    _fail(code, f"cannot read {shown}: {why}", span,
          "the file is corrupt or not a numeric array")  # fmt: skip


__all__ = ["resolve_user_path", "read_text_file", "array_file_error", "project_root",
           "naming_folder", "ALLOW_HINT"]
