"""Runs on several processes: torch.distributed (gloo on CPUs, NCCL on GPUs), owned by the driver.

A run's processes form one :class:`World`: ``rank`` in ``0 .. size - 1``. Where it comes from:

- ``physml run FILE --nproc N`` starts N processes itself (``launch``) and hands each its rank
  and a file store (``PHYSML_RANK``, ``PHYSML_WORLD_SIZE``, ``PHYSML_STORE``): no port to race for;
- ``torchrun`` (``--standalone`` on one node, a rendezvous endpoint across nodes) sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK`` and the master address: ``env://``;
- SLURM (``srun physml run ...``) sets ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``;
  the processes meet through a file store in the output folder (a shared file system).

What is split over ranks is decided by the driver and the tasks, never by the numbers: random
streams are keyed by (seed, point, global chain index), so a chain draws the same numbers on
whichever rank runs it, and results are reduced in global chain order on every rank, so one
process and N give bit-identical rows. Collectives time out (``--collective-timeout``, default
30 min) instead of hanging when a process stalls; a process that dies is seen by the launcher,
which stops the others.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from physml_lang.diagnostics import Diagnostic, PhysmlError

from .launchers import RANK_ENV, SIZE_ENV, STORE_ENV, environment_world

DEFAULT_TIMEOUT_S = 1800.0
TIMEOUT_ENV = "PHYSML_COLLECTIVE_TIMEOUT"


@dataclass(frozen=True)
class World:
    """The processes of a run. ``size`` 1 (the default) is a run on one process: every
    collective is the identity and nothing is communicated."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def root(self) -> bool:
        """The process that writes results and prints (rank 0)."""
        return self.rank == 0

    def shard(self, n: int, rank: int | None = None) -> slice:
        """The contiguous block of ``n`` items (chains, samples) that ``rank`` (default: this
        one) holds: sizes differ by at most one, earlier ranks take the larger blocks."""
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.size)
        start = r * base + min(r, extra)
        return slice(start, start + base + (1 if r < extra else 0))

    def all_gather(self, local: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
        """Every rank's ``shard(n)`` block of a tensor, joined along ``dim`` in global order:
        the tensor one process would hold (blocks padded to one size for the collective)."""
        if self.size == 1:
            return local
        sizes = [self.shard(n, r).stop - self.shard(n, r).start for r in range(self.size)]
        moved = local.movedim(dim, 0).contiguous()
        padded = moved.new_zeros((max(sizes), *moved.shape[1:]))
        padded[: moved.shape[0]] = moved
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        _collective(lambda: dist.all_gather(parts, padded), self, "gathering results")
        whole = torch.cat([p[:s] for p, s in zip(parts, sizes)])
        return whole.movedim(0, dim)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (JSON-like: rows, error descriptions), in rank order."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        _collective(lambda: dist.all_gather_object(out, obj), self, "gathering rows")
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a decision all ranks take together)."""
        if self.size == 1:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        _collective(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX), self, "agreeing")
        return bool(t.item())

    def raise_first(self, error: PhysmlError | None) -> None:
        """Collective: when any rank failed, every rank raises the first failure in rank order
        (so that rank 0 reports the located diagnostic of the rank that failed)."""
        if self.size == 1:
            if error is not None:
                raise error
            return
        described = None if error is None else error.diagnostics
        failures = [(r, f) for r, f in enumerate(self.gather_objects(described)) if f]
        if failures:
            rank, diagnostics = failures[0]
            if error is not None and rank == self.rank:
                raise error
            raise PhysmlError(list(diagnostics))

    @property
    def device(self) -> torch.device:
        """Where collectives exchange tensors: the CPU for gloo, this rank's GPU for NCCL."""
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = World()


def _collective(call, world: World, what: str) -> None:
    """A collective that fails (a peer died, or did not answer within the timeout) is a
    located P706, not a hang or a traceback."""
    try:
        call()
    except (RuntimeError, dist.DistBackendError) as exc:
        raise PhysmlError(Diagnostic(
            "P706", f"process {world.rank} of {world.size} stopped while {what}: another "
            f"process died or did not answer within {world.timeout_s:g} s "
            f"({str(exc).splitlines()[0][:120]})", None,
            "finished rows are kept; continue with --resume (any number of processes); "
            "raise --collective-timeout when points take long on some processes")) from None


def start_world(device: torch.device, out: Path | None, timeout_s: float | None) -> World:
    """Join the process group the environment describes (one process: ``SINGLE``). The
    backend is gloo on the CPU and NCCL on CUDA; each rank takes the GPU of its local rank."""
    found = environment_world()
    timeout_s = float(timeout_s or os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    if found is None:
        return SINGLE
    rank, size, local, init = found
    if size == 1:
        return World(0, 1, 0, timeout_s)
    if init is None:  # SLURM: a file store on the shared output folder, named by the job step
        if out is None:
            raise PhysmlError(Diagnostic(
                "P706", "a SLURM run of several tasks needs an output folder for the processes "
                "to meet in", None, "give --out DIR on a file system every node sees"))
        job = f"{os.environ.get('SLURM_JOB_ID', '0')}.{os.environ.get('SLURM_STEP_ID', '0')}"
        Path(out).mkdir(parents=True, exist_ok=True)
        init = f"file://{Path(out).absolute() / f'.rendezvous-{job}'}"
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if local >= gpus:  # NCCL refuses two ranks on one GPU
            raise PhysmlError(Diagnostic(
                "P706", f"process {rank} is local process {local} of its machine, which has "
                f"{gpus} GPU(s): one process per GPU", None,
                f"use at most {gpus} processes per machine, or --device cpu"))
        torch.cuda.set_device(local)
    world = World(rank, size, local, timeout_s)
    if not dist.is_initialized():
        _collective(lambda: dist.init_process_group(
            backend, init_method=init, rank=rank, world_size=size,
            timeout=timedelta(seconds=timeout_s)), world, "starting")  # fmt: skip
        # leave the group before the interpreter tears down: exiting with gloo's threads alive
        # made a process abort ("terminate called without an active exception") about one
        # time in four with three processes
        atexit.register(stop_world, world)
    return world


def stop_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def launch(argv: list[str], nproc: int, out: Path | None) -> int:
    """``physml run ... --nproc N``: start N processes of the same command on this machine,
    meeting through a fresh file store, and wait for them. Rank 0 prints the results; when a
    process fails, the others are stopped and its exit code is returned."""
    if nproc < 1:
        raise PhysmlError(Diagnostic("P706", f"--nproc must be at least 1, got {nproc}", None,
                                     "e.g. --nproc 2"))  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="physml-store-"))
    store = folder / "store"
    children = []
    for rank in range(nproc):
        env = dict(os.environ, **{RANK_ENV: str(rank), SIZE_ENV: str(nproc),
                                  STORE_ENV: str(store)})  # fmt: skip
        children.append(subprocess.Popen([sys.executable, "-m", "physml_lang.cli", *argv],
                                         env=env))  # fmt: skip
    failed: tuple[int, int] | None = None
    try:
        while any(c.poll() is None for c in children):
            for rank, c in enumerate(children):
                if c.returncode not in (None, 0) and failed is None:
                    failed = (rank, c.returncode)
            if failed is not None:
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        for c in children:
            c.send_signal(signal.SIGINT)
        for c in children:
            c.wait()
        return 130
    if failed is not None:
        time.sleep(0.5)  # the others notice within a moment: then the root cause is known
    codes = [(r, c.poll()) for r, c in enumerate(children)]
    # the root cause: a process killed outright, not one that saw it go
    failed = next(((r, code) for r, code in codes if code is not None and code < 0), failed)
    if failed is None:
        failed = next(((r, code) for r, code in codes if code), None)
    if failed is not None:
        for c in children:
            if c.poll() is None:
                c.terminate()
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a stopped process ignores SIGTERM
                c.kill()
                c.wait()
        rank, code = failed
        how = f"was killed by signal {-code}" if code < 0 else f"stopped with exit code {code}"
        kept = f"; finished rows are kept in {out}" if out is not None else ""
        print(f"physml: process {rank} of {nproc} {how}; the other processes were stopped{kept}"
              "\n  = hint: fix what it reported above, then run again with --resume (any "
              "number of processes)", file=sys.stderr)  # fmt: skip
        _clean(folder)
        return 130 if code in (130, -signal.SIGINT) else (code if code > 0 else 1)
    _clean(folder)
    return 0


def _clean(folder: Path) -> None:
    for f in folder.glob("*"):
        f.unlink(missing_ok=True)
    folder.rmdir()


__all__ = ["DEFAULT_TIMEOUT_S", "SINGLE", "World", "environment_world", "launch", "start_world",
           "stop_world"]
