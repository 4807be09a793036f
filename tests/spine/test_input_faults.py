"""Faults a hostile or careless user reaches, each a located diagnostic (issue classes of the
fuzzing report): non-finite observables, complex-valued measures, unwritable output folders,
imports of files that are not models, infinite temperatures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError

ROOT = Path(__file__).resolve().parents[2]

MODEL = """
model Ising(L: int = 4, J: real = 1.0) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
}
"""


def _run(measure: str, scan: str = "let T = 2.0", out: Path | None = None):
    text = MODEL + ("run r {\n    sampler metropolis(chains = 4, sweeps = 40, burn_in = 5)\n"
                    f"    {scan}\n    measure {measure}\n}}\n")  # fmt: skip
    return physml_lang.compile(text).run(out=out)


def test_a_non_finite_observable_is_located_and_keeps_finished_rows(tmp_path):
    with pytest.raises(PhysmlError) as err:  # sqrt(J) is real at J = 1, NaN at J = -1
        _run("e = energy / sites, c = sqrt(J)", "let T = 2.0\n    scan J in [1.0, -1.0]",
             tmp_path)  # fmt: skip
    d = err.value.diagnostics[0]
    assert d.code == "P700" and "'c'" in d.message
    assert (d.span.line, d.span.column) == (11, 33)  # the measure c = ...
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert [r["J"] for r in rows] == [1.0]  # the finished point is on disk


def test_unwritable_output_folder_is_a_diagnostic_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PhysmlError) as err:
        _run("e = energy / sites", out=blocker / "out")
    assert err.value.diagnostics[0].code == "P604"


def test_cli_reports_an_unwritable_output_folder_without_a_traceback(tmp_path):
    (tmp_path / "m.phys").write_text(MODEL + "run r {\n    sampler metropolis(chains = 2, "
                                     "sweeps = 5)\n    let T = 2\n}\n")  # fmt: skip
    (tmp_path / "file").write_text("x")
    p = subprocess.run([sys.executable, "-m", "physml_lang.cli", "run", "m.phys", "--out",
                        "file/out", "--quiet"], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 1
    assert "Traceback" not in p.stderr + p.stdout
    assert "P604" in p.stderr


def test_huge_user_text_gives_a_short_diagnostic(tmp_path):
    """A 200 000-character name: the message quotes a clipped piece, the source line a window."""
    (tmp_path / "tok.phys").write_text("model M(x: real = " + "a" * 200_000 + ") {}\n")
    p = subprocess.run([sys.executable, "-m", "physml_lang.cli", "check", "tok.phys"],
                       cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 1 and "P200" in p.stderr
    assert len(p.stderr) < 2000


def test_power_towers_and_bad_random_arguments_are_located(tmp_path):
    """0*2^2^2^2^2^2 used to hang sympy; normal("a", 1j) was a TypeError traceback."""
    cases = {
        "0*2^2^2^2^2^2 * sum(s[i] for i in sites)": "too large to evaluate",
        "sum(s[i]^100 for i in sites)": "exponent",
    }
    for term, words in cases.items():
        text = MODEL.replace("for (i, j) in bonds)", f"for (i, j) in bonds) + {term}")
        with pytest.raises(PhysmlError) as err:
            physml_lang.compile(text).check()
        d = err.value.diagnostics[0]
        assert d.code == "P407" and words in d.message and d.span is not None
    for call, words in (('normal("a", 1j, seed = 1)', "mean of normal"),
                        ("uniform(2, 1, seed = 1)", "low <= high")):  # fmt: skip
        text = MODEL.replace("    energy E", f"    param K on bonds = {call}\n    energy E")
        with pytest.raises(PhysmlError) as err:
            physml_lang.load(text).check()
        assert words in err.value.diagnostics[0].message
        assert err.value.diagnostics[0].span is not None


def test_an_internal_error_is_one_line_and_its_own_exit_code(monkeypatch, capsys):
    """A bug in physml (here: a planted exception) is reported as such, never as a bare
    traceback, with exit code 3 and the file it happened in."""
    from physml_lang import cli

    def broken(args):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(cli, "_dispatch", broken)
    monkeypatch.delenv("PHYSML_DEBUG", raising=False)
    assert cli.main(["check", "model.phys"]) == cli.INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert "model.phys: internal error (a bug in physml" in err and "ZeroDivisionError" in err
    assert "Traceback" not in err


def test_a_run_larger_than_memory_is_refused_before_any_allocation(monkeypatch):
    """L = 46340 (2.1e9 sites, under the site limit) used to be killed by the kernel with no
    message: the estimate from the model IR refuses it, located at the run."""
    text = MODEL + ("run r {\n    model Ising(L = 46340)\n    sampler metropolis(chains = 16, "
                    "sweeps = 100)\n    let T = 2\n}\n")  # fmt: skip
    with pytest.raises(PhysmlError) as err:
        physml_lang.compile(text).run()
    d = err.value.diagnostics[0]
    assert d.code == "P409" and "GiB of memory" in d.message and d.span is not None
    # and the estimate scales: a small run refused when little memory is left
    from physml_lang.runtime import device

    monkeypatch.setattr(device, "available_memory", lambda dev: 1 << 10)
    with pytest.raises(PhysmlError) as err:
        _run("e = energy / sites")
    assert "available" in err.value.diagnostics[0].message


def test_deep_nesting_is_located_at_the_deepest_expression():
    text = "model M(x: real = " + "1^" * 2000 + "1) {}\n"
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(text)
    d = err.value.diagnostics[0]
    assert d.code == "P801" and d.span is not None and d.span.line == 1
    assert d.span.column > 18  # inside the expression, not the file's start
    assert len(d.render()) < 1000


@pytest.mark.parametrize("option", ["step_size = 1e309", "step_size = -1e309"])
def test_infinite_or_nan_options_are_located(option):
    """`t_span = 1e309`-like options were accepted as inf; every option schema now refuses a
    non-finite number where it is written."""
    text = (ROOT / "examples" / "u1_2d_hmc.phys").read_text().replace("step_size = 0.1", option)
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(text).check()
    d = err.value.diagnostics[0]
    assert d.code == "P402" and "finite" in d.message and d.span is not None


def test_check_reports_every_independent_error_at_once():
    """One error per model and per run, not only the first; the same error reached twice is
    reported once."""
    text = (Path(__file__).resolve().parents[1] / "golden" / "bad"
            / "several_independent_errors.phys").read_text()  # fmt: skip
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(text).check()
    codes = [d.code for d in err.value.diagnostics]
    assert codes == ["P500", "P406", "P401", "P208"]
    assert all(d.span is not None for d in err.value.diagnostics)
