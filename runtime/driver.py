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

from . import outputs
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .device import resolve_device, thread_limits
from .random import RandomStreams

# A batched scan saves its chains at least this often (seconds of work), so that a killed run
# resumes without redoing more than that.
CHECKPOINT_SECONDS = 30.0


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
    """What a run produced; ``summary`` is exactly what ``summary.json`` holds."""

    summary: dict
    out: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        return self.summary["rows"]


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
    recorder: Recorder = field(init=False)
    streams: RandomStreams = field(init=False)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.out)
        self.streams = RandomStreams(self.seed, self.device)

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


def every_seconds(seconds: float | None, action: Callable[[], None]) -> Callable[[], None]:
    """A tick that runs ``action`` when ``seconds`` have passed since it last did (never for
    None): a point's periodic checkpoint, timed on the host clock (no device sync)."""
    last = time.monotonic()

    def tick() -> None:
        nonlocal last
        if seconds is not None and time.monotonic() - last >= seconds:
            action()
            last = time.monotonic()

    return tick


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


def _advance(point: ScanPoint, bar, save: Callable[[], None], every: float | None) -> None:
    """Step ``point`` to its end: the progress bar, and a checkpoint at least every ``every``
    seconds and every ``point.save_every`` units (never after the last step: rows follow)."""
    maybe_save = every_seconds(every if point.saves else None, save)
    while point.done < point.total:
        before = point.done
        point.step()
        bar.update(point.done - before)
        if postfix := point.postfix():
            bar.set_postfix(**postfix)
        if point.done >= point.total or every is None or not point.saves:
            continue
        if point.save_every and point.done % point.save_every == 0:
            save()
        else:
            maybe_save()


def run_scan(ctx: RunContext, span: Span | None, n_points: int, settings: dict[str, Any],
             start: Callable[[int, RandomStreams], ScanPoint],
             finish: Callable[[int, list[dict]], None], per_point: float, desc: str,
             unit: str = "sweep") -> None:  # fmt: skip
    """Run scan points ``0 .. n_points - 1`` in order: ``start(k, streams)`` prepares point k
    with its own random streams (``ctx.streams.fork(k)``: the same numbers whether or not the
    earlier points ran), its rows go to ``finish(k, rows)`` and to disk at once. With an output
    folder the run checkpoints (the finished rows, the point's tensors and draw counter during
    it) and ``ctx.resume`` continues from there; a checkpoint of other ``settings`` is a located
    P602. The checkpoint is removed when the scan is done."""
    summary, path = ctx.recorder.summary, ctx.checkpoint_path()
    saved = None
    if ctx.resume and path is not None and path.exists():
        saved = load_checkpoint(path, settings, span=span)
        summary["rows"], summary["resumed"] = saved.state["rows"], True
    elif path is not None and path.exists():
        path.unlink()  # a fresh run: an earlier run's checkpoint is not this one's
    first = saved.state["point"] if saved is not None else 0

    def save(k: int, point: ScanPoint | None = None, streams: RandomStreams | None = None) -> None:
        tensors = {} if point is None else point.tensors()
        if streams is not None:
            tensors.update({f"random/{n}": t for n, t in streams.state().items()})
        state = {"point": k, "rows": summary["rows"], "done": point.done if point else 0}
        save_checkpoint(path, Checkpoint(tensors, state), settings)

    bar = ctx.progress_bar(n_points * per_point, desc, unit, first * per_point)
    try:
        for k in range(first, n_points):
            streams = ctx.streams.fork(k)
            point = start(k, streams)
            if saved is not None and saved.state["point"] == k and saved.state["done"]:
                point.restore(saved)
                streams.restore({"draws": saved.tensors["random/draws"]})
                bar.update(point.done)
            every = ctx.checkpoint_seconds if path is not None else None
            _advance(point, bar, lambda p=point, k=k, r=streams: save(k, p, r), every)
            finish(k, point.rows())
            ctx.recorder.write()
            if path is not None and k + 1 < n_points:
                save(k + 1)
    finally:
        bar.close()
    summary["complete"] = True
    ctx.recorder.write()
    if path is not None and path.exists():
        path.unlink()  # complete: nothing to resume


def drive(entry, run: TaskIR, program, *, sets: dict[str, Any] | None = None,
          device: str | torch.device = "auto", seed: int = 0, out: Path | None = None,
          progress: bool | None = False, threads: int | None = None, resume: bool = False,
          checkpoint_seconds: float = CHECKPOINT_SECONDS,
          experiment: Callable[..., Any] | None = None):  # fmt: skip
    """Execute the task ``entry`` for ``run``; returns its RunResult."""
    resolved = resolve_device(device)
    if out is not None:
        _writable(Path(out))
    ctx = RunContext(dict(sets or {}), resolved, seed, out, progress, resume,
                     checkpoint_seconds, experiment)  # fmt: skip
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


__all__ = ["CHECKPOINT_SECONDS", "Computation", "ProgressLines", "every_seconds", "Recorder",
           "RunContext", "RunResult", "ScanPoint", "drive", "run_scan"]
