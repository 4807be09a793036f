"""Where a run executes: the device and the CPU threads it may use.

Machines are shared: a process that takes every core's thread pool runs 20-30x slower when the
cores are busy. A run therefore uses one intra-op thread unless asked for more (``--threads
N``), and the BLAS and OpenMP pools of numpy and scipy (through threadpoolctl) get the same
bound, so a dense solve cannot spawn its own unbounded pool.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

from physml_lang.diagnostics import Diagnostic, PhysmlError

DEVICE_ENV = "PHYSML_DEVICE"  # cpu or cuda: what ``auto`` resolves to (the tests' --device)
# Where networks and model tables are built (initial weights drawn by a host generator), before
# ``.to(device)``: named so that a build never lands on torch's default device.
HOST = torch.device("cpu")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU; the environment variable ``PHYSML_DEVICE``
    = cpu or cuda overrides auto), ``cpu`` or ``cuda``."""
    if isinstance(device, torch.device):
        return device
    source = "--device"
    if device == "auto" and os.environ.get(DEVICE_ENV, "auto") != "auto":
        device, source = os.environ[DEVICE_ENV], DEVICE_ENV
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PhysmlError(Diagnostic("P416", f"{source} cuda was asked for, but no CUDA device "
                                     "is available", hint="use --device auto or cpu"))  # fmt: skip
    if device not in ("cpu", "cuda"):
        raise PhysmlError(Diagnostic("P416", f"unknown device '{device}' ({source})",
                                     hint="devices: auto, cpu, cuda"))  # fmt: skip
    return torch.device(device)


@contextmanager
def thread_limits(threads: int | None = None) -> Iterator[int]:
    """Bound torch's intra-op pool and the BLAS/OpenMP pools to ``threads`` (default 1) while
    a run executes; the previous settings come back afterwards (the Python API)."""
    n = 1 if threads is None else threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PhysmlError(Diagnostic("P406", f"--threads must be a positive integer, got {n!r}",
                                     hint="e.g. --threads 2"))  # fmt: skip
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(previous)


def available_memory(device: torch.device) -> int | None:
    """Bytes a run may still allocate on ``device`` (CUDA: free device memory; CPU: the
    kernel's MemAvailable), or None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(need: int, device: torch.device, what: str, span, hint: str) -> None:
    """A located P409 before any allocation when ``need`` bytes exceed what ``device`` has:
    a run never dies silently from memory."""
    have = available_memory(device)
    if have is not None and need > have:
        raise PhysmlError(Diagnostic(
            "P409", f"{what} needs about {_gib(need)} of memory on {device.type}; "
            f"{_gib(have)} are available", span, hint))  # fmt: skip


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


__all__ = ["DEVICE_ENV", "HOST", "available_memory", "check_memory", "resolve_device", "thread_limits"]
