"""The fuzz stage through ``run``: mutated examples, shrunk to seconds, executed in-process.

Each input is an example (comments removed) with one or two of its numbers replaced by a hostile
value, run with the small settings its pinned rows use (tests/spine/test_example_pins.py: few
sweeps, small lattices), in an empty working folder with ``out`` inside it. Every input must
either run or fail with located diagnostics; it must not raise anything else, hang (a guard of
20 s of CPU time, so that a loaded machine is not taken for a hang), or write anywhere but
``out``. A few hundred inputs run in the slow stage; minimised
failures are stored in ``fuzz_cases/run_*.phys`` and run in the default suite.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import warnings
from pathlib import Path

import pytest
from frontend_util import Hang, time_guard

import physml_lang
from physml_lang.diagnostics import PhysmlError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GUARD_SECONDS = 20
HOSTILE = ["0", "-1", "1e308", "1e-320", "inf", "nan", "1j", "99999999999999999999",
           "0.5", "3", "-0.0", "1/0", '"abc"', "[1, 2]", "true"]  # fmt: skip


def _pinned_cases() -> list[tuple[str, str | None, dict]]:
    spec = importlib.util.spec_from_file_location(
        "example_pins", ROOT / "tests" / "spine" / "test_example_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


CASES = [c for c in _pinned_cases() if c[0] != "rbm_digits"]  # scikit-learn: optional
STORED = sorted((HERE / "fuzz_cases").glob("run_*.phys"))


def _source(name: str) -> str:
    text = (ROOT / "examples" / f"{name}.phys").read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def mutate(text: str, rng: random.Random) -> str:
    numbers = list(re.finditer(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?", text))
    for m in sorted(rng.sample(numbers, min(len(numbers), rng.randint(1, 2))),
                    key=lambda m: -m.start()):  # fmt: skip
        text = text[:m.start()] + rng.choice(HOSTILE) + text[m.end():]
    return text


def run_one(text: str, run: str | None, sets: dict, folder: Path) -> str | None:
    """None when ``text`` runs, or fails with located diagnostics, writing only under
    ``folder/out``; else what went wrong."""
    folder.mkdir()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with time_guard(GUARD_SECONDS, cpu=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = physml_lang.load(text)
            program.run(run if run in program.runs else None, sets=sets, seed=0,
                        out=folder / "out", device="cpu")  # fmt: skip
    except PhysmlError as exc:
        for d in exc.diagnostics:
            if d.span is None and d.code not in ("P701",):
                return f"unlocated {d.code}: {d.message[:80]}"
    except Hang:
        return f"no answer within {GUARD_SECONDS} s of CPU time"
    except Exception as exc:  # noqa: BLE001 - anything else is the failure we look for
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    finally:
        os.chdir(cwd)
    stray = sorted(p.name for p in folder.iterdir() if p.name != "out")
    return f"wrote outside --out: {stray}" if stray else None


def run_stage(seed: int, n: int, tmp: Path) -> dict[str, str]:
    rng = random.Random(seed)
    failures: dict[str, str] = {}
    for i in range(n):
        name, run, sets = rng.choice(CASES)
        text = mutate(_source(name), rng)
        why = run_one(text, run, sets, tmp / f"input{i}")
        if why is not None:
            failures.setdefault(why, f"[{name} {run} {sets}]\n{text}")
    return failures


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
def test_stored_run_fuzz_cases(path, tmp_path):
    """Each stored case names its run and settings on its first line: ``# run NAME {json}``."""
    import json

    head, _, rest = path.read_text().partition("\n")
    _, _, run, sets = head.split(" ", 3)
    assert run_one(path.read_text(), run, json.loads(sets), tmp_path / "x") is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_fuzz_stage_through_run(seed, tmp_path):
    """4 x 75 = 300 mutated, shrunk examples run to the end (or to a located error)."""
    failures = run_stage(seed=seed, n=75, tmp=tmp_path)
    assert not failures, "\n\n".join(f"{why}\n{text[:600]}" for why, text in failures.items())
