"""The interface to an experiment in the loop of active learning (torch-free).

An experiment is a Python callable ``experiment(x: np.ndarray) -> {"cost": c, "uncer": s,
"bad": b}`` (``x``: the control parameters (n,), in the box the model declares; ``uncer``: the
standard deviation of the cost, optional; ``bad``: the measurement failed, optional). It is
given to ``compile(...).run(..., experiment=fn)``, or on the command line as a command
(``physml run FILE --experiment "CMD ARGS"``, :class:`CommandExperiment`): the command reads
``{"params": [...]}`` as JSON on stdin and prints the JSON answer on stdout. A non-zero exit, a
timeout, unparseable output or a non-finite cost marks the point bad. A ``.phys`` file can
never name a command: only the person running it can.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Experiment = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Measurement:
    """One evaluation: ``cost`` (nan when bad), its standard deviation ``uncer`` (0: unknown)
    and whether it failed (``bad``), with the reason."""

    cost: float
    uncer: float = 0.0
    bad: bool = False
    why: str = ""


def _bad(why: str) -> Measurement:
    return Measurement(math.nan, 0.0, True, why)


def parse_answer(answer: Any) -> Measurement:
    """An experiment's answer (a dict, or a bare number) as a Measurement; anything malformed
    is a bad point, never an exception."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = {"cost": answer}
    if not isinstance(answer, dict):
        return _bad(f"the answer is not a JSON object: {str(answer)[:80]}")
    if answer.get("bad", False) not in (False, 0, None):
        return _bad(str(answer.get("why") or "the experiment reported bad"))
    try:
        cost = float(answer["cost"])
        uncer = float(answer.get("uncer", 0.0) or 0.0)
    except (KeyError, TypeError, ValueError):
        return _bad(f"no numeric cost in {str(answer)[:80]}")
    if not math.isfinite(cost) or not math.isfinite(uncer) or uncer < 0:
        return _bad(f"cost {cost}, uncer {uncer} are not a finite cost with uncer >= 0")
    return Measurement(cost, uncer)


def measure(experiment: Experiment, x: np.ndarray) -> Measurement:
    """Call the experiment at x (n,); an exception inside it is a bad point (reported)."""
    try:
        return parse_answer(experiment(np.array(x, dtype=float)))
    except Exception as exc:  # the user's experiment failing is a failed measurement
        return _bad(f"the experiment raised {type(exc).__name__}: {str(exc)[:80]}")


class CommandExperiment:
    """A command run once per point, without a shell (``shlex.split``): the point as
    ``{"params": [...]}`` on stdin, the answer as JSON on stdout (its last non-empty line is
    read if the whole output is not JSON)."""

    def __init__(self, command: str, timeout: float = 60.0):
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the experiment command is empty")
        self.timeout = float(timeout)
        self.command = command

    def __call__(self, x: np.ndarray) -> dict | Measurement:
        payload = json.dumps({"params": [float(v) for v in np.asarray(x).reshape(-1)]})
        try:
            done = subprocess.run(self.argv, input=payload, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"bad": True, "why": f"timed out after {self.timeout:g} s"}
        except OSError as exc:
            return {"bad": True, "why": f"could not start {self.argv[0]}: {exc.strerror}"}
        if done.returncode != 0:
            return {"bad": True, "why": f"exit status {done.returncode}"}
        text = done.stdout.strip()
        for candidate in (text, text.splitlines()[-1] if text else ""):
            try:
                return json.loads(candidate)
            except json.JSONDecodeError:
                continue
        return {"bad": True, "why": "output is not JSON"}

    def __repr__(self) -> str:
        return f"CommandExperiment({self.command!r}, timeout={self.timeout:g})"


__all__ = ["CommandExperiment", "Experiment", "Measurement", "measure", "parse_answer"]
