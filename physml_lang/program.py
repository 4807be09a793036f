"""A loaded .phys program: its models (with stdlib imports), learners and runs.

``compile(source_or_path, **params)`` is the Python entry point; the command line uses the same
objects, so ``Program.run()`` returns exactly the rows ``physml run`` writes.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from . import ast
from .checker import ModelChecker
from .diagnostics import Diagnostic, PhysmlError, did_you_mean
from .parser import parse, parse_file
from .runs import RunIR, check_run


@lru_cache(maxsize=1)
def stdlib_index() -> dict[str, tuple[str, str]]:
    """Model name -> (stdlib file name, text) for every model in ``stdlib/*.phys``."""
    index: dict[str, tuple[str, str]] = {}
    for entry in resources.files("physml_lang.stdlib").iterdir():
        if entry.name.endswith(".phys"):
            text = entry.read_text()
            for m in parse(text, f"<stdlib>/{entry.name}").models:
                index[m.name] = (entry.name, text)
    return index


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PhysmlError(Diagnostic("P400", "--device cuda was asked for, but no CUDA device is "
                                     "available", hint="use --device auto or cpu"))  # fmt: skip
    if device not in ("cpu", "cuda"):
        raise PhysmlError(Diagnostic("P400", f"unknown device '{device}'",
                                     hint="devices: auto, cpu, cuda"))  # fmt: skip
    return torch.device(device)


class Program:
    """Models, learners and runs of one source, checked."""

    def __init__(self, tree: ast.Program, path: Path | None = None, name: str = "<string>"):
        self.tree = tree
        self.path = path
        self.name = name
        from physml_lang.runtime.tasks import load_tasks

        load_tasks()  # task modules register their run statements before runs are checked
        self.models: dict[str, ModelChecker] = {}
        self.runs: dict[str, RunIR] = {}
        self._imports(tree)
        for m in tree.models:
            if m.name in self.models and self.models[m.name].node is not m:
                raise PhysmlError(Diagnostic("P201", f"model '{m.name}' is declared twice",
                                             m.name_span))  # fmt: skip
            self.models[m.name] = ModelChecker(m)
        for r in tree.runs:
            if r.name in self.runs:
                raise PhysmlError(Diagnostic("P201", f"run '{r.name}' is declared twice",
                                             r.name_span))  # fmt: skip
            self.runs[r.name] = check_run(r)
        for r in self.runs.values():
            self.checker_for(r)

    def _imports(self, tree: ast.Program) -> None:
        for imp in tree.imports:
            if imp.is_file:
                base = self.path.parent if self.path else Path.cwd()
                target = base / imp.name
                if not target.is_file():
                    raise PhysmlError(
                        Diagnostic(
                            "P600",
                            f"imported file not found: {target}",
                            imp.span,
                            "paths are relative to the importing file",
                        )
                    )
                sub = parse_file(target)
                for m in sub.models:
                    self.models[m.name] = ModelChecker(m)
                continue
            index = stdlib_index()
            if imp.name not in index:
                raise PhysmlError(Diagnostic(
                    "P200", f"no model '{imp.name}' in the standard library", imp.span,
                    did_you_mean(imp.name, set(index)) or "stdlib models: " + ", ".join(sorted(index))))  # fmt: skip
            fname, text = index[imp.name]
            for m in parse(text, f"<stdlib>/{fname}").models:
                if m.name == imp.name:
                    self.models[m.name] = ModelChecker(m)

    # ---------------------------------------------------------------- models
    def checker_for(self, run: RunIR) -> ModelChecker:
        if run.model is None:
            for name in run.trains:  # a run that trains a learner is about the learner's model
                decl = next((d for d in self.tree.learners if d.name == name), None)
                model = decl.call.func if decl is not None and isinstance(decl.call, ast.Call) \
                    else name  # fmt: skip
                if model in self.models:
                    return self.models[model]
            local = [m.name for m in self.tree.models] or list(self.models)
            if len(local) != 1:
                raise PhysmlError(Diagnostic(
                    "P400", f"run {run.name} must name its model: several are declared", run.span,
                    "add e.g. 'model " + (local[0] if local else "Ising") + "(L = 16)'"))  # fmt: skip
            return self.models[local[0]]
        if run.model not in self.models:
            raise PhysmlError(Diagnostic(
                "P200", f"unknown model '{run.model}'", run.model_span,
                did_you_mean(run.model, set(self.models) | set(stdlib_index()))
                or f"declare it or import it from the standard library: import {run.model}"))  # fmt: skip
        return self.models[run.model]

    def default_model(self) -> str:
        names = [m.name for m in self.tree.models] or list(self.models)
        if not names:
            raise PhysmlError(Diagnostic("P400", f"{self.name} declares no model"))
        return names[0]

    def model(self, name: str | None = None, **params: Any):
        """Instantiate and compile a model with parameter values (a CompiledModel for classical
        lattice models; quantum, gauge and phase-space models get their own compiled form).
        Keyword ``path`` forces a lowering path of classical models."""
        from physml_lang.compiler.kinds import compile_model

        name = name or self.default_model()
        if name not in self.models:
            raise PhysmlError(Diagnostic("P200", f"unknown model '{name}'",
                                         hint=did_you_mean(name, set(self.models))))  # fmt: skip
        options = {k: params.pop(k) for k in ("path",) if k in params and params[k] is not None}
        params.pop("path", None)
        ir = self.models[name].instantiate(params)
        return compile_model(ir, **options)

    def check(self) -> list[str]:
        """Run the whole front end and the symmetry checks; returns a list of what was checked."""
        from physml_lang.runtime.tasks import resolve_task

        done = []
        for name in self.models:  # declared here and imported
            done.append(f"model {name}: {self.model(name).describe()}")
        for run in self.runs.values():
            import copy

            resolve_task(run, self).check(copy.deepcopy(run), self)
            done.append(f"run {run.name}: {run.task} with model {self.checker_for(run).node.name}")
        return done

    # ---------------------------------------------------------------- running
    def run(
        self,
        name: str | None = None,
        *,
        sets: dict[str, Any] | None = None,
        out: str | Path | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
        progress: bool | None = False,
    ):
        """Execute a run block; returns a RunResult whose ``rows`` are what summary.json holds."""
        if not self.runs:
            raise PhysmlError(Diagnostic("P400", f"{self.name} has no run block",
                                         hint="add 'run name { ... }'"))  # fmt: skip
        if name is None:
            name = next(iter(self.runs))
        if name not in self.runs:
            raise PhysmlError(Diagnostic("P200", f"no run named '{name}'",
                                         hint=did_you_mean(name, set(self.runs))))  # fmt: skip
        import copy

        from physml_lang.runtime.tasks import resolve_task

        run = copy.deepcopy(self.runs[name])
        dev = resolve_device(device)
        out_path = Path(out) if out is not None else None
        return resolve_task(run, self).run(run, self, sets=sets, device=dev, seed=seed, out=out_path,
                                   progress=progress)  # fmt: skip

    # ---------------------------------------------------------------- conveniences
    @property
    def energy(self):
        """The energy module of the default model with default parameters."""
        return self.model().energy

    def sampler(self, name: str = "metropolis", *, model: str | None = None, T: float | None = None,
                beta: float | None = None, seed: int = 0, device: str = "cpu",
                params: dict | None = None, **options):  # fmt: skip
        """A sampler that can be stepped from Python: ``s = p.sampler("wolff", T=2.0)``;
        ``state = s.initial_state()``; ``state = s.sweep(state)``."""
        from physml_lang.checker import validate_options
        from physml_lang.runtime.samplers import SAMPLERS

        if name not in SAMPLERS:
            raise PhysmlError(Diagnostic("P200", f"unknown sampler '{name}'",
                                         hint=did_you_mean(name, set(SAMPLERS))))  # fmt: skip
        if (T is None) == (beta is None):
            raise PhysmlError(Diagnostic("P400", "give exactly one of T or beta"))
        value = T if T is not None else beta
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise PhysmlError(
                Diagnostic("P400", f"T and beta must be > 0, got {value!r}")
            )
        b = 1.0 / T if T is not None else float(beta)
        entry = SAMPLERS[name]
        opts = validate_options(entry.schema, options, dict.fromkeys(options), None, name)
        dev = resolve_device(device)
        cm = self.model(model, **(params or {})).to(dev)
        g = torch.Generator(device=dev)
        g.manual_seed(seed)
        beta_t = torch.full((opts.chains,), float(b), device=dev)
        return entry.factory(cm, opts, beta_t, g)


def load(source_or_path: str | Path) -> Program:
    """Parse and check a program from a path or from source text."""
    if isinstance(source_or_path, Path) or (
        isinstance(source_or_path, str)
        and "\n" not in source_or_path
        and "{" not in source_or_path
        and (source_or_path.endswith(".phys") or Path(source_or_path).exists())
    ):
        path = Path(source_or_path)
        return Program(parse_file(path), path, str(path))
    return Program(parse(str(source_or_path), "<string>"))


class CompiledProgram(Program):
    """What :func:`compile` returns: a program whose default model is compiled with ``params``."""

    def __init__(self, program: Program, params: dict[str, Any]):
        self.__dict__.update(program.__dict__)
        self.params = params
        self._compiled = None

    @property
    def compiled(self):
        if self._compiled is None:
            self._compiled = super().model(**self.params)
        return self._compiled

    @property
    def energy(self):
        return self.compiled.energy

    @property
    def lattice(self):
        return self.compiled.lattice

    def emit(self, what: str = "torch") -> str:
        return self.compiled.emit_torch() if what == "torch" else self.compiled.emit_sympy()

    @property
    def model_ir(self):
        return self.compiled.ir

    def run(self, name=None, *, sets=None, **kw):
        merged = {**self.params, **(sets or {})}
        return super().run(name, sets=merged, **kw)

    def sampler(self, name="metropolis", **kw):
        params = {**self.params, **kw.pop("params", {})}
        return super().sampler(name, params=params, **kw)


def compile(source_or_path: str | Path, **params: Any) -> CompiledProgram:  # noqa: A001
    """Compile a .phys program (path or text). ``params`` set model parameters of its default
    model (and act like ``--set`` for its runs)."""
    return CompiledProgram(load(source_or_path), params)
