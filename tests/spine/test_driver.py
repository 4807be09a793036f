"""The run driver: results on disk after a kill, resume, checkpoints, interrupts, threads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import physml_lang
from physml_lang.diagnostics import PhysmlError, RunInterrupted
from physml_lang.runtime.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SCAN = """
import Ising
run scan {
    model Ising(L = 6)
    sampler metropolis(chains = 4, sweeps = SWEEPS, burn_in = 50)
    scan L in [4, 6, 8]
    scan T in [2.0, 2.5]
    measure energy, m = abs(magnetization) / sites, specific_heat
}
"""


def _scan(tmp_path: Path, sweeps: int) -> Path:
    path = tmp_path / "scan.phys"
    path.write_text(SCAN.replace("SWEEPS", str(sweeps)))
    return path


def test_kill_mid_scan_keeps_finished_rows_and_resume_finishes_it_exactly(
        tmp_path, kill_when, saved_after_a_row, results_on_disk):
    """SIGKILL while the second point samples: summary.json and results.csv hold exactly the
    finished point's rows; --resume finishes the scan with the numbers of an uninterrupted
    run (the chains, their random stream and the measurements so far were checkpointed)."""
    src = _scan(tmp_path, 8000)
    reference = physml_lang.load(src).run(out=tmp_path / "ref", seed=5).rows
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", "5", "--quiet", "--checkpoint-every", "0.2"]  # fmt: skip
    ckpt = out / "checkpoint.safetensors"
    kill_when(cmd, lambda: saved_after_a_row(out))
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and len(rows) == len(csv_rows) == 2
    assert rows == reference[: len(rows)]
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows)
    assert rows == reference
    assert not ckpt.exists()  # complete: nothing left to resume


def test_resume_with_other_settings_says_what_differs(tmp_path):
    src = _scan(tmp_path, 200)
    program, out = physml_lang.load(src), tmp_path / "out"
    settings = {"sweeps": 200}
    save_checkpoint(out / "checkpoint.safetensors", Checkpoint({"x": torch.zeros(2)},
                    {"point": 0}), settings)  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        program.run(out=out, seed=5, resume=True, sets={"sweeps": 300})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other settings" in d.message and d.span is not None


def _written(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, Checkpoint({"w": torch.ones(3, 2), "g": torch.arange(4)},
                                     {"epoch": 3}), settings)  # fmt: skip
    return path


def test_checkpoint_round_trip_and_its_settings_hash(tmp_path):
    path = _written(tmp_path, {"lr": 0.1, "seed": 1})
    ck = load_checkpoint(path, {"seed": 1, "lr": 0.1}, {"w": ((3, 2), torch.float32)})
    assert ck.state == {"epoch": 3} and torch.equal(ck.tensors["w"], torch.ones(3, 2))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_or_truncated_checkpoints_are_located_errors(tmp_path, damage):
    path = _written(tmp_path, {"seed": 1})
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a file" * 9,
                      "empty": b""}[damage])  # fmt: skip
    with pytest.raises(PhysmlError) as exc:
        load_checkpoint(path, {"seed": 1})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "corrupt" in d.message and d.hint


def test_mismatched_checkpoint_names_each_difference(tmp_path):
    path = _written(tmp_path, {"seed": 1, "lr": 0.1, "epochs": 5})
    with pytest.raises(PhysmlError) as exc:
        load_checkpoint(path, {"seed": 2, "lr": 0.1, "batch": 8})
    message = exc.value.diagnostics[0].message
    assert "seed: 1 -> 2" in message and 'batch: "(absent)" -> 8' in message
    assert "epochs: 5" in message and "lr" not in message


def test_bad_tensors_in_a_checkpoint_are_rejected(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, Checkpoint({"w": torch.tensor([1.0, math.nan])}, {}), {})
    with pytest.raises(PhysmlError, match="NaN or infinite"):
        load_checkpoint(path, {})
    path = _written(tmp_path, {})
    with pytest.raises(PhysmlError, match="expected"):
        load_checkpoint(path, {}, {"w": ((2, 3), torch.float32)})
    with pytest.raises(PhysmlError, match="has no tensor 'v'"):
        load_checkpoint(path, {}, {"v": ((1,), torch.float32)})


def test_a_tampered_header_is_corrupt(tmp_path):
    path = _written(tmp_path, {"seed": 1})
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["settings"] = json.dumps({"seed": 2})
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(PhysmlError, match="do not match their hash"):
        load_checkpoint(path, {"seed": 2})


def test_an_interrupt_says_what_was_kept(tmp_path, monkeypatch, results_on_disk):
    from physml_lang.runtime import sample_task

    original, calls = sample_task.PointChains.rows, {"n": 0}

    def second_point_interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(sample_task.PointChains, "rows", second_point_interrupted)
    out = tmp_path / "out"
    with pytest.raises(RunInterrupted) as exc:
        physml_lang.load(_scan(tmp_path, 50)).run(out=out)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "2 finished row(s) kept" in d.message and "--resume" in d.hint
    assert len(results_on_disk(out)[0]) == 2


def test_a_run_uses_one_thread_unless_asked(tmp_path, monkeypatch):
    from physml_lang.runtime import sample_task

    seen = []
    original = sample_task.PointChains.step

    def spy(self, *a, **k):
        seen.append(torch.get_num_threads())
        return original(self, *a, **k)

    monkeypatch.setattr(sample_task.PointChains, "step", spy)
    before = torch.get_num_threads()
    program = physml_lang.load(_scan(tmp_path, 20))
    program.run(sets={"L": 4})
    once = len(seen)
    program.run(sets={"L": 4}, threads=2)
    assert set(seen[:once]) == {1} and set(seen[once:]) == {2}
    assert torch.get_num_threads() == before
    with pytest.raises(PhysmlError, match="--threads"):
        program.run(sets={"L": 4}, threads=0)
