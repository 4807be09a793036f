"""Cold start of the command: `physml --help`, `--version` and `check` of every example,
against bare `python -c pass` in the same run (each a fresh interpreter, interleaved, best of
``--repeats``). Targets: `--help` within 0.3 s of bare Python; `check` of any example under
1.5 s cold.

    python benchmarks/front_end_latency.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    cases = {"python -c pass": [py, "-c", "pass"],
             "physml --help": [py, "-m", "physml_lang.cli", "--help"],
             "physml --version": [py, "-m", "physml_lang.cli", "--version"]}  # fmt: skip
    for path in sorted((ROOT / "examples").glob("*.phys")):
        cases[f"physml check {path.name}"] = [py, "-m", "physml_lang.cli", "check",
                                              str(path.relative_to(ROOT))]  # fmt: skip
    best = {name: float("inf") for name in cases}
    for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
        for name, command in cases.items():
            best[name] = min(best[name], timed(command))
    base = best["python -c pass"]
    print(f"{'command':<44} {'seconds':>8} {'- bare python':>14}")
    for name, t in best.items():
        print(f"{name:<44} {t:>8.3f} {t - base:>14.3f}")


if __name__ == "__main__":
    main()
