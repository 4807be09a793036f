"""vmc runs under the run driver: rows on disk after a kill, --resume (bit-identical on the CPU),
checkpoints from other settings or truncated, interrupts. The runs
are pinned to the CPU, where resuming is bit-identical."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError, PhysmlWarning, RunInterrupted

CPU = "cpu"
SRC = """
import TFIM
learner psi = rbm(alpha = 1)
run gs {
    model TFIM(L = 6)
    learner psi
    sampler metropolis(chains = 8, initial_burn_in = 5)
    optimize psi via sr(lr = 0.05, diag_shift = 0.01)
    iterations ITERATIONS
    samples 64, final = 256
    checkpoint every = 5
    scan g in [0.5, 1.0]
    measure energy, magnetization
}
"""


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """Plots take most of the time of these tiny runs in this process; they are not tested."""
    from physml_lang.runtime import outputs
    from physml_lang.runtime.quantum import tasks

    monkeypatch.setattr(tasks, "convergence_plot", lambda *a, **k: None)
    monkeypatch.setattr(outputs, "plot_rows", lambda *a, **k: None)


def _program(tmp_path: Path, iterations: int) -> Path:
    path = tmp_path / "vmc.phys"
    path.write_text(SRC.replace("ITERATIONS", str(iterations)))
    return path


def test_kill_mid_scan_keeps_finished_rows_and_resume_finishes_it_exactly(
        tmp_path, kill_when, results_on_disk):
    """SIGKILL while the second point optimises (its checkpoint on disk): summary.json and
    results.csv hold the first point's row; --resume reuses it, continues the second point from
    its checkpoint, and ends with the rows of an uninterrupted run with the same seed (also
    saved every 0.05 s by --checkpoint-every)."""
    src = _program(tmp_path, 150)
    reference = physml_lang.load(src).run(device=CPU, out=tmp_path / "ref", seed=3).rows
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", "3", "--device", "cpu", "--quiet", "--checkpoint-every", "0.05"]  # fmt: skip
    ckpt = out / "checkpoint.safetensors"  # a row done, point 1 saved
    kill_when(cmd, lambda: (out / "summary.json").is_file() and ckpt.is_file())
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and len(rows) == len(csv_rows) == 1
    assert rows == reference[:1]
    physml_lang.load(src).run(device=CPU, out=out, seed=3, resume=True)  # as run ... --resume
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows) == 2
    assert rows == reference
    history = (out / "history-1.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 150 and history[1].startswith("0")


def _interrupt_second_point(monkeypatch, program, out, **kw) -> None:
    """Run ``program`` into ``out`` with a Ctrl-C as its second point starts: the first row and
    the checkpoint (at the second point) stay on disk."""
    from physml_lang.runtime.quantum import tasks

    original = tasks.VMCPoint.step

    def second_point_interrupted(self):
        if self.k == 1:
            raise KeyboardInterrupt
        return original(self)

    with monkeypatch.context() as m:
        m.setattr(tasks.VMCPoint, "step", second_point_interrupted)
        with pytest.raises(RunInterrupted) as exc:
            program.run(device=CPU, out=out, **kw)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "1 finished row(s) kept" in d.message and "--resume" in d.hint


def test_a_finished_run_leaves_no_checkpoint(tmp_path, results_on_disk):
    """The checkpoint is removed when a run is complete: --resume of a finished run computes it
    afresh (the same rows); other iterations are another run (--set iterations does not
    extend a finished one)."""
    program = physml_lang.load(_program(tmp_path, 6))
    out = tmp_path / "out"
    first = program.run(device=CPU, out=out, seed=1).rows
    assert not (out / "checkpoint.safetensors").exists()
    again = program.run(device=CPU, out=out, seed=1, resume=True)
    assert "resumed" not in again.summary and again.rows == first
    assert results_on_disk(out)[0] == first
    assert len((out / "history-0.csv").read_text().strip().splitlines()) == 1 + 6


def test_resume_with_other_settings_says_what_differs(tmp_path, monkeypatch):
    program = physml_lang.load(_program(tmp_path, 5))
    out = tmp_path / "out"
    _interrupt_second_point(monkeypatch, program, out, seed=1)
    assert (out / "checkpoint.safetensors").is_file()
    with pytest.raises(PhysmlError) as exc:
        program.run(device=CPU, out=out, seed=1, resume=True, sets={"samples": 32})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other settings" in d.message and "samples: 64 -> 32" in d.message
    assert d.span is not None and d.span.line == 4  # the run block
    with pytest.raises(PhysmlError, match="seed: 1 -> 2"):
        program.run(device=CPU, out=out, seed=2, resume=True)
    with pytest.raises(PhysmlError, match="iterations: 5 -> 10"):
        program.run(device=CPU, out=out, seed=1, resume=True, sets={"iterations": 10})


def test_a_truncated_checkpoint_is_a_located_error(tmp_path, monkeypatch):
    program = physml_lang.load(_program(tmp_path, 5))
    out = tmp_path / "out"
    _interrupt_second_point(monkeypatch, program, out, seed=1)
    path = out / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PhysmlError) as exc:
        program.run(device=CPU, out=out, seed=1, resume=True)
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "truncated or corrupt" in d.message and d.hint
    assert d.span is not None


def test_set_resume_is_the_old_spelling_of_the_resume_flag(tmp_path, monkeypatch):
    program = physml_lang.load(_program(tmp_path, 5))
    rows = program.run(device=CPU, out=tmp_path / "ref", seed=1).rows
    out = tmp_path / "out"
    _interrupt_second_point(monkeypatch, program, out, seed=1)
    with pytest.warns(PhysmlWarning) as record:
        result = program.run(device=CPU, out=out, seed=1, sets={"resume": True})
    d = next(w.message.diagnostic for w in record if isinstance(w.message, PhysmlWarning))
    assert d.code == "P403" and "--set resume" in d.message and d.hint == "use --resume"
    assert d.span is not None
    assert result.summary["resumed"] and result.rows == rows
    with pytest.raises(PhysmlError, match="true or false"):
        program.run(device=CPU, out=out, sets={"resume": 3})


def test_an_interrupt_keeps_the_finished_rows_and_says_resume(tmp_path, monkeypatch, results_on_disk):
    out = tmp_path / "out"
    _interrupt_second_point(monkeypatch, physml_lang.load(_program(tmp_path, 5)), out)
    rows, csv_rows, summary = results_on_disk(out)
    assert len(rows) == len(csv_rows) == 1 and not summary["complete"]


def test_unknown_set_lists_what_a_vmc_run_knows(tmp_path):
    program = physml_lang.load(_program(tmp_path, 5))
    with pytest.raises(PhysmlError) as exc:
        program.run(device=CPU, sets={"iteratons": 3})
    d = exc.value.diagnostics[0]
    assert d.code == "P205" and "iteratons" in d.message and "iterations" in d.hint
    with pytest.raises(PhysmlError, match="hidden"):  # an option of another learner
        program.run(device=CPU, sets={"hidden": 3})
    # one --set reaches every run of a file: an exact run ignores a vmc run's options
    exact = physml_lang.load(Path(__file__).parents[2] / "examples" / "tfim.phys")
    row = exact.run("spectrum", device=CPU, sets={"iterations": 5, "levels": 1, "L": 6}).rows[0]
    assert "gap" not in row and abs(row["energy"]["mean"] - -7.727406610312546) < 1e-8


EXACT_SCAN = """
import TFIM
run spectrum {
    model TFIM(L = 8)
    exact levels = 2
    scan g in [0.5, 1.0, 1.5]
    measure energy, magnetization
}
"""


def test_an_exact_scan_writes_each_point_and_resumes_after_an_interrupt(tmp_path, monkeypatch,
                                                                       results_on_disk):  # fmt: skip
    """An exact run goes through the driver's scan: Ctrl-C during its second diagonalisation
    keeps the first row on disk (and a checkpoint between points); --resume computes only the
    missing points and ends with the rows of an uninterrupted run, leaving no checkpoint."""
    from physml_lang.runtime.quantum import tasks

    path = tmp_path / "exact.phys"
    path.write_text(EXACT_SCAN)
    program = physml_lang.load(path)
    reference = program.run(device=CPU, out=tmp_path / "ref").rows
    assert [r["g"] for r in reference] == [0.5, 1.0, 1.5]
    assert reference[1]["gap"]["stderr"] == 0 and reference[1]["gap"]["mean"] > 0
    out, original, steps = tmp_path / "out", tasks.ExactPoint.step, []

    def second_point_interrupted(self):
        steps.append(self.k)
        if self.k == 1 and len(steps) == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(tasks.ExactPoint, "step", second_point_interrupted)
    with pytest.raises(RunInterrupted) as exc:
        program.run(device=CPU, out=out)
    assert "1 finished row(s) kept" in exc.value.diagnostics[0].message
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and rows == reference[:1] and len(csv_rows) == 1
    assert (out / "checkpoint.safetensors").is_file()
    result = program.run(device=CPU, out=out, resume=True)
    assert steps == [0, 1, 1, 2]  # the first point is not diagonalised again
    assert result.summary["resumed"] and result.rows == reference
    assert results_on_disk(out)[0] == reference and not (out / "checkpoint.safetensors").exists()
