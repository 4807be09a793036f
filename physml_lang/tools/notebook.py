"""Jupyter: ``%load_ext physml_lang`` and the ``%%physml`` cell magic.

A cell whose body is .phys source is checked, its runs are executed and each result is
displayed (the rows as a table and the plots, ``RunResult._repr_html_``)::

    %%physml --set L=8 --set sweeps=200 --name ising
    model Ising(L: int = 8) { ... }
    run scan { ... }

Mistakes in the cell show as located diagnostics, never as a traceback; the last result is
bound to ``_physml`` (or the ``--name`` given) in the notebook's namespace. IPython is the
'notebook' extra, imported here, and this module only when the extension is loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from physml_lang.api import Program
from physml_lang.check.program import check_program
from physml_lang.diagnostics import Diagnostic, PhysmlError, render_warning
from physml_lang.runtime.frames import MissingExtra
from physml_lang.syntax.parser import parse

CELL_NAME = "<cell>"
DEFAULT_RESULT_NAME = "_physml"


def parse_value(text: str) -> Any:
    """A ``--set`` value as the command reads it: a bool, an int, a float, or a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items as a dict; a malformed one is a P106 diagnostic."""
    sets: dict[str, Any] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise PhysmlError(Diagnostic("P106", f"--set expects NAME=VALUE, got '{item}'",
                                         hint="e.g. --set T=2.0 --set L=16"))  # fmt: skip
        if not name.isidentifier():
            raise PhysmlError(Diagnostic("P106", f"--set: '{name}' is not a name"))
        sets[name] = parse_value(value)
    return sets


def load_cell(source: str) -> Program:
    """The cell's program, parsed and checked; files it names are relative to the working
    directory."""
    return Program(check_program(parse(source, CELL_NAME), None, CELL_NAME))


@magics_class
class PhysmlMagics(Magics):
    """The ``%%physml`` cell magic."""

    @magic_arguments()
    @argument("--run", dest="run_name", metavar="NAME", help="the run block to execute "
              "(all of them by default)")  # fmt: skip
    @argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
              help="override a model or run parameter (repeatable)")  # fmt: skip
    @argument("--out", metavar="DIR", help="output folder (default runs/notebook-RUN)")
    @argument("--name", default=DEFAULT_RESULT_NAME, metavar="VAR",
              help=f"variable that receives the last result (default {DEFAULT_RESULT_NAME})")
    @argument("--seed", type=int, default=0, help="random seed (default 0)")
    @argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    @argument("--check", action="store_true", help="check the cell only; run nothing")
    @cell_magic
    def physml(self, line: str, cell: str) -> None:
        """Check and run the .phys source of the cell; show each run's rows and plots."""
        args = parse_argstring(self.physml, line)
        if not args.name.isidentifier():
            print(f"--name: '{args.name}' is not a Python name", file=sys.stderr)
            return
        try:
            self._execute(args, cell)
        except PhysmlError as exc:  # a run interrupted (P701) included
            print(exc.render(), file=sys.stderr)
        except MissingExtra as exc:  # an optional extra a display needs
            print(f"error: {exc}", file=sys.stderr)

    def _execute(self, args, cell: str) -> None:
        program = load_cell(cell)
        sets = parse_sets(args.sets)
        lines = program.check()
        if args.check:
            print("\n".join(f"ok  {line}" for line in lines))
            return
        names = [args.run_name] if args.run_name else list(program.runs) or [None]
        for name in names:
            out = Path(args.out) if args.out else Path("runs") / f"notebook-{name}"
            if len(names) > 1 and args.out:
                out = Path(args.out) / str(name)
            result = program.run(name, sets=sets, out=out, device=args.device,
                                 seed=args.seed, progress=False)  # fmt: skip
            self.shell.user_ns[args.name] = result
            for warning in result.summary.get("warnings", []):
                print(render_warning(warning), file=sys.stderr)
            display(result)


def load_ipython_extension(ipython) -> None:
    """Register the ``%%physml`` cell magic."""
    ipython.register_magics(PhysmlMagics)
