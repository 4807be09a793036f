"""The command-line contract (design.md, "Contracts every issue builds on"): ``physml run`` writes
summary.json, results.csv and plots; ``--set``, ``--seed`` and ``--device`` behave as specified;
``physml check`` accepts every example and every standard-library model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from frontend_util import REPO, TINY, physml

from physml_lang.api import stdlib_index

OBSERVABLES = ["e", "m", "specific_heat", "binder"]


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.phys"
    path.write_text(TINY)
    return path


def run(program: Path, out: Path, *extra: str) -> dict:
    code, stdout, err = physml("run", str(program), "--out", str(out), "--quiet", *extra)
    assert code == 0, err
    assert "Traceback" not in stdout + err
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def scan_result(tmp_path_factory) -> tuple[dict, Path]:
    """One full scan, shared by the tests that only read its outputs."""
    folder = tmp_path_factory.mktemp("scan")
    path = folder / "tiny.phys"
    path.write_text(TINY)
    out = folder / "out"
    return run(path, out, "--device", "cpu", "--seed", "5"), out


def test_summary_json_contract(scan_result):
    summary, _ = scan_result
    assert {"run", "params", "device", "seed", "rows"} <= set(summary)
    assert summary["run"] == "scan"
    assert summary["params"] == {"L": 4, "J": 1.0, "h": 0.0}
    assert summary["device"] == "cpu"
    assert summary["seed"] == 5
    rows = summary["rows"]
    assert [r["T"] for r in rows] == [1.5, 2.5, 3.5]
    for r in rows:
        for name in OBSERVABLES:
            assert {"mean", "stderr"} <= set(r[name]), name
            assert isinstance(r[name]["mean"], float)
            assert r[name]["stderr"] is None or r[name]["stderr"] >= 0
        assert -2.0 <= r["e"]["mean"] <= 2.0  # energy per site of the square Ising model
        assert 0.0 <= r["m"]["mean"] <= 1.0


def test_results_csv_has_the_same_rows(scan_result):
    summary, out = scan_result
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(summary["rows"])
    for line, row in zip(table, summary["rows"]):
        assert float(line["T"]) == row["T"]
        for name in OBSERVABLES:
            assert float(line[f"{name}_mean"]) == pytest.approx(row[name]["mean"], rel=1e-12)
            if row[name]["stderr"] is not None:
                assert float(line[f"{name}_stderr"]) == pytest.approx(
                    row[name]["stderr"], rel=1e-12
                )


def test_scan_writes_a_png_plot(scan_result):
    _, out = scan_result
    pngs = sorted(out.glob("*.png"))
    assert pngs, "a scan must write a plot"
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_set_scan_variable_gives_one_row(program: Path, tmp_path: Path):
    summary = run(program, tmp_path / "o", "--set", "T=2.0")
    assert [r["T"] for r in summary["rows"]] == [2.0]


def test_set_model_parameter(program: Path, tmp_path: Path):
    summary = run(program, tmp_path / "o", "--set", "L=6", "--set", "T=2.0")
    assert summary["params"]["L"] == 6
    assert summary["params"]["J"] == 1.0


def test_set_sampler_option(program: Path, tmp_path: Path):
    summary = run(program, tmp_path / "o", "--set", "chains=2", "--set", "T=2.0")
    assert summary["sampler"]["chains"] == 2


def test_set_unknown_name_is_a_clean_error(program: Path, tmp_path: Path):
    code, out, err = physml("run", str(program), "--out", str(tmp_path / "o"), "--set", "Lx=8")
    assert code == 1
    assert "Traceback" not in out + err
    assert "error[P205]" in err
    assert "did you mean 'L'?" in err
    assert not (tmp_path / "o" / "summary.json").exists()


@pytest.mark.parametrize("item", ["T", "=3", "1x=3"])
def test_set_malformed_is_a_clean_error(program: Path, tmp_path: Path, item: str):
    code, out, err = physml("run", str(program), "--out", str(tmp_path / "o"), "--set", item)
    assert code == 1
    assert "Traceback" not in out + err
    assert "error[P106]" in err


def test_seed_reproducibility(program: Path, tmp_path: Path):
    args = ("--set", "T=2.5", "--device", "cpu")
    a = run(program, tmp_path / "a", "--seed", "11", *args)
    b = run(program, tmp_path / "b", "--seed", "11", *args)
    c = run(program, tmp_path / "c", "--seed", "12", *args)
    assert a["rows"] == b["rows"]
    assert a["rows"] != c["rows"]
    assert (tmp_path / "a" / "results.csv").read_text() == (
        tmp_path / "b" / "results.csv"
    ).read_text()


def test_device_cpu(program: Path, tmp_path: Path):
    assert run(program, tmp_path / "o", "--device", "cpu", "--set", "T=2.0")["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_a_clean_error(program: Path, tmp_path: Path):
    code, out, err = physml("run", str(program), "--out", str(tmp_path / "o"), "--device", "cuda")
    assert code == 1
    assert "Traceback" not in out + err
    assert "no CUDA device" in err
    assert not (tmp_path / "o").exists()


def test_missing_file_is_a_clean_error(tmp_path: Path):
    for command in ("check", "run", "compile"):
        code, out, err = physml(command, str(tmp_path / "nope.phys"))
        assert code == 1
        assert "Traceback" not in out + err
        assert "error[P600]: file not found" in err


def test_run_output_summary_printed(program: Path, tmp_path: Path):
    code, out, err = physml("run", str(program), "--out", str(tmp_path / "o"), "--quiet",
                            "--set", "T=2.0")  # fmt: skip
    assert code == 0, err
    assert "run scan (Ising, metropolis, device" in out
    assert "summary.json" in out


@pytest.mark.slow  # a fresh interpreter importing torch: ~10 s on a 2-core machine
def test_console_script_prints_the_golden_text():
    """The installed ``physml`` command itself (not only cli.main): same text, exit code 1."""
    import shutil
    import subprocess

    exe = shutil.which("physml")
    if exe is None:
        pytest.skip("the physml console script is not on PATH")
    bad = REPO / "tests" / "golden" / "bad"
    proc = subprocess.run([exe, "check", "name_unknown_lattice.phys"], cwd=bad,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (bad / "name_unknown_lattice.txt").read_text()


# ---------------------------------------------------------------- check: examples and stdlib


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.phys")), ids=lambda p: p.stem)
def test_check_examples(path: Path):
    code, out, err = physml("check", str(path))
    assert code == 0, err
    assert out.startswith("ok  ")


STDLIB_KNOWN_BUGS: dict[str, str] = {}  # name -> reason: strict xfail until fixed


def _stdlib_models():
    for name in sorted(stdlib_index()):
        marks = []
        if name in STDLIB_KNOWN_BUGS:
            marks.append(pytest.mark.xfail(reason=STDLIB_KNOWN_BUGS[name], strict=True))
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("model", list(_stdlib_models()))
def test_check_stdlib_model(model: str, tmp_path: Path):
    """``import MODEL``: the whole front end, the model's compiler and its symmetry checks."""
    path = tmp_path / "uses_stdlib.phys"
    path.write_text(f"import {model}\n")
    code, out, err = physml("check", str(path))
    assert code == 0, err
    assert f"ok  model {model}: " in out


def test_stdlib_spin_model_runs(tmp_path: Path):
    """A tiny sampling run of an imported classical model, through the command line."""
    path = tmp_path / "uses_stdlib.phys"
    path.write_text(
        "import Potts\n\nrun tiny {\n    model Potts(L = 6)\n"
        "    sampler metropolis(chains = 2, sweeps = 10, burn_in = 2)\n"
        "    let T = 2.0\n    measure energy\n}\n"
    )
    code, out, err = physml("check", str(path))
    assert code == 0, err
    assert "ok  run tiny: sample with model Potts" in out
