"""The ``physml`` command: run, check, compile. User mistakes print located diagnostics and
exit with status 1; never a traceback."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from .diagnostics import (
    Diagnostic,
    PhysmlError,
    PhysmlWarning,
    RunInterrupted,
    clip,
    render_warning,
)


def _value(text: str) -> Any:
    """--set values: int, float, bool, or a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _sets(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise PhysmlError(Diagnostic("P106", f"--set expects NAME=VALUE, got '{item}'",
                                         hint="e.g. --set T=2.0 --set L=16"))  # fmt: skip
        k, v = item.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise PhysmlError(Diagnostic("P106", f"--set: '{k}' is not a name"))
        out[k] = _value(v)
    return out


def _version() -> str:
    """The installed distribution's version (without importing the package's runtime)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("physml")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="physml", description="Sample, learn and evolve physical "
                                "systems declared in .phys files.")  # fmt: skip
    p.add_argument("--version", action="version", version=f"physml {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=["text", "json"], default="text",
                     help="diagnostics as text (default) or JSON for editors")  # fmt: skip
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("--allow-outside", action="store_true",
                       help="let the program read files (imports, data, edge lists, "
                       "parameters) outside its project tree, the folder of FILE and below")  # fmt: skip
    r = sub.add_parser("run", parents=[fmt, files], help="run a program's run blocks")
    r.add_argument("file")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a model parameter, scan variable, let or sampler option")  # fmt: skip
    r.add_argument("--out", help="output folder (default: runs/<file>-<run>)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when available, else CPU; PHYSML_DEVICE overrides auto")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--run", "--run-name", dest="run_name",
                   help="which run block (default: all, in order); --run-name under torchrun")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--threads", type=int, help="CPU threads per process (default 1: machines "
                   "are shared)")  # fmt: skip
    r.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in the output folder")  # fmt: skip
    r.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="save long batches at least this often (default 30)")  # fmt: skip
    r.add_argument("--experiment", metavar="CMD", help="an experiment in the loop of active "
                   "learning (optimise f via gaussian_process/ensemble): CMD ARGS (no shell) "
                   "reads {\"params\": [...]} on stdin and prints {\"cost\": x, \"uncer\": "
                   "s, \"bad\": b}; a non-zero exit, a timeout or bad output marks the point "
                   "bad")  # fmt: skip
    r.add_argument("--experiment-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="seconds one measurement of --experiment may take (default 60)")
    r.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="run on N processes of this machine (torch.distributed: gloo on the "
                   "CPU, NCCL on GPUs); under torchrun or srun the launcher's processes are "
                   "used instead")  # fmt: skip
    r.add_argument("--collective-timeout", type=float, metavar="SECONDS",
                   help="how long a process waits for the others before the run stops with "
                   "an error (default 1800)")  # fmt: skip
    c = sub.add_parser("check", parents=[fmt, files], help="parse, check names and types, verify "
                       "symmetries")  # fmt: skip
    c.add_argument("file")
    k = sub.add_parser("compile", parents=[fmt, files], help="print derived sympy or generated torch code")
    k.add_argument("file")
    k.add_argument("--emit", choices=["ast", "ir", "sympy", "torch", "triton", "numba"],
                   default="torch", help="the syntax tree, the checked IR, derived sympy, "
                   "generated torch code, or the generated local-update kernels (Triton, numba)")
    k.add_argument("--model", help="which model (default: the first)")
    k.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    k.add_argument("--path", choices=["roll", "gather", "dense"], help="force a lowering path")
    ls = sub.add_parser("list", parents=[fmt], help="the catalogue: lattices, domains, samplers, "
                        "learners, optimisers, ... with their options, defaults and docs")  # fmt: skip
    ls.add_argument("kind", nargs="?", help="one kind of entry (e.g. samplers); all by default")
    ls.add_argument("name", nargs="?", help="one entry of that kind (e.g. metropolis)")
    f = sub.add_parser("fmt", help="format .phys files in place (canonical layout, comments "
                       "kept); --check: change nothing, show a diff, exit 1 if any differs")  # fmt: skip
    f.add_argument("paths", nargs="+", metavar="FILE", help=".phys files or folders of them")
    f.add_argument("--check", action="store_true",
                   help="report unformatted files with a diff instead of rewriting them")  # fmt: skip
    sub.add_parser("lsp", help="the language server over stdio (diagnostics, completion and "
                   "hover of registry names; needs the 'editor' extra)")  # fmt: skip
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Located warnings (deprecated option names, ...) print like diagnostics."""
    if isinstance(message, PhysmlWarning):
        print(str(message), file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _show_warning
    try:
        return _dispatch(args)
    except PhysmlError as exc:
        return _fail(exc, args)
    except RecursionError:  # a pathologically nested program: a user mistake, not a crash
        hint = "split long or deeply nested expressions into 'let' definitions"
        message = "the program is nested too deeply to be compiled"
        return _fail(PhysmlError(Diagnostic("P801", message, hint=hint)), args)
    except MemoryError:  # e.g. a lattice or a scan far larger than the machine's memory
        return _fail(_out_of_memory("the host"), args)
    except BrokenPipeError:  # output piped into a reader that stopped (``| head``)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # outside a run (a run's interrupt is a P701 saying what was kept)
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug in physml, reported as one
        if any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):  # torch.cuda's
            return _fail(_out_of_memory("the GPU"), args)
        return _internal_error(exc, args)


def _out_of_memory(where: str) -> PhysmlError:
    """What a run that ran out of memory despite the estimates prints (P409, no traceback);
    finished rows are on disk already."""
    return PhysmlError(Diagnostic(
        "P409", f"out of memory on {where}: the program asks for more memory than is available",
        hint="reduce lattice sizes, chains, batch or network sizes, or the number of scan "
        "points; rows of finished points are on disk"))  # fmt: skip


INTERNAL_ERROR = 3  # exit code of a bug in physml (1: the user's input; 2: usage)


def _internal_error(exc: Exception, args) -> int:
    """One line that says this is physml's fault, where in the user's file it happened, and
    how to report it; the traceback only with PHYSML_DEBUG=1."""
    import os
    import traceback

    where = getattr(args, "file", None) or "the command"
    kind = type(exc).__name__
    text = clip(str(exc).splitlines()[0], 160) if str(exc) else ""
    print(f"{where}: internal error (a bug in physml, not in your file): {kind}: {text}\n"
          "  = hint: please report it with the .phys file and the command; set "
          "PHYSML_DEBUG=1 to see the traceback", file=sys.stderr)  # fmt: skip
    if os.environ.get("PHYSML_DEBUG"):
        traceback.print_exception(exc)
    return INTERNAL_ERROR


def _fail(exc: PhysmlError, args) -> int:
    if getattr(args, "format", "text") == "json":
        print(exc.as_json())
    else:
        print(exc.render(), file=sys.stderr)
    return 130 if isinstance(exc, RunInterrupted) else 1


def _dispatch(args) -> int:
    if args.command == "fmt":  # the syntax alone: no torch
        from .tools.formatter import fmt_command

        return fmt_command(args.paths, check=args.check)
    if args.command == "lsp":
        from .tools.lsp import serve

        serve()
        return 0
    if args.command == "list":  # the catalogue alone: no torch, no runtime
        from .catalogue import CATALOGUE
        from .catalogue.listing import listing

        print(listing(CATALOGUE, args.kind, args.name), end="")
        return 0
    from .api import load

    if args.command == "compile" and args.emit == "ast":
        from .syntax import parse_file
        from .syntax.ast import dump

        print(dump(parse_file(Path(args.file))))
        return 0
    program = load(Path(args.file), allow_outside=args.allow_outside)
    if args.command == "check":
        for line in program.check():
            print(f"ok  {line}")
        return 0
    if args.command == "compile" and args.emit == "ir":
        from .ir.text import print_ir

        if args.model or args.set:
            print(print_ir(program.instantiate(args.model, _sets(args.set))), end="")
        else:
            print(print_ir(program.ir()), end="")
        return 0
    if args.command == "compile":
        name = args.model or program.default_model()
        cm = program.model(name, path=args.path, **_sets(args.set))
        emit = getattr(cm, f"emit_{args.emit}", None)
        if emit is None:
            raise PhysmlError(Diagnostic("P800", f"model {name} has no --emit {args.emit} form"))
        print(emit())
        return 0
    sets = _sets(args.set)
    if args.nproc != 1 and not _launched():
        from .runtime.distributed import launch

        return launch(args.argv, args.nproc, Path(args.out) if args.out else None)
    if args.collective_timeout is not None and not args.collective_timeout > 0:
        raise PhysmlError(Diagnostic("P706", "--collective-timeout must be positive, got "
                                     f"{args.collective_timeout:g}", None,
                                     "e.g. --collective-timeout 600"))  # fmt: skip
    experiment = _experiment(args.experiment, args.experiment_timeout)
    names = [args.run_name] if args.run_name else list(program.runs) or [None]
    for name in names:
        out = Path(args.out) if args.out else Path("runs") / f"{Path(args.file).stem}-{name}"
        if len(names) > 1 and args.out:
            out = Path(args.out) / str(name)
        result = program.run(name, sets=sets, out=out, device=args.device, seed=args.seed,
                             progress=None if not args.quiet else False, threads=args.threads,
                             resume=args.resume,
                             checkpoint_seconds=args.checkpoint_every,
                             experiment=experiment,
                             collective_timeout=args.collective_timeout)  # fmt: skip
        if _rank() == 0:
            _report(result)
    return 0


def _launched() -> bool:
    """Whether this process is one of several a launcher started (--nproc, torchrun, srun)."""
    from .runtime.launchers import environment_world

    return environment_world() is not None


def _rank() -> int:
    from .runtime.launchers import environment_world

    found = environment_world()
    return 0 if found is None else found[0]



def _experiment(command: str | None, timeout: float):
    """The ``--experiment`` command as a callable (None without one)."""
    if command is None:
        return None
    from .runtime.landscape.experiments import CommandExperiment

    if not timeout > 0:
        raise PhysmlError(Diagnostic("P705", f"--experiment-timeout must be positive, got "
                                     f"{timeout:g}", None, "e.g. --experiment-timeout 60"))  # fmt: skip
    try:
        return CommandExperiment(command, timeout)
    except ValueError as exc:
        raise PhysmlError(Diagnostic("P705", f"--experiment: {exc}", None,
                                     '--experiment "python3 measure.py --port 5"')) from None


def _report(result) -> None:
    s = result.summary
    what = [s.get("model", "?")]
    for key in ("sampler", "task", "learner", "integrator"):
        v = s.get(key)
        if isinstance(v, dict) and "name" in v:
            what.append(str(v["name"]))
        elif isinstance(v, str):
            what.append(v)
    print(f"run {s.get('run')} ({', '.join(what)}, device {s.get('device')}, seed {s.get('seed')}): "
          f"{len(s.get('rows', []))} rows in {s.get('elapsed_s', 0) or 0:.1f} s")  # fmt: skip
    for row in s["rows"][:40]:
        parts = []
        for k, v in row.items():
            if isinstance(v, dict):
                parts.append(f"{k} = {v['mean']:.6g} ± {v['stderr']:.2g}" if v["stderr"] is not None
                             and v["stderr"] == v["stderr"] else f"{k} = {v['mean']:.6g}")  # fmt: skip
            elif k not in ("acceptance", "r_hat", "chain_excess"):
                parts.append(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}")
        print("  " + ", ".join(parts))
    for w in s.get("warnings", []):
        print(render_warning(w), file=sys.stderr)
    if result.out is not None:
        written = ["summary.json", "results.csv"] + [f.name for f in result.files]
        print(f"wrote {result.out}/{{{', '.join(written)}}}")


if __name__ == "__main__":
    sys.exit(main())
