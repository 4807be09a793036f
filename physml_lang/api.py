"""The Python API and the one place that joins the stages: a loaded .phys program.

``compile(source_or_path, **params)`` is the Python entry point; the command line uses the same
objects, so ``Program.run()`` returns exactly the rows ``physml run`` writes. The front end
checks (``physml_lang.check``) and hands IR to the compiler (``compiler.models``); the runtime
executes tasks and asks this layer for compiled models (``Program.model``), so that a structural
parameter (a lattice size in a scan) re-checks and recompiles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalogue import CATALOGUE, Catalogue
from .check.model import ModelChecker, validate_options
from .check.program import CheckedProgram, check_program, stdlib_index, stdlib_model
from .compiler.derive.models import derive_model
from .diagnostics import Diagnostic, ErrorCollector, PhysmlError, Span, did_you_mean
from .ir.model import ModelIR
from .ir.program import ProgramIR
from .ir.task import TaskIR
from .runtime.data import DataLoader
from .runtime.tasks import check_plots, resolve_task
from .syntax.parser import parse, parse_file

if TYPE_CHECKING:
    import torch

__all__ = ["Program", "CompiledProgram", "compile", "load", "stdlib_index", "resolve_device"]


_bound = False
_checks_bound = False


def bind_checks() -> Catalogue:
    """Attach the static checks of tasks (torch-free) to the catalogue (once) and return it:
    all ``physml check`` needs."""
    global _checks_bound
    if not _checks_bound:
        from physml_lang.runtime import plans

        plans.bind(CATALOGUE)
        _checks_bound = True
    return CATALOGUE


def bind_runtime() -> Catalogue:
    """Attach every implementation to the catalogue (once) and return it. The runtime is
    imported here, on the first run of a task, so that the command, the front end and
    ``physml check`` load without it."""
    global _bound
    if not _bound:
        from physml_lang.runtime import sample_task
        from physml_lang.runtime.discovery import task as discovery_tasks
        from physml_lang.runtime.dynamics import tasks as dynamics_tasks
        from physml_lang.runtime.flows import task as flow_tasks
        from physml_lang.runtime.gauge import tasks as gauge_tasks
        from physml_lang.runtime.gauge_flows import task as gauge_flow_tasks
        from physml_lang.runtime.generative import task as generative_tasks
        from physml_lang.runtime.hopfield import task as hopfield_tasks
        from physml_lang.runtime.landscape import task as landscape_tasks
        from physml_lang.runtime.learners import tasks as learner_tasks
        from physml_lang.runtime.phases import task as phase_tasks
        from physml_lang.runtime.propagation import task as propagation_tasks
        from physml_lang.runtime.quantum import tasks as quantum_tasks
        from physml_lang.runtime.scores import task as score_tasks
        from physml_lang.runtime.topology import task as topology_tasks

        bind_checks()
        for capability in (sample_task, quantum_tasks, gauge_tasks, dynamics_tasks,
                           learner_tasks, generative_tasks, flow_tasks, gauge_flow_tasks,
                           score_tasks, hopfield_tasks, landscape_tasks, discovery_tasks, phase_tasks,
                           topology_tasks, propagation_tasks):  # fmt: skip
            capability.bind(CATALOGUE)
        _bound = True
    return CATALOGUE


def _task_for(run: TaskIR, program: Program):
    """The task entry that executes ``run`` (its model kind's own, or the shared one)."""
    return resolve_task(run, program, bind_checks())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU; ``PHYSML_DEVICE`` overrides auto), ``cpu``
    or ``cuda``."""
    from physml_lang.runtime.device import resolve_device as resolve  # torch loads on a run

    return resolve(device)


class Program:
    """Models, learners, data and tasks of one source, checked."""

    def __init__(self, checked: CheckedProgram):
        self.checked = checked
        self.name = checked.name
        self.path = checked.path
        self.models: dict[str, ModelChecker] = checked.models
        self.learners = checked.learners
        self.data = checked.data
        self.runs: dict[str, TaskIR] = checked.tasks
        base = self.path.parent if self.path else None
        self.data_loader = DataLoader(base, self._compile_by_name)
        self.static_data = DataLoader(base, self._derive_by_name, static=True)
        for task in self.runs.values():
            self.checker_for(task)

    # ---------------------------------------------------------------- models
    def checker_for(self, run: TaskIR) -> ModelChecker:
        """The declaration of the model a task uses (named, or implied by what it trains)."""
        return self.checked.checker_for(run)

    def default_model(self) -> str:
        return self.checked.default_model()

    def instantiate(self, name: str | None = None, params: dict[str, Any] | None = None,
                    spans: dict[str, Span | None] | None = None) -> ModelIR:  # fmt: skip
        """The model IR of a model with parameter values."""
        return self.checked.instantiate(name, params, spans)

    def compile_ir(self, ir: ModelIR, **options: Any):
        """The compiled model of a model IR (its kind's compiler). Its data may sample other
        models or load files: the runtime is bound first."""
        from physml_lang.compiler.models import compile_model

        bind_runtime()
        return compile_model(ir, data=self.data_loader, **options)

    def model(self, name: str | None = None, **params: Any):
        """Instantiate and compile a model with parameter values. Keyword ``path`` forces a
        lowering path of lattice models."""
        options = {k: params.pop(k) for k in ("path",) if k in params and params[k] is not None}
        params.pop("path", None)
        return self.compile_ir(self.instantiate(name, params), **options)

    def _compile_by_name(self, name: str, args: dict[str, Any], span: Span | None):
        """A model named by a data source (``sample(Ising(L = 8), ...)``), compiled."""
        return self.compile_ir(self._model_by_name(name, args, span))

    def _model_by_name(self, name: str, args: dict[str, Any], span: Span | None) -> ModelIR:
        """The IR of a model named by a data source: declared here, imported, or from the
        standard library."""
        checker = self.models.get(name) or stdlib_model(name)
        if checker is None:
            raise PhysmlError(Diagnostic(
                "P204", f"unknown model '{name}' (data samples models declared or imported here, "
                "or from the standard library)", span, did_you_mean(name, set(stdlib_index()))))
        return checker.instantiate(args, dict.fromkeys(args, span))

    def derive(self, ir: ModelIR, kind: str | None = None):
        """The torch-free derivation of a model IR (geometry, derivations, symmetries verified):
        what ``check`` needs of a model. Data are realised statically (files read, sampled data
        as a placeholder of its shape)."""
        bind_checks()  # data sources read by the static loader
        return derive_model(ir, self.static_data, kind)

    def _derive_by_name(self, name: str, args: dict[str, Any], span: Span | None):
        """``_compile_by_name`` for ``check``: the sampled model derived, not compiled."""
        return self.derive(self._model_by_name(name, args, span))

    # ---------------------------------------------------------------- IR
    def ir(self) -> ProgramIR:
        """The program's IR: the models its tasks use (with the tasks' arguments; every
        declared model with its defaults when no task names it), learners, data and tasks."""
        models: list[ModelIR] = []
        used: set[str] = set()
        for task in self.runs.values():
            checker = self.checker_for(task)
            args = {o.name: o.value for o in task.model.args} if task.model else {}
            ir = checker.instantiate(args, dict.fromkeys(args))
            if ir not in models:
                models.append(ir)
            used.add(checker.name)
        for name in self.checked.declared:
            if name not in used:
                models.append(self.models[name].instantiate())
        return ProgramIR(tuple(models), tuple(self.learners.values()), tuple(self.data.values()),
                         tuple(self.runs.values()))  # fmt: skip

    def check(self) -> list[str]:
        """Everything static, without torch: the front end, each model's geometry and
        derivations (symmetries verified), every task's options, names and sizes. Returns a
        list of what was checked."""
        done: list[str] = []
        errors = ErrorCollector()
        for name in self.models:  # declared here and imported: each checked on its own
            with errors:
                done.append(f"model {name}: {self.derive(self.instantiate(name)).describe()}")
        for run in self.runs.values():
            with errors:
                task = _task_for(run, self)
                with errors:  # the plots name the task's columns: independent of its plan
                    check_plots(run, task)
                task.static_check.check(run, self)
                done.append(f"run {run.name}: {run.kind} with model {self.checker_for(run).name}")
        errors.raise_if_any()
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
        threads: int | None = None,
        resume: bool = False,
        checkpoint_seconds: float | None = None,
        experiment: Callable[[Any], Any] | None = None,
        collective_timeout: float | None = None,
    ):
        """Execute a run block; returns a RunResult whose ``rows`` are what summary.json holds.
        ``threads``: CPU threads (default 1); ``resume``: continue from the checkpoint in
        ``out``; ``checkpoint_seconds``: how often long batches are saved (default 30 s);
        ``experiment``: a callable x (np.ndarray) -> {"cost": c, "uncer": s, "bad": b} that
        the active learners (``optimise f via gaussian_process(...)``) measure instead of the
        model's potential."""
        if not self.runs:
            raise PhysmlError(Diagnostic("P412", f"{self.name} has no run block",
                                         hint="add 'run name { ... }'"))  # fmt: skip
        if name is None:
            name = next(iter(self.runs))
        if name not in self.runs:
            raise PhysmlError(Diagnostic("P204", f"no run named '{name}'",
                                         hint=did_you_mean(name, set(self.runs))))  # fmt: skip
        run = self.runs[name]
        task = _task_for(run, self)
        check_plots(run, task)
        bind_runtime()
        from physml_lang.runtime.driver import CHECKPOINT_SECONDS, drive  # torch loads on a run

        return drive(task, run, self, sets=sets, device=device, seed=seed,
                     out=Path(out) if out is not None else None, progress=progress,
                     threads=threads, resume=resume,
                     checkpoint_seconds=checkpoint_seconds or CHECKPOINT_SECONDS,
                     experiment=experiment,
                     collective_timeout=collective_timeout)  # fmt: skip

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
        import torch

        from physml_lang.runtime.random import RandomStreams

        entry = bind_runtime().samplers.get(name, "lattice")
        if entry is None:
            known = CATALOGUE.samplers.names("lattice")
            raise PhysmlError(Diagnostic("P206", f"unknown sampler '{name}'",
                                         hint=did_you_mean(name, set(known))))  # fmt: skip
        if (T is None) == (beta is None):
            raise PhysmlError(Diagnostic("P412", "give exactly one of T or beta"))
        value = T if T is not None else beta
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise PhysmlError(Diagnostic("P406", f"T and beta must be > 0, got {value!r}"))
        b = 1.0 / T if T is not None else float(beta)
        opts = validate_options(entry.schema, options, dict.fromkeys(options), None, name)
        dev = resolve_device(device)
        cm = self.model(model, **(params or {})).to(dev)
        beta_t = torch.full((opts.chains,), float(b), device=dev)
        return entry.implementation(cm, opts, beta_t, RandomStreams(seed, dev))


def _exists(path: str) -> bool:
    """Whether a string names an existing file (False for text the file system refuses)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def load(source_or_path: str | Path, *, allow_outside: bool = False) -> Program:
    """Parse and check a program from a path or from source text.

    Files the program names (imports, data, edge lists, parameters) must lie inside its project
    tree: the folder of the file (the working directory for source text) and below;
    ``allow_outside=True`` (``--allow-outside``) lifts that rule."""
    if isinstance(source_or_path, Path) or (
        isinstance(source_or_path, str)
        and "\n" not in source_or_path
        and "{" not in source_or_path
        and (source_or_path.endswith(".phys") or _exists(source_or_path))
    ):
        path = Path(source_or_path)
        tree = parse_file(path, allow_outside=allow_outside)
        return Program(check_program(tree, path, str(path)))
    tree = parse(str(source_or_path), "<string>", allow_outside=allow_outside)
    return Program(check_program(tree))


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
        """The energy module (B, *lattice) -> (B,); for a field model, its action S(phi)."""
        compiled = self.compiled
        for name in ("energy", "action"):
            if hasattr(compiled, name):
                return getattr(compiled, name)
        raise PhysmlError(Diagnostic("P800", f"model {compiled.ir.name} has no energy or action "
                                     "module", hint="use .compiled for what it does have"))

    @property
    def lattice(self):
        return self.compiled.lattice

    def emit(self, what: str = "torch") -> str:
        return self.compiled.emit_torch() if what == "torch" else self.compiled.emit_sympy()

    @property
    def model_ir(self) -> ModelIR:
        return self.compiled.ir

    def run(self, name=None, *, sets=None, **kw):
        merged = {**self.params, **(sets or {})}
        return super().run(name, sets=merged, **kw)

    def sampler(self, name="metropolis", **kw):
        params = {**self.params, **kw.pop("params", {})}
        return super().sampler(name, params=params, **kw)


def compile(source_or_path: str | Path, *, allow_outside: bool = False,  # noqa: A001
            **params: Any) -> CompiledProgram:  # fmt: skip
    """Compile a .phys program (path or text). ``params`` set model parameters of its default
    model (and act like ``--set`` for its runs); ``allow_outside``: as for :func:`load`."""
    return CompiledProgram(load(source_or_path, allow_outside=allow_outside), params)
