"""Shared helpers of the front-end tests: run the ``physml`` command in-process.

The command is run through :func:`physml_lang.cli.main` (one interpreter, no subprocess start-up
per call) with a chosen working directory, so that diagnostics print file names relative to it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

from physml_lang.cli import main


class Hang(Exception):
    """An input that got no answer within its guard (:func:`time_guard`)."""


@contextlib.contextmanager
def time_guard(seconds: float, cpu: bool = False):
    """Raise :class:`Hang` inside the block after ``seconds`` of wall time, or of this
    process's CPU time with ``cpu`` (a loaded machine is then not taken for a hang)."""
    sig, timer = (signal.SIGPROF, signal.ITIMER_PROF) if cpu else (signal.SIGALRM,
                                                                   signal.ITIMER_REAL)

    def expire(signum, frame):
        raise Hang()

    previous = signal.signal(sig, expire)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(sig, previous)

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("PHYSML_UPDATE_GOLDEN") == "1"

# A tiny but complete program: every CLI test runs in well under a second.
TINY = """\
model Ising(L: int = 4, J: real = 1.0, h: real = 0.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds) - h * sum(s[i] for i in sites)
    symmetry translation
    symmetry spin_flip if h == 0
}

run scan {
    model Ising(L = 4)
    sampler metropolis(update = checkerboard, chains = 4, sweeps = 40, burn_in = 10)
    scan T in [1.5, 2.5, 3.5]
    measure e = energy / sites, m = abs(magnetization) / sites, specific_heat, binder
    plot e, m, specific_heat, mark = 2.269185
}
"""


@contextlib.contextmanager
def chdir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def physml(*argv: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``physml ARGV...`` in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def compare_golden(path: Path, actual: str) -> None:
    """Assert ``actual`` equals the golden file; rewrite it when PHYSML_UPDATE_GOLDEN=1."""
    if UPDATE:
        path.write_text(actual)
        return
    assert path.exists(), f"missing golden {path.name}: run with PHYSML_UPDATE_GOLDEN=1"
    expected = path.read_text()
    assert actual == expected, f"{path.name} differs from the golden text:\n{actual}"


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as summary.json stores them (NaN and infinities become null)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return json.loads(json.dumps(clean(rows)))
