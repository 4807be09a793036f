"""Render a pytest JUnit XML of the `long` validations as docs/long_runs.md: commit, date,
machine, and per test its outcome, wall time and the figures it recorded (record_property)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def render(xml: Path) -> str:
    cases = ET.parse(xml).getroot().iter("testcase")
    lines = [
        "# The long validations: last recorded run",
        "",
        "Written by `bash scripts/long.sh` (the tests marked `long`, which CI does not run:",
        "variational accuracy targets and the examples whose headers' claims take minutes to",
        "check). Rerun it after a change to what these tests cover, and commit this file.",
        "",
        f"- commit: {_commit()}",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "",
        "| test | outcome | wall time | figures |",
        "|---|---|---|---|",
    ]
    total = 0.0
    for case in cases:
        seconds = float(case.get("time", 0))
        total += seconds
        outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                   else "skipped" if case.find("skipped") is not None else "passed")  # fmt: skip
        figures = "; ".join(f"{p.get('name')} = {p.get('value')}"
                            for p in case.iter("property"))  # fmt: skip
        name = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        lines.append(f"| `{name}` | {outcome} | {seconds:.0f} s | {figures} |")
    lines += ["", f"Total: {total / 60:.1f} min.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(render(Path(sys.argv[1])))
    print(f"wrote {sys.argv[2]}")
