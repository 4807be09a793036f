"""Compile time of every example: parse, check and compile the models its runs use.

Compares the working tree with another revision of the project in the same run: each revision
is loaded from its own source tree in a fresh interpreter (``git archive`` of the revision), the
two are measured alternately, and the best of ``--rounds`` rounds is kept per example. A ratio
above 1 means the working tree compiles that example more slowly.

    python benchmarks/compile_examples.py                       # this tree only
    python benchmarks/compile_examples.py --baseline 7f05fca    # against a revision
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_package(tree: Path):
    """Import physml_lang from a source tree (its folders mapped as in pyproject.toml)."""
    for name in [m for m in sys.modules if m == "physml_lang" or m.startswith("physml_lang.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        "physml_lang", tree / "physml_lang" / "__init__.py",
        submodule_search_locations=[str(tree / "physml_lang"), str(tree)],
    )  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    sys.modules["physml_lang"] = module
    spec.loader.exec_module(module)
    return module


def compile_example(physml_lang, path: Path) -> None:
    program = physml_lang.load(path)
    names = []
    for run in program.runs.values():
        checker = program.checker_for(run)
        name = getattr(checker, "name", None) or checker.node.name
        if name not in names:
            names.append(name)
    for name in names or [program.default_model()]:
        program.model(name)


def worker(tree: Path, repeat: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    physml_lang = load_package(tree)
    out = {}
    for path in sorted((tree / "examples").glob("*.phys")):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            try:
                compile_example(physml_lang, path)
            except Exception as exc:  # noqa: BLE001 - e.g. an optional dependency is missing
                out[path.stem] = f"failed: {type(exc).__name__}"
                break
            best = min(best, time.perf_counter() - t0)
        else:
            out[path.stem] = best
    return out


def run_worker(tree: Path, repeat: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", str(tree), "--repeat", str(repeat)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="a git revision to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.repeat)))
        return
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            base = Path(tmp) / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline],
                                     check=True, capture_output=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            trees[args.baseline] = base
        best: dict[str, dict[str, float]] = {k: {} for k in trees}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                for ex, t in run_worker(tree, args.repeat).items():
                    if isinstance(t, str):
                        best[label].setdefault(ex, t)
                    else:
                        prev = best[label].get(ex, float("inf"))
                        best[label][ex] = min(prev, t) if not isinstance(prev, str) else t
    labels = list(trees)
    print("compile time per example (parse + check + compile the models its runs use), ms")
    print(f"{'example':28s}" + "".join(f"{x:>14s}" for x in labels) + ("   ratio" if len(labels) > 1
                                                                     else ""))  # fmt: skip
    ratios = []
    for ex in sorted(best[labels[0]]):
        vals = [best[label].get(ex) for label in labels]
        cells = [f"{v * 1e3:14.1f}" if isinstance(v, float) else f"{str(v):>14s}" for v in vals]
        line = f"{ex:28s}" + "".join(cells)
        if len(vals) > 1 and all(isinstance(v, float) for v in vals):
            ratios.append(vals[0] / vals[1])
            line += f"   {ratios[-1]:.2f}"
        print(line)
    if ratios:
        import statistics

        print(f"median ratio {statistics.median(ratios):.2f}, worst {max(ratios):.2f}")


if __name__ == "__main__":
    main()
