"""Test-wide settings: one intra-op thread; the runtime bound to the catalogue; the device.

The tests use small lattices, where torch's thread pool costs more than it gains (and on a
loaded 2-core machine, far more); benchmarks/ measure multi-threaded throughput instead. Tests
that call runtime pieces directly (a sampler, a learner) find their implementations in the
catalogue, as a program run by the API does. Fixtures for runs killed with SIGKILL and resumed.

``--device cpu|cuda`` (default cpu) is the device of every run the tests start without naming
one (``program.run(...)``, the CLI in a subprocess): it sets ``PHYSML_DEVICE``, which
``--device auto`` honours. Tests marked ``gpu`` are skipped where CUDA is not available.
"""

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from physml_lang.api import bind_runtime

torch.set_num_threads(1)
bind_runtime()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", choices=("cpu", "cuda"), default="cpu",
                     help="the device of runs started without one (sets PHYSML_DEVICE; "
                     "default cpu)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    device = config.getoption("--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: no CUDA device is available on this machine "
                                "(torch.cuda.is_available() is False); use --device cpu")  # fmt: skip
    os.environ["PHYSML_DEVICE"] = device


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------- runs killed and resumed


def _results_on_disk(out: Path) -> tuple[list[dict], list[dict], dict]:
    """(rows of summary.json, rows of results.csv, the summary) of an output folder."""
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "results.csv") as f:
        return summary["rows"], list(csv.DictReader(f)), summary


def _saved_after_a_row(out: Path, checkpoint: str = "checkpoint.safetensors") -> bool:
    """A finished row is on disk and the checkpoint was saved since (the next point runs)."""
    summary, ckpt = out / "summary.json", out / checkpoint
    if not (summary.is_file() and ckpt.is_file()):
        return False
    try:
        rows = json.loads(summary.read_text())["rows"]
    except (OSError, ValueError):
        return False
    return bool(rows) and ckpt.stat().st_mtime_ns > summary.stat().st_mtime_ns


def _kill_when(cmd: list[str], ready: Callable[[], bool], timeout: float = 120) -> None:
    """Run ``cmd`` and SIGKILL it as soon as ``ready()`` holds (a failure if it ends first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed: " + (
            proc.stderr.read().decode() if proc.stderr else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def results_on_disk():
    return _results_on_disk


@pytest.fixture
def saved_after_a_row():
    return _saved_after_a_row


@pytest.fixture
def kill_when():
    return _kill_when
