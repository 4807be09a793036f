"""Dynamics tasks on the run driver: a learn_dynamics run or a field scan killed with SIGKILL
keeps its finished rows on disk and ``--resume`` finishes with the rows of an uninterrupted run
(to the last bit on the CPU: training, integration and sampling are deterministic); evolve and
learn_dynamics checkpoint inside a point; the random numbers of data, minibatches and chains
do not depend on the batch they are drawn in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import physml_lang
from physml_lang.catalogue.dynamics import TrajectoryOptions
from physml_lang.diagnostics import PhysmlError, RunInterrupted
from physml_lang.runtime import driver
from physml_lang.runtime.dynamics.data import initial_states
from physml_lang.runtime.dynamics.learners import HNN, VectorFieldFit
from physml_lang.runtime.random import RandomStreams

# two learners (two scan points), minibatches drawn from the streams; long enough per learner
# that a 0.2 s checkpoint is written mid-training
LEARN = """
import Pendulum
learner H_net = hnn(hidden = [32, 32]) respecting symplectic
learner baseline = mlp(hidden = [32, 32])
run fit {
    model Pendulum
    trajectories count = 8, points = 16, t_span = 3.0, noise = 0.05, radius = [0.5, 1.5]
    train H_net, baseline via derivative_mse(steps = STEPS, lr = 3e-3, batch_size = 32)
    rollout count = 3, horizon = 4, steps = 40
}
"""

XY = """
import XY
run scan {
    model XY(L = 8)
    sampler hmc(chains = 4, sweeps = SWEEPS, burn_in = 20, step_size = 0.1, n_steps = 8)
    scan T in [0.7, 1.4]
    scan J in [1.0, 0.5]
    measure e = energy / sites, abs_magnetization, helicity_modulus
}
"""

# two chunks of 20000 steps per integrator
EVOLVE = """
import Pendulum
run lf {
    model Pendulum(g = 3)
    initial q = [1.0, 0.5, 2.0], p = [0.0, 0.3, -0.1]
    evolve integrator = [leapfrog, rk4], dt = 0.05, steps = 30000, save_every = 100
}
"""

TIMES = ("train_s", "wall_s")  # wall-clock seconds: the only columns a resume may change


def _program(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dynamics.phys"
    path.write_text(text)
    return path


def _rows(out: Path) -> list[dict]:
    """The rows of summary.json without their timings."""
    rows = json.loads((out / "summary.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k not in TIMES} for r in rows]


def _inside_point(out: Path, point: int) -> bool:
    """The checkpoint on disk was saved inside scan point ``point``, after some of its work."""
    path = out / "checkpoint.safetensors"
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads((f.metadata() or {})["state"])
    except Exception:  # noqa: BLE001 - replaced while read: not yet
        return False
    return state["point"] == point and state["done"] > 0


def _kill_and_resume(tmp_path, src: Path, seed: int, kill_when,
                     results_on_disk) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """An uninterrupted run's rows and those on disk after a SIGKILL inside the second point
    (after a checkpoint of its work so far) and a --resume; checks on the way."""
    ref = tmp_path / "ref"
    physml_lang.load(src).run(out=ref, seed=seed)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", str(seed), "--quiet", "--checkpoint-every", "0.2"]  # fmt: skip
    kill_when(cmd, lambda: _inside_point(out, 1), timeout=300)
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and 1 <= len(rows) == len(csv_rows)
    kept = _rows(out)
    assert kept == _rows(ref)[: len(kept)]
    assert (out / "checkpoint.safetensors").is_file()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows)
    assert not (out / "checkpoint.safetensors").exists()
    return _rows(ref), _rows(out)


def test_learn_killed_mid_training_resumes_to_the_same_rows(tmp_path, kill_when, results_on_disk):
    """SIGKILL while the second learner trains (after a checkpoint of its parameters, Adam's
    moments and the minibatch draws): the first learner's row is on disk; --resume regenerates
    the data from the streams, continues the training and ends with the uninterrupted rows,
    the saved parameters and the rollout figure of both learners."""
    src = _program(tmp_path, LEARN.replace("STEPS", "800"))
    reference, resumed = _kill_and_resume(tmp_path, src, 4, kill_when, results_on_disk)
    assert resumed == reference and [r["learner"] for r in resumed] == ["H_net", "baseline"]
    out = tmp_path / "out"
    for name in ("H_net", "baseline"):
        got, want = load_file(str(out / f"{name}.safetensors")), load_file(
            str(tmp_path / "ref" / f"{name}.safetensors"))  # fmt: skip
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert (out / "rollout.png").is_file()


def test_field_scan_killed_mid_point_resumes_to_the_same_rows(tmp_path, kill_when, results_on_disk):
    """SIGKILL while the second J samples (both temperatures as one batch): the rows of the
    first J (two temperatures) are on disk, and --resume finishes with the uninterrupted rows."""
    src = _program(tmp_path, XY.replace("SWEEPS", "600"))
    reference, resumed = _kill_and_resume(tmp_path, src, 2, kill_when, results_on_disk)
    assert resumed == reference
    assert [(r["J"], r["T"]) for r in resumed] == [(1.0, 0.7), (1.0, 1.4), (0.5, 0.7), (0.5, 1.4)]


def _interrupt_after_checkpoint(monkeypatch, point: int) -> None:
    """A KeyboardInterrupt right after the first checkpoint saved inside scan point ``point``."""
    original = driver.save_checkpoint

    def save_then_stop(path, checkpoint, settings):
        original(path, checkpoint, settings)
        if checkpoint.state["point"] == point and checkpoint.state["done"]:
            monkeypatch.setattr(driver, "save_checkpoint", original)
            raise KeyboardInterrupt

    monkeypatch.setattr(driver, "save_checkpoint", save_then_stop)


@pytest.mark.parametrize("point", [0, 1])
def test_evolve_resumes_mid_integration_to_the_same_rows_and_trajectory(
        tmp_path, monkeypatch, point):
    """Interrupted after a chunk of steps of the first or the second integrator (the current
    state and the recorded trajectory checkpointed), --resume ends with the uninterrupted rows
    and the same trajectory to the last bit."""
    program = physml_lang.load(_program(tmp_path, EVOLVE))
    ref = tmp_path / "ref"
    program.run(out=ref, seed=0)
    out = tmp_path / "out"
    _interrupt_after_checkpoint(monkeypatch, point)
    with pytest.raises(RunInterrupted) as exc:
        program.run(out=out, seed=0, checkpoint_seconds=1e-9)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "--resume" in d.hint
    assert f"{point} finished row(s)" in d.message or (point == 0 and "no row" in d.message)
    done = program.run(out=out, seed=0, resume=True)
    assert done.summary["resumed"] and _rows(out) == _rows(ref)
    for name in ("leapfrog", "rk4"):
        with np.load(out / f"trajectory_{name}.npz") as a, \
                np.load(ref / f"trajectory_{name}.npz") as b:  # fmt: skip
            assert a["q"].shape == (301, 3, 1)
            assert all(np.array_equal(a[k], b[k]) for k in ("t", "q", "p", "energy"))
    assert (out / "energy_error.png").is_file() and not (out / "checkpoint.safetensors").exists()


def test_learn_resumes_mid_training_in_process_and_checks_its_settings(tmp_path, monkeypatch):
    """Interrupted inside the first learner's training; a resume with another learning rate is
    a located P602 naming the learners; the same settings finish with the uninterrupted rows."""
    src = _program(tmp_path, LEARN.replace("STEPS", "60"))
    program = physml_lang.load(src)
    ref = tmp_path / "ref"
    program.run(out=ref, seed=1)
    out = tmp_path / "out"
    _interrupt_after_checkpoint(monkeypatch, 0)
    with pytest.raises(RunInterrupted):
        program.run(out=out, seed=1, checkpoint_seconds=1e-9)
    with pytest.raises(PhysmlError) as exc:
        program.run(out=out, seed=1, resume=True, sets={"lr": 1e-2})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "learners:" in d.message and d.span is not None
    done = program.run(out=out, seed=1, resume=True)
    assert done.summary["resumed"] and _rows(out) == _rows(ref)


def test_a_fit_restored_from_its_tensors_continues_exactly():
    """Parameters, Adam's moments and the minibatch draws (the streams' counter) are the whole
    state of a fit: 7 + 5 steps with a restore between equal 12 steps."""
    data = [torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(20, 2) * k for k in (1, 2, -1, 3)]

    def fit(streams: RandomStreams) -> VectorFieldFit:
        model = HNN(2, [8], generator=RandomStreams(9).host_generator())
        return VectorFieldFit(model, *data, streams, lr=1e-2, batch_size=6)

    straight = fit(RandomStreams(3))
    losses = [straight.step() for _ in range(12)]
    first = fit(RandomStreams(3))
    for _ in range(7):
        first.step()
    saved, draws = {k: v.clone() for k, v in first.tensors().items()}, first.streams.state()
    second = fit(RandomStreams(3))
    second.restore(saved)
    second.streams.restore(draws)
    resumed = [second.step() for _ in range(5)]
    assert torch.equal(torch.stack(resumed), torch.stack(losses[7:]))
    assert straight.final_loss() == second.final_loss()


def test_initial_states_of_a_trajectory_do_not_depend_on_the_count():
    """Trajectory b starts from the same state whether 3 or 7 are drawn (streams per
    trajectory), for every start of the data."""
    for start in ("circle", "normal"):
        o = TrajectoryOptions(start=start)
        cm = physml_lang.load("import MassSpring\n").model("MassSpring")
        few = initial_states(cm, o, 3, RandomStreams(5))
        many = initial_states(cm, o, 7, RandomStreams(5))
        for a, b in zip(few, many):
            assert torch.equal(a, b[:3])
