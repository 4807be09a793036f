"""The run lifecycle shared by every task: device, threads, results on disk, interrupts, resume.

``drive`` executes a task entry's implementation inside one :class:`RunContext`:

- **device and threads**: the device resolved once; one intra-op thread per process unless
  ``--threads N`` asks for more, BLAS pools bounded alike (``runtime/device.py``);
- **results**: a task records each finished point with ``ctx.recorder``; ``summary.json`` and
  ``results.csv`` are rewritten atomically after each, always with the same rows;
- **progress**: a bar on a terminal, a line every few seconds otherwise (logs, batch jobs),
  nothing with ``--quiet``;
- **interrupts**: Ctrl-C stops the task; the driver says what is on disk (the rows finished,
  or nothing) and whether ``--resume`` can continue;
- **resume**: tasks that checkpoint (``runtime/checkpoint.py``: one format, settings hashed)
  continue from ``ctx.out`` when ``ctx.resume`` is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from physml_lang.diagnostics import Diagnostic, PhysmlError, RunInterrupted, Span, clip
from physml_lang.ir.task import TaskIR

from . import frames, outputs
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .device import resolve_device, thread_limits
from .distributed import SINGLE, World, start_world
from .random import RandomStreams

# A batched scan saves its chains at least this often (seconds of work), so that a killed run
# resumes without redoing more than that.
CHECKPOINT_SECONDS = 30.0
# ranks that share a point agree whether to save every this many steps (a collective each step
# would cost as much as a sweep of a small lattice)
AGREE_EVERY = 64


@dataclass
class Recorder:
    """The rows of a run on disk. ``summary`` is what ``summary.json`` holds; every
    :meth:`write` puts the CSV and the summary in place from the same rows (the CSV first,
    so that a kill between the two renames never leaves a summary ahead of its CSV)."""

    out: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def write(self) -> None:
        self.summary["elapsed_s"] = round(time.time() - self.started, 3)
        if self.out is not None:
            outputs.write_summary(self.out, self.summary)

    def rows_on_disk(self) -> int | None:
        """Rows in ``summary.json`` as last written (None: no summary)."""
        if self.out is None or not (self.out / "summary.json").is_file():
            return None
        try:
            return len(json.loads((self.out / "summary.json").read_text()).get("rows", []))
        except (OSError, json.JSONDecodeError):
            return None


@dataclass
class RunResult:
    """What a run produced; ``summary`` is exactly what ``summary.json`` holds. ``traces``:
    the sampled chains of a sampling run, observable name -> array (rows, chains, draws), row
    r of the arrays being row r of ``rows`` (empty for tasks that keep no chains)."""

    summary: dict
    out: Path | None = None
    files: list[Path] = field(default_factory=list)
    traces: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        return self.summary["rows"]

    def __repr__(self) -> str:
        return (f"RunResult(run={self.summary.get('run')!r}, rows={len(self.rows)}, "
                f"out={str(self.out) if self.out else None!r}, traces={sorted(self.traces)})")

    def to_pandas(self):
        """The rows as a pandas DataFrame: one row per scan point, ``NAME`` and
        ``NAME_stderr`` (and ``NAME_tau_int``) columns for observables (the 'data' extra)."""
        return frames.to_pandas(self)

    def to_arviz(self):
        """The sampled chains as ArviZ InferenceData (posterior group: one variable per
        observable, dims chain x draw per row) for ESS, R-hat and trace plots (the 'data'
        extra)."""
        return frames.to_arviz(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the rows as a table and the plots."""
        return frames.result_html(self)


class ProgressLines:
    """Progress for logs: one line on stderr every ``every`` seconds (and at the end), with
    the fraction done and the rate; the tqdm calls a task makes (update, set_postfix, close)."""

    def __init__(self, total: float, desc: str, unit: str, initial: float = 0,
                 every: float = 5.0):  # fmt: skip
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every, self.started = every, time.monotonic()
        self.last, self.postfix = self.started, ""

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self, now: float) -> None:
        done = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = self.n / max(now - self.started, 1e-9)
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit}s{pct}, {rate:.3g} {self.unit}/s{extra}",
              file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if time.monotonic() - self.started >= self.every:
            self._line(time.monotonic())

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RunContext:
    """Everything a task's run reads besides its IR and program."""

    sets: dict[str, Any]
    device: torch.device
    seed: int
    out: Path | None
    progress: bool | None
    resume: bool = False
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    # an experiment in the loop (a callable x -> {"cost", "uncer", "bad"}): given by the person
    # running the file (API or --experiment), never by the file itself
    experiment: Callable[..., Any] | None = None
    # the run's processes (one by default); ``out`` is None on every rank but 0, which alone
    # writes results; ``scratch`` is the output folder on every rank (checkpoints)
    world: World = SINGLE
    scratch: Path | None = None
    recorder: Recorder = field(init=False)
    streams: RandomStreams = field(init=False)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.out)
        self.streams = RandomStreams(self.seed, self.device)
        if self.scratch is None:
            self.scratch = self.out

    def progress_bar(self, total: float, desc: str, unit: str = "step", initial: float = 0):
        """A bar on a terminal, lines every few seconds otherwise, nothing when switched off
        (``progress`` False; None means: decide by whether stderr is a terminal)."""
        if self.progress is False:
            return tqdm(total=total, disable=True)
        if self.progress is None and not sys.stderr.isatty():
            return ProgressLines(total, desc, unit, initial)
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=False)

    def checkpoint_path(self, name: str = "checkpoint") -> Path | None:
        return None if self.out is None else self.out / f"{name}.safetensors"


class ScanPoint:
    """The work of one scan point as the driver runs it: ``step`` until ``done`` reaches
    ``total`` (units of progress: sweeps, iterations, epochs), then ``rows`` measures the
    point's results. ``tensors``/``restore`` are its checkpoint (the driver adds the draw
    counter of its random streams). A point is saved at least every ``--checkpoint-every``
    seconds, and also every ``save_every`` units where set; ``saves = False`` never saves
    during the point. ``postfix`` is what the progress bar shows beside the count."""

    done: int = 0
    total: int = 0
    save_every: int | None = None
    saves: bool = True

    def step(self) -> None:
        """Advance ``done`` by one unit or more."""
        raise NotImplementedError

    def postfix(self) -> dict[str, str]:
        return {}

    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def restore(self, saved: Checkpoint) -> None:
        raise NotImplementedError

    def rows(self) -> list[dict]:
        raise NotImplementedError


class Computation(ScanPoint):
    """A point run to its end in one step (its rows are its only state: no checkpoint within;
    a resumed run redoes the unfinished point)."""

    saves = False

    def __init__(self, work: Callable[[], list[dict]]):
        self.work, self.total, self.done = work, 1, 0
        self._rows: list[dict] = []

    def step(self) -> None:
        self._rows = self.work()
        self.done = 1

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def restore(self, saved: Checkpoint) -> None:
        pass

    def rows(self) -> list[dict]:
        return self._rows


def _advance(point: ScanPoint, bar, save: Callable[[], None], every: float | None,
             world: World = SINGLE) -> None:  # fmt: skip
    """Step ``point`` to its end: the progress bar, and a checkpoint at least every ``every``
    seconds and every ``point.save_every`` units (never after the last step: rows follow).
    A point whose ranks work together (``world``) saves when any of them says it is time, so
    that all take part in the save."""
    last, steps = time.monotonic(), 0
    while point.done < point.total:
        before = point.done
        point.step()
        steps += 1
        bar.update(point.done - before)
        if postfix := point.postfix():
            bar.set_postfix(**postfix)
        if point.done >= point.total or every is None or not point.saves:
            continue
        if point.save_every and point.done % point.save_every == 0:
            due = True  # (the same step on every rank: nothing to agree on)
        elif world.size == 1:
            due = time.monotonic() - last >= every
        else:  # the clocks differ: agree, every AGREE_EVERY steps so that it costs nothing
            due = steps % AGREE_EVERY == 0 and world.any(time.monotonic() - last >= every)
        if due:
            save()
            last = time.monotonic()


def run_scan(ctx: RunContext, span: Span | None, n_points: int, settings: dict[str, Any],
             start: Callable[[int, RandomStreams], ScanPoint],
             finish: Callable[[int, list[dict]], None], per_point: float, desc: str,
             unit: str = "sweep", spread: bool = False) -> None:  # fmt: skip
    """Run scan points ``0 .. n_points - 1`` in order: ``start(k, streams)`` prepares point k
    with its own random streams (``ctx.streams.fork(k)``: the same numbers whether or not the
    earlier points ran), its rows go to ``finish(k, rows)`` and to disk at once. With an output
    folder the run checkpoints (the finished rows, the point's tensors and draw counter during
    it) and ``ctx.resume`` continues from there; a checkpoint of other ``settings`` is a located
    P602. The checkpoint is removed when the scan is done.

    On several processes (``ctx.world``): with ``spread`` (a task whose ``finish`` reads only
    the rows) the points are dealt out to the ranks, a round of one point per rank at a time,
    and every rank finishes every point's rows in order; without it every rank runs every
    point, together (a point that shards its chains over the ranks) or redundantly."""
    world = ctx.world
    summary, path = ctx.recorder.summary, ctx.checkpoint_path()
    shared = None if ctx.scratch is None else ctx.scratch / "checkpoint.safetensors"
    saved = None
    if ctx.resume and shared is not None and shared.exists():
        saved = load_checkpoint(shared, settings, span=span)
        summary["rows"], summary["resumed"] = saved.state["rows"], True
    elif path is not None:
        for old in [path, *path.parent.glob("checkpoint-point*.safetensors")]:
            old.unlink(missing_ok=True)  # a fresh run: an earlier run's checkpoints are not its
    world.any(False)  # every rank has read the checkpoint before rank 0 writes a new one
    first = saved.state["point"] if saved is not None else 0
    bar = ctx.progress_bar(n_points * per_point, desc, unit, first * per_point)
    try:
        if spread and world.size > 1:
            _spread_points(ctx, span, n_points, settings, start, finish, per_point, saved, bar)
        else:
            _points_in_order(ctx, n_points, settings, start, finish, saved, bar)
    finally:
        bar.close()
    summary["complete"] = True
    ctx.recorder.write()
    if path is not None and path.exists():
        path.unlink()  # complete: nothing to resume


def _points_in_order(ctx: RunContext, n_points: int, settings: dict[str, Any], start, finish,
                     saved: Checkpoint | None, bar) -> None:  # fmt: skip
    """Every point on every rank, in order (one process; or ranks that work together)."""
    summary, path, world = ctx.recorder.summary, ctx.checkpoint_path(), ctx.world
    first = saved.state["point"] if saved is not None else 0

    def save(k: int, point: ScanPoint | None = None, streams: RandomStreams | None = None) -> None:
        tensors = {} if point is None else point.tensors()  # (a collective where ranks share)
        if path is None:
            return
        if streams is not None:
            tensors.update({f"random/{n}": t for n, t in streams.state().items()})
        state = {"point": k, "rows": summary["rows"], "done": point.done if point else 0}
        save_checkpoint(path, Checkpoint(tensors, state), settings)

    every = ctx.checkpoint_seconds if ctx.scratch is not None else None
    for k in range(first, n_points):
        streams = ctx.streams.fork(k)
        point = start(k, streams)
        if saved is not None and saved.state["point"] == k and saved.state["done"]:
            point.restore(saved)
            streams.restore({"draws": saved.tensors["random/draws"]})
            bar.update(point.done)
        _advance(point, bar, lambda p=point, k=k, r=streams: save(k, p, r), every, world)
        finish(k, point.rows())
        ctx.recorder.write()
        if every is not None and k + 1 < n_points:
            save(k + 1)


def _spread_points(ctx: RunContext, span: Span | None, n_points: int, settings: dict[str, Any],
                   start, finish, per_point: float, saved: Checkpoint | None,
                   bar) -> None:  # fmt: skip
    """Points dealt out to the ranks, one per rank a round: a point runs on its rank alone
    (its checkpoint in ``checkpoint-point<k>``, so that a resume on any number of processes
    finds it), then the round's rows are gathered and finished in point order on every rank;
    rank 0 writes them. A located failure of one point is raised on every rank after the
    rows of the points before it are written."""
    world, summary, path = ctx.world, ctx.recorder.summary, ctx.checkpoint_path()
    first = saved.state["point"] if saved is not None else 0
    every = ctx.checkpoint_seconds if ctx.scratch is not None else None
    for round_start in range(first, n_points, world.size):
        k = round_start + world.rank
        rows, error = None, None
        if k < n_points:
            try:
                rows = _run_alone(ctx, k, settings, start, saved, bar, every)
            except PhysmlError as exc:
                error = exc
        gathered = world.gather_objects(rows)
        for j, done_rows in enumerate(gathered):
            if round_start + j >= n_points or done_rows is None:
                break
            finish(round_start + j, done_rows)
            if j != world.rank:
                bar.update(per_point)
        ctx.recorder.write()
        world.raise_first(error)
        if path is not None:
            nxt = min(round_start + world.size, n_points)
            if nxt < n_points:
                state = {"point": nxt, "rows": summary["rows"], "done": 0}
                save_checkpoint(path, Checkpoint({}, state), settings)
            for j in range(round_start, nxt):
                (path.parent / f"checkpoint-point{j}.safetensors").unlink(missing_ok=True)


def _run_alone(ctx: RunContext, k: int, settings: dict[str, Any], start,
               saved: Checkpoint | None, bar, every: float | None) -> list[dict]:  # fmt: skip
    """Point ``k`` on this rank alone, resumed from its own checkpoint (or from the one of a
    run on one process that stopped inside it); its rows."""
    streams = ctx.streams.fork(k)
    point = start(k, streams)
    own = None if ctx.scratch is None else ctx.scratch / f"checkpoint-point{k}.safetensors"
    if ctx.resume and own is not None and own.exists():
        saved = load_checkpoint(own, settings)
    if saved is not None and saved.state["point"] == k and saved.state["done"]:
        point.restore(saved)
        streams.restore({"draws": saved.tensors["random/draws"]})
        bar.update(point.done)

    def save() -> None:
        tensors = point.tensors()
        tensors.update({f"random/{n}": t for n, t in streams.state().items()})
        save_checkpoint(own, Checkpoint(tensors, {"point": k, "rows": [], "done": point.done}),
                        settings)  # fmt: skip

    _advance(point, bar, save, every if own is not None else None)
    return point.rows()


def drive(entry, run: TaskIR, program, *, sets: dict[str, Any] | None = None,
          device: str | torch.device = "auto", seed: int = 0, out: Path | None = None,
          progress: bool | None = False, threads: int | None = None, resume: bool = False,
          checkpoint_seconds: float = CHECKPOINT_SECONDS,
          experiment: Callable[..., Any] | None = None,
          collective_timeout: float | None = None):  # fmt: skip
    """Execute the task ``entry`` for ``run``; returns its RunResult. Under a launcher of
    several processes (``--nproc``, torchrun, SLURM) every process calls this; rank 0 writes
    the results and shows progress."""
    resolved = resolve_device(device)
    world = start_world(resolved, out, collective_timeout)
    if world.size > 1 and resolved.type == "cuda":
        resolved = torch.device("cuda", torch.cuda.current_device())
    if out is not None and world.root:
        _writable(Path(out))
    ctx = RunContext(dict(sets or {}), resolved, seed, out if world.root else None,
                     progress if world.root else False, resume, checkpoint_seconds, experiment,
                     world, out)  # fmt: skip
    if world.size > 1:
        ctx.recorder.summary["processes"] = world.size
    with thread_limits(threads):
        try:
            return entry.implementation.run(run, program, ctx)
        except KeyboardInterrupt:
            raise RunInterrupted(_interrupted(run, ctx)) from None
        except OSError as exc:  # the disk filled up, the folder vanished, ...
            rows = ctx.recorder.rows_on_disk()
            kept = (f"{rows} finished row(s) kept in {ctx.out}" if rows
                    else "no finished row was written")  # fmt: skip
            raise PhysmlError(Diagnostic(
                "P604", f"run {run.name} could not write its results ({exc.strerror or exc}); "
                f"{kept}", run.span, "free disk space or choose another --out, then run again "
                "(with --resume where a checkpoint was kept)")) from None


def _writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be created or written (nothing is
    created here: the nearest existing folder on its path must be writable)."""
    probe = out.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    why = None
    if not probe.is_dir():
        why = f"{clip(str(probe), 80)} is not a folder"
    elif not os.access(probe, os.W_OK | os.X_OK):
        why = f"{clip(str(probe), 80)} is not writable"
    if why is not None:
        raise PhysmlError(Diagnostic(
            "P604", f"cannot write the output folder {clip(str(out), 80)}: {why}", None,
            "choose a folder you can write: --out DIR"))


def _interrupted(run: TaskIR, ctx: RunContext) -> Diagnostic:
    """What an interrupt kept, said truthfully from what is on disk."""
    rows = ctx.recorder.rows_on_disk()
    ckpt = ctx.out is not None and any(ctx.out.glob("checkpoint*.safetensors"))
    if ctx.out is None:
        kept = "nothing was written (no output folder)"
    elif rows is None:
        kept = "no row had finished: nothing was written"
    else:
        kept = f"{rows} finished row(s) kept in {ctx.out}/summary.json and results.csv"
    hint = ("continue with the same command and --resume" if ckpt
            else "run again to compute the missing rows")  # fmt: skip
    return Diagnostic("P701", f"run {run.name} interrupted: {kept}", run.span, hint)


__all__ = ["CHECKPOINT_SECONDS", "Computation", "ProgressLines", "Recorder",
           "RunContext", "RunResult", "ScanPoint", "World", "drive", "run_scan"]
