"""mkdocs hooks: the generated pages of the site. The home page (the README), the language
reference, the catalogue and the validation table are generated from the repository; the
tutorials check and run a few examples with reduced settings and embed their source, rows and
plots. Everything is added to the build in ``on_files``: nothing is written to the source tree
and nothing is cached between builds."""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: the build shares the CPUs

from mkdocs.config.defaults import MkDocsConfig  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Tutorial:
    """An example run at reduced settings (``sets``) that take seconds on one CPU core."""

    example: str
    run: str
    sets: dict[str, Any] = field(default_factory=dict)


TUTORIALS = (
    Tutorial("ising2d", "scan", {"L": 16, "chains": 8, "sweeps": 200, "burn_in": 100}),
    Tutorial("tfim", "spectrum"),
    Tutorial("pendulum_leapfrog_vs_rk4", "leapfrog_vs_rk4", {"steps": 10000}),
    Tutorial("u1_2d_hmc", "hmc_l8", {"chains": 8, "sweeps": 300, "burn_in": 50}),
    Tutorial("van_ising", "van", {"L": 4, "steps": 300}),
)


def fence_language() -> str:
    """``physml`` where the Pygments lexer is installed, else plain text."""
    try:
        from pygments.lexers import get_lexer_by_name

        get_lexer_by_name("physml")
    except Exception:  # the lexer's entry point may be missing or broken: highlight nothing
        return "text"
    return "physml"


def readme_page() -> str:
    """The README as the home page, its links to ``docs/`` made relative to the site."""
    text = (ROOT / "README.md").read_text()
    return re.sub(r"\]\(docs/([\w./-]+\.md)\)", r"](\1)", text)


def _cell(value: Any) -> str:
    if isinstance(value, dict) and "mean" in value:
        stderr = value.get("stderr")
        return f"{value['mean']:.6g}" + (f" ± {stderr:.2g}" if stderr else "")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        shown = ", ".join(_cell(v) for v in value[:4])
        return f"[{shown}{', …' if len(value) > 4 else ''}]"
    return str(value)


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """A run's rows as a Markdown table (the same numbers ``physml run`` prints)."""
    from physml_lang.tools.reference_docs import md

    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = ["| " + " | ".join(f"`{c}`" for c in columns) + " |", "|---" * len(columns) + "|"]
    out += ["| " + " | ".join(md(_cell(row[c])) if c in row else "" for c in columns) + " |"
            for row in rows]  # fmt: skip
    return out


def run_tutorial(tutorial: Tutorial, work: Path) -> tuple[str, dict[str, bytes]]:
    """Check and run one example; its page and its plots (file name -> PNG bytes)."""
    import physml_lang
    from physml_lang.tools import reference_docs as docs

    path = EXAMPLES / f"{tutorial.example}.phys"
    program = physml_lang.load(path)
    checked = program.check()
    started = time.perf_counter()
    result = program.run(tutorial.run, sets=tutorial.sets, out=work, seed=0, threads=1,
                         device="cpu")  # fmt: skip
    seconds = time.perf_counter() - started
    plots = {p.name: p.read_bytes() for p in sorted(work.glob("*.png"))}
    sets = "".join(f" --set {k}={v}" for k, v in tutorial.sets.items())
    command = f"physml run examples/{path.name} --run {tutorial.run}{sets} --threads 1"
    reduced = (f"with reduced settings (`{sets.strip()}`)" if tutorial.sets
               else "as written")  # fmt: skip
    page = [f"# {docs.md(docs.capability(path))}", "",
            f"From [`examples/{path.name}`](#the-program). This page was generated when the "
            f"documentation was built: physml checked the example and ran its `{tutorial.run}` "
            f"run {reduced}, in {seconds:.0f} s on one CPU core at seed 0."]  # fmt: skip
    if tutorial.sets:
        page[-1] += (" The numbers below are therefore not those the full example "
                     "claims; those are listed at the end of the page, and the tests check them.")
    page += ["", "## The program", "", f"```{fence_language()}", path.read_text().rstrip(),
             "```", "", "## Check", "", "Everything static, without torch:", "",
             "```text", f"$ physml check examples/{path.name}", *checked, "```", "",
             "## Run", "", "```text", f"$ {command}", "```", "", *rows_table(result.rows), ""]  # fmt: skip
    for name in plots:
        page += [f"![{name}]({tutorial.example}/{name})", ""]
    claimed = docs.claims(path)
    if claimed:
        page += ["## What the full example claims", "",
                 "Seed 0, the file as written (`tests/spine/test_example_claims.py`):", ""]
        page += [f"- {docs.md(docs.claim_text(c))}" + (f" (run `{c.run}`)" if c.run else "")
                 for c in claimed]  # fmt: skip
        reference = docs.reference_text(path, limit=2000)
        if reference:
            page += ["", f"Reference: {docs.md(reference)}"]
    return "\n".join(page) + "\n", plots


def tutorials_index() -> str:
    from physml_lang.tools.reference_docs import capability, md

    lines = ["# Tutorials", "",
             "Each tutorial is an example of the repository, checked and run when this site is "
             "built, with settings reduced to take seconds: its source, the rows it prints and "
             "its plots. Run the full example with `physml run examples/NAME.phys`.", ""]  # fmt: skip
    lines += [f"- [{md(capability(EXAMPLES / f'{t.example}.phys'))}]({t.example}.md) "
              f"(`examples/{t.example}.phys`)" for t in TUTORIALS]  # fmt: skip
    return "\n".join(lines) + "\n"


def _add(files: Files, config: MkDocsConfig, uri: str, content: str | bytes) -> None:
    existing = files.get_file_from_path(uri)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, uri, content=content))


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from pygments.formatters import HtmlFormatter

    from physml_lang.catalogue import CATALOGUE
    from physml_lang.check.tasks import STATEMENTS
    from physml_lang.tools import reference_docs as docs

    grammar = (ROOT / "grammar" / "physml.lark").read_text()
    _add(files, config, "index.md", readme_page())
    _add(files, config, "language.md", docs.language_page(grammar, STATEMENTS))
    _add(files, config, "catalogue.md", docs.catalogue_page(CATALOGUE))
    _add(files, config, "validation.md",
         docs.validation_page(EXAMPLES, (ROOT / "docs" / "long_runs.md").read_text()))
    _add(files, config, "css/pygments.css", HtmlFormatter().get_style_defs(".codehilite"))
    _add(files, config, "tutorials/index.md", tutorials_index())
    for tutorial in TUTORIALS:
        with tempfile.TemporaryDirectory(prefix="physml-docs-") as work:
            page, plots = run_tutorial(tutorial, Path(work))
        _add(files, config, f"tutorials/{tutorial.example}.md", page)
        for name, png in plots.items():
            _add(files, config, f"tutorials/{tutorial.example}/{name}", png)
    return files
