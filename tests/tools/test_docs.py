"""The documentation site: the generated reference covers every grammar rule, registry entry and
option; the validation table has a row per example with claims; the site builds strictly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark

from physml_lang.catalogue import CATALOGUE
from physml_lang.check.tasks import STATEMENTS
from physml_lang.tools import reference_docs as docs

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR = (ROOT / "grammar" / "physml.lark").read_text()
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def catalogue_page() -> str:
    return docs.catalogue_page(CATALOGUE)


def _section(page: str, heading_id: str) -> str:
    """The text of a catalogue entry, from its heading to the next heading."""
    start = page.rindex("\n", 0, page.index(f"{{#{heading_id}}}"))
    end = page.find("\n#", start + 1)
    return page[start:end if end >= 0 else None]


def test_catalogue_page_has_every_registry_entry_and_option(catalogue_page):
    ids = re.findall(r"\{#([\w-]+)\}", catalogue_page)
    assert len(ids) == len(set(ids)), "entry anchors must be unique"
    count = 0
    for registry in CATALOGUE:
        assert f"\n## {registry.kind}\n" in catalogue_page
        for entry in registry:
            text = _section(catalogue_page, docs.entry_id(registry.kind, entry))
            assert docs.md(entry.name) in text.strip().partition("\n")[0]
            if entry.doc:
                assert docs.md(entry.doc) in text
            for name, info in entry.schema.model_fields.items():
                assert f"| `{name}` |" in text, (entry.title, name)
                if info.description:
                    assert docs.md(info.description) in text
            count += 1
    assert count == sum(len(r) for r in CATALOGUE) > 150


def test_option_type_default_and_range(catalogue_page):
    lattice = _section(catalogue_page, "samplers-metropolis-lattice")
    assert re.search(r"\| `chains` \| <code>int</code> \| <code>64</code> \| 1 ≤ x ≤ 1000000 \|",
                     lattice)  # fmt: skip
    assert "| `burn_in` | <code>int</code> | <code>500</code> | ≥ 0 |" in lattice
    assert "<code>random&#124;ordered</code>" in lattice  # a Literal's choices
    gauge = _section(catalogue_page, "samplers-metropolis-gauge")
    assert "0 &lt; x ≤ 3.14159" in gauge  # gt and le
    gibbs = next(e for e in CATALOGUE.samplers if e.name == "gibbs")
    assert docs.option_range(gibbs.schema.model_fields["update"]) == "one of sequential, parallel"


def test_language_page_has_every_rule_keyword_and_run_statement():
    page = docs.language_page(GRAMMAR, STATEMENTS)
    parsed = Lark(GRAMMAR, parser="lalr")
    rules = {str(r.origin.name) for r in parsed.rules} - {""}
    shown = {rule.name for s in docs.grammar_sections(GRAMMAR) for rule in s.rules}
    assert {r for r in rules if not r.startswith("__")} <= shown
    for word in ("model", "lattice", "field", "symmetry", "learner", "respecting", "run", "via"):
        assert f"`{word}`" in page
    for word in STATEMENTS:
        assert f"| `{word}` |" in page
    assert "model_decl : \"model\" NAME [param_list]" in page
    assert "-> " not in page  # tree aliases are the parser's business, not the reader's


def test_validation_table_has_a_row_per_example_with_claims():
    long_text = (ROOT / "docs" / "long_runs.md").read_text()
    rows = docs.validation_rows(EXAMPLES, long_text)
    claimed = sorted(p.stem for p in EXAMPLES.glob("*.phys") if docs.claims(p))
    assert [r["example"] for r in rows] == claimed and len(claimed) > 30
    ising = next(r for r in rows if r["example"] == "ising2d")
    assert "specific_heat = 0.750 ± 0.016" in ising["physml"]
    assert "Onsager" in ising["reference"] and ising["tested"] == "slow stage of CI"
    rbm = next(r for r in rows if r["example"] == "rbm_ising")
    assert rbm["tested"].startswith("long runs")
    page = docs.validation_page(EXAMPLES, long_text)
    assert sum(line.startswith("| `") for line in page.splitlines()) == len(rows)
    assert "test_tfim_l20_rbm_relative_error_1e4" in page  # the long validations' figures


def test_long_runs_keep_the_latest_row_of_a_test():
    text = (ROOT / "docs" / "long_runs.md").read_text()
    runs = {r.test.rpartition("[")[2]: r for r in docs.long_runs(text)}
    assert runs["inverse_ising-default]"].outcome == "passed"  # rerun after the recorded failure


def test_claims_parse_and_refuse_an_unreadable_line(tmp_path):
    found = docs.claims(EXAMPLES / "ising2d.phys")
    assert docs.claim_text(found[0]) == "T = 1.5: abs_magnetization = 0.98649 ± 0.00007"
    assert docs.last_digit_unit("0.0740") == pytest.approx(1e-4)
    bad = tmp_path / "bad.phys"
    bad.write_text("# Claims (seed 0):\n#   energy is about -1\n")
    with pytest.raises(docs.ClaimError, match="bad.phys:2"):
        docs.claims(bad)


def test_markdown_escaping_is_literal():
    assert docs.md("a | b * c_d [x] <y>") == r"a \| b \* c\_d \[x\] &lt;y&gt;"
    assert docs.anchor("Runs (tasks)") == "runs-tasks"


@pytest.mark.slow
def test_site_builds_strictly_with_executed_tutorials(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                           str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "getting_started.html", "language.html", "catalogue.html",
                 "validation.html", "diagnostics.html", "tutorials/ising2d.html",
                 "tutorials/ising2d/plot.png", "css/pygments.css"):  # fmt: skip
        assert (site / page).is_file(), page
    tutorial = (site / "tutorials" / "ising2d.html").read_text()
    assert "reduced settings" in tutorial and "energy_per_site" in tutorial
    assert "wolff" in (site / "catalogue.html").read_text()
    assert not list((ROOT / "docs").rglob("*.png")), "the build must not write the source tree"
