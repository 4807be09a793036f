"""Gauge tasks on the run driver: rows on disk after each point, checkpoints of a point's
chains and of a learner's training, ``--resume`` bit-identical on the CPU, a P602 for other
settings, old option names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

import physml_lang
from physml_lang.diagnostics import PhysmlError, PhysmlWarning, RunInterrupted
from physml_lang.runtime import driver
from physml_lang.runtime.gauge import tasks

SCAN = """
import U1
run scan {
    model U1(L = 4)
    sampler hmc(step_size = 0.2, n_steps = 4, chains = 4, sweeps = SWEEPS, burn_in = 20)
    scan beta in [1.0, 2.0]
    measure plaquette, Q2 = topological_charge^2
}
"""

# every kind of chain state: complex su2 links, z2 links with z2 matter (local updates), u1 hmc
SMALL = {
    "su2_heatbath": """
import SU2
run r {
    model SU2(L = 4)
    sampler heatbath(chains = 3, sweeps = 12, burn_in = 4, thin = 2)
    scan beta in [1.0, 2.0]
    measure plaquette, w = wilson_loop(1, 2)
}
""",
    "higgs_metropolis": """
model Z2Higgs2D(L: int = 4, beta: real = 0.5, kappa: real = 0.5) {
    lattice square(L, L, boundary = periodic)
    field U: z2 on links
    field phi: spin on sites
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * U[x + e1, 0] * U[x, 1]
    action S = -beta * sum(P[x] for x in sites)
               - kappa * sum(phi[x] * U[x, mu] * phi[x + e_mu] for (x, mu) in links)
}
run r {
    model Z2Higgs2D(L = 4, beta = 0.5)
    sampler metropolis(hits = 2, chains = 3, sweeps = 10, burn_in = 3)
    scan kappa in [0.25, 0.5]
    measure plaquette, link = sum(phi[x] * U[x, mu] * phi[x + e_mu] for (x, mu) in links) / 32
}
""",
    "u1_hmc": SCAN.replace("SWEEPS", "10"),
}


# two learners, each a scan point of the regress run (one step = one epoch)
REGRESS = """
import U1
learner f = lcnn(channels = [2]) respecting gauge, translation
learner g = lcnn(channels = [3]) respecting gauge, translation
run r {
    model U1(L = 4)
    scan beta in [1.0, 2.0]
    regress f, g, target = wilson_loop(1, 1), samples = 32, test_samples = 8, test_L = [6],
            epochs = EPOCHS, sweeps = 2
}
"""


def _program(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gauge.phys"
    path.write_text(text)
    return path


def _same(rows: list[dict], reference: list[dict]) -> bool:
    """The same numbers to the last bit (NaN equal to NaN)."""
    return json.dumps(rows) == json.dumps(reference)


def test_kill_mid_point_keeps_finished_rows_and_resume_finishes_exactly(
        tmp_path, kill_when, saved_after_a_row, results_on_disk):
    """SIGKILL while the second point samples, after a mid-point checkpoint: summary.json and
    results.csv agree on the finished row; a resume with other settings is a P602; --resume
    finishes with the rows of an uninterrupted run and removes the checkpoint."""
    src = _program(tmp_path, SCAN.replace("SWEEPS", "1500"))
    reference = physml_lang.load(src).run(out=tmp_path / "ref", seed=3).rows
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", "3", "--quiet", "--checkpoint-every", "0.2"]  # fmt: skip
    ckpt = out / "checkpoint.safetensors"
    kill_when(cmd, lambda: saved_after_a_row(out))
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and len(rows) == len(csv_rows) == 1
    assert _same(rows, reference[:1]) and float(csv_rows[0]["beta"]) == 1.0
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(src).run(out=out, seed=3, resume=True, sets={"n_steps": 5})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other settings" in d.message and "sampler:" in d.message
    assert d.span is not None
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows) == 2
    assert _same(rows, reference)
    assert not ckpt.exists()


@pytest.mark.parametrize("case", sorted(SMALL))
def test_resume_mid_point_is_bit_identical(tmp_path, monkeypatch, case):
    """Interrupted right after a mid-point checkpoint (links, matter, random stream,
    measurements, sweep counter), a resumed run ends with the uninterrupted run's rows."""
    program = physml_lang.load(_program(tmp_path, SMALL[case]))
    reference = program.run(seed=4).rows
    original = driver.save_checkpoint

    def save_then_stop(path, checkpoint, settings):
        original(path, checkpoint, settings)
        series = [t for n, t in checkpoint.tensors.items() if n.startswith("series/")]
        if checkpoint.state["point"] == 1 and series and len(series[0]) == 2:  # second point
            raise KeyboardInterrupt

    monkeypatch.setattr(driver, "save_checkpoint", save_then_stop)
    out = tmp_path / "out"
    with pytest.raises(RunInterrupted) as exc:
        program.run(out=out, seed=4, checkpoint_seconds=1e-9)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "1 finished row(s)" in d.message and "--resume" in d.hint
    monkeypatch.setattr(driver, "save_checkpoint", original)
    resumed = program.run(out=out, seed=4, resume=True, checkpoint_seconds=1e-9)
    assert resumed.summary["resumed"] and _same(resumed.rows, reference)
    assert not (out / "checkpoint.safetensors").exists()


def test_an_interrupt_keeps_the_finished_points(tmp_path, monkeypatch, results_on_disk):
    original, points = tasks.GaugeChains.step, set()

    def second_point_interrupted(self):
        points.add(id(self))
        if len(points) == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(tasks.GaugeChains, "step", second_point_interrupted)
    out = tmp_path / "out"
    with pytest.raises(RunInterrupted) as exc:
        physml_lang.load(_program(tmp_path, SMALL["u1_hmc"])).run(out=out)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "1 finished row(s) kept" in d.message
    rows, csv_rows, summary = results_on_disk(out)
    assert len(rows) == len(csv_rows) == 1 and not summary["complete"]
    assert "interrupted" not in summary  # the driver says what was kept


def test_old_option_names_still_work_with_a_warning(tmp_path):
    """``trajectories`` (hmc) and ``step`` (metropolis) are now ``sweeps`` and ``step_size``:
    accepted with a located P403, in the program and on the command line (``--set``)."""
    new = physml_lang.load(_program(tmp_path, SMALL["u1_hmc"])).run(seed=2).rows
    old_src = SMALL["u1_hmc"].replace("sweeps = 10", "trajectories = 10")
    with pytest.warns(PhysmlWarning) as record:
        old = physml_lang.load(old_src).run(seed=2)
    d = record[0].message.diagnostic
    assert d.code == "P403" and "'trajectories'" in d.message and "'sweeps'" in d.message
    assert d.span is not None and old.summary["sampler"]["sweeps"] == 10
    assert _same(old.rows, new)
    with pytest.warns(PhysmlWarning, match="--set trajectories"):
        short = physml_lang.load(_program(tmp_path, SMALL["u1_hmc"])).run(
            seed=2, sets={"trajectories": 4, "beta": 1.0})  # fmt: skip
    assert short.summary["sampler"]["sweeps"] == 4 and len(short.rows) == 1
    metro = SMALL["higgs_metropolis"].replace("hits = 2", "hits = 2, step = 0.5")
    with pytest.warns(PhysmlWarning, match="'step_size'"):
        assert physml_lang.load(metro).check()


def _training_saved(out: Path) -> bool:
    """The first learner's rows are on disk and the second learner's training was checkpointed
    after at least one epoch (parameters and Adam's moments to restore)."""
    ckpt = out / "checkpoint.safetensors"
    if not ((out / "summary.json").is_file() and ckpt.is_file()):
        return False
    try:
        with safe_open(str(ckpt), framework="pt") as f:
            state = json.loads(f.metadata()["state"])
    except Exception:  # noqa: BLE001 - a file being replaced: not ready yet
        return False
    return state["point"] == 1 and state["done"] > 0 and len(state["rows"]) == 2


def test_killed_regression_resumes_to_the_uninterrupted_rows(tmp_path, kill_when,
                                                              results_on_disk):  # fmt: skip
    """SIGKILL while the second learner trains, after a checkpoint of its training: the first
    learner's rows are on disk, a resume with another learning rate is a P602, and --resume
    finishes with exactly the rows of an uninterrupted run (same seed)."""
    src = _program(tmp_path, REGRESS.replace("EPOCHS", "400"))
    reference = physml_lang.load(src).run(out=tmp_path / "ref", seed=3).rows
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", "3", "--quiet", "--checkpoint-every", "0.2"]  # fmt: skip
    kill_when(cmd, lambda: _training_saved(out))
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and len(rows) == len(csv_rows) == 2
    assert _same(rows, reference[:2]) and {r["learner"] for r in rows} == {"f"}
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(src).run(out=out, seed=3, resume=True, sets={"lr": 0.01})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other settings" in d.message and "options:" in d.message
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows) == 4
    assert _same(rows, reference)
    assert not (out / "checkpoint.safetensors").exists()
