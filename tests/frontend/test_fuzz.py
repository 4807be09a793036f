"""A fuzz stage that stays: mutated examples through ``check``, in-process.

Each input is an example with its comments removed and one to three mutations: a number
replaced by a hostile value (0, -1, 1e308, nan, inf, 1j, 2^2^2^2, a huge integer, a string,
...), or a token deleted, inserted, replaced or duplicated. Every input must either check or
fail with located diagnostics, never with another exception and never hang (a 20 s guard per
input). The quick stage runs in the default suite, the large one (10,000 inputs) in the slow
stage. Minimised failures found by it live in ``fuzz_cases/`` and are checked here too.
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import pytest
from frontend_util import Hang, time_guard

import physml_lang
from physml_lang.diagnostics import PhysmlError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.phys"))
CASES = sorted((Path(__file__).parent / "fuzz_cases").glob("*.phys"))
HOSTILE = ["0", "-1", "1e308", "-1e308", "1e-320", "inf", "nan", "1j", "2^2^2^2",
           "99999999999999999999", "0.5", "3", "-0.0", "1/0", "(1 - 1)", '"abc"', "[]",
           "[1, 2]", "true", "L", "T", "sites"]  # fmt: skip
TOKENS = ["0", "1", "-1", "1e308", "nan", "inf", "1j", "2^2^2", "(", ")", "[", "]", ",", "=",
          "sites", "bonds", "pairs", "s[i]", "for", "in", "sum(", "T", "L", "-", "*", "/", "^",
          '"x"', "spin", "potts(0)", "spin(1)", "honeycomb", "kagome", 'edges("no.csv")', "open",
          "periodic", "J", "%", "<", "==", "and", "not", "if", "let", "symmetry", "translation",
          "e0", "i + e0", "abs(", "exp(", "log(", "sqrt(", "delta(", "1/0", "chains", "sweeps",
          "10000000000"]  # fmt: skip
GUARD_SECONDS = 20


def _source(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("#"))  # fmt: skip


SOURCES = [_source(p) for p in EXAMPLES]


def mutate(text: str, rng: random.Random) -> str:
    if rng.random() < 0.6:
        numbers = list(re.finditer(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?", text))
        for m in sorted(rng.sample(numbers, min(len(numbers), rng.randint(1, 2))),
                        key=lambda m: -m.start()):  # fmt: skip
            text = text[:m.start()] + rng.choice(HOSTILE) + text[m.end():]
        return text
    tokens = re.findall(r'"[^"]*"|[\w.]+|\S|\n', text)
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(tokens))
        op = rng.random()
        if op < 0.3:
            del tokens[k]
        elif op < 0.6:
            tokens.insert(k, rng.choice(TOKENS))
        elif op < 0.8:
            tokens[k] = rng.choice(TOKENS)
        else:
            tokens.insert(k, tokens[rng.randrange(len(tokens))])
    return " ".join(tokens)


def check_one(text: str) -> str | None:
    """None when ``text`` checks or fails with located diagnostics; else what went wrong."""
    try:
        with time_guard(GUARD_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            physml_lang.load(text).check()
    except PhysmlError as exc:
        for d in exc.diagnostics:
            if d.span is None:
                return f"unlocated {d.code}: {d.message[:80]}"
            lines = d.span.source.text.count("\n") + 1
            if not 1 <= d.span.line <= lines:
                return f"{d.code} located outside the file: line {d.span.line}"
    except Hang:
        return f"no answer within {GUARD_SECONDS} s"
    except Exception as exc:  # noqa: BLE001 - anything else is the failure we look for
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return None


def run_stage(seed: int, n: int) -> dict[str, str]:
    rng = random.Random(seed)
    failures: dict[str, str] = {}
    for _ in range(n):
        text = mutate(rng.choice(SOURCES), rng)
        why = check_one(text)
        if why is not None:
            failures.setdefault(why, text)
    return failures


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_stored_fuzz_cases_give_located_diagnostics(path):
    assert check_one(path.read_text()) is None


def test_quick_fuzz_stage():
    failures = run_stage(seed=0, n=300)
    assert not failures, "\n\n".join(f"{why}\n{text[:400]}" for why, text in failures.items())


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 21))
def test_fuzz_stage_ten_thousand_inputs(seed):
    """20 x 500 = 10,000 mutated inputs through check."""
    failures = run_stage(seed=seed, n=500)
    assert not failures, "\n\n".join(f"{why}\n{text[:400]}" for why, text in failures.items())
