"""The learners on the run driver: each finished point on disk at once, training checkpoints in
the one format (a SIGKILL mid-training resumes bit-identically), P602 for a checkpoint of other
settings or a damaged one, ``--set`` through the shared resolver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import physml_lang
from physml_lang.diagnostics import PhysmlError, RunInterrupted

FIT = """
import RBM
data bars: binary = load("bars.npz", key = "x")
learner rbm = RBM(Nv = 9, Nh = 3, sigma = 0.1)
run fit {
    train rbm via pcd(k = 1, chains = 32), data = bars, epochs = EPOCHS, batch = 20
    optimizer adam(lr = 0.1)
    schedule cosine(min_factor = 0.2)
    ais betas = 100, chains = 20
    scan Nh in [2, 3]
    measure log_z, exact_log_likelihood
}
"""


def _bars(n: int = 100, seed: int = 0) -> np.ndarray:
    """3x3 bars-and-stripes images, flattened: (n, 9) in {0, 1}."""
    rng = np.random.default_rng(seed)
    lines = rng.integers(0, 2, size=(n, 3))
    horizontal = rng.integers(0, 2, size=n).astype(bool)
    img = np.where(horizontal[:, None, None], lines[:, :, None], lines[:, None, :])
    return np.broadcast_to(img, (n, 3, 3)).reshape(n, 9).astype(np.float64)


def _fit(tmp_path: Path, epochs: int) -> Path:
    np.savez(tmp_path / "bars.npz", x=_bars())
    path = tmp_path / "fit.phys"
    path.write_text(FIT.replace("EPOCHS", str(epochs)))
    return path


def _same_params(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _interrupted(monkeypatch, program, out: Path, at_epoch: int, **kw) -> None:
    """Run ``program`` until Ctrl-C in the ``at_epoch``-th epoch it trains."""
    from physml_lang.runtime.learners import train as train_mod

    original, calls = train_mod.Trainer.run_epoch, {"n": 0}

    def flaky(self, on_step=None):
        calls["n"] += 1
        if calls["n"] == at_epoch:
            raise KeyboardInterrupt
        return original(self, on_step)

    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "run_epoch", flaky)
        with pytest.raises(RunInterrupted):
            program.run(out=out, seed=7, **kw)


def test_kill_mid_training_keeps_finished_rows_and_resume_is_bit_identical(
        tmp_path, kill_when, saved_after_a_row, results_on_disk):
    """SIGKILL while the second point trains: summary.json and results.csv hold the first
    point's row; --resume finishes with the rows, histories and learned parameters of an
    uninterrupted run."""
    src = _fit(tmp_path, 60)
    reference = physml_lang.load(src).run(out=tmp_path / "ref", seed=7)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(src), "--out", str(out),
           "--seed", "7", "--quiet"]  # fmt: skip
    kill_when(cmd, lambda: saved_after_a_row(out))  # point 2 has saved an epoch
    rows, csv_rows, summary = results_on_disk(out)
    assert not summary["complete"] and len(rows) == len(csv_rows) == 1
    ref_rows = json.loads((tmp_path / "ref" / "summary.json").read_text())["rows"]
    assert rows == ref_rows[:1]
    physml_lang.load(src).run(out=out, seed=7, resume=True)  # what --resume does, warm
    rows, csv_rows, summary = results_on_disk(out)
    assert summary["complete"] and summary["resumed"] and len(csv_rows) == len(rows) == 2
    assert json.dumps(rows) == json.dumps(ref_rows)
    assert summary["history"] == reference.summary["history"]
    for name in ("params_0.safetensors", "params_1.safetensors"):
        assert _same_params(out / name, tmp_path / "ref" / name), name
    assert not (out / "checkpoint.safetensors").exists()  # complete: nothing to resume


def test_a_damaged_checkpoint_is_a_located_error(tmp_path, monkeypatch):
    program, out = physml_lang.load(_fit(tmp_path, 4)), tmp_path / "out"
    _interrupted(monkeypatch, program, out, at_epoch=3)
    ckpt = out / "checkpoint.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(PhysmlError) as exc:
        program.run(out=out, seed=7, resume=True)
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "corrupt" in d.message and d.span is not None


def test_resume_with_other_settings_names_them(tmp_path, monkeypatch):
    """Another learning rate, seed, batch or schedule option: a P602 naming each; the same
    settings resume (the second point's checkpoint holds the first point's row)."""
    program, out = physml_lang.load(_fit(tmp_path, 3)), tmp_path / "out"
    _interrupted(monkeypatch, program, out, at_epoch=5)  # point 2, epoch 2
    with pytest.raises(PhysmlError) as exc:
        program.run(out=out, seed=7, resume=True, sets={"lr": 0.05})
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other settings" in d.message and d.span is not None
    assert "optimizer.lr: 0.1 -> 0.05" in d.message and "seed" not in d.message
    with pytest.raises(PhysmlError) as exc:
        program.run(out=out, seed=8, resume=True, sets={"batch": 10, "min_factor": 0.5})
    message = exc.value.diagnostics[0].message
    for diff in ("seed: 7 -> 8", "train.batch: 20 -> 10", "schedule.min_factor: 0.2 -> 0.5"):
        assert diff in message
    res = program.run(out=out, seed=7, resume=True)
    assert res.summary["resumed"] and len(res.rows) == 2
    assert [len(h) for h in res.summary["history"]] == [3, 3]


def test_sets_reach_every_option_group(tmp_path):
    """--set: a scan variable, a learner parameter, training, objective, optimiser and
    schedule options; an unknown name is a P205 listing what may be set."""
    program = physml_lang.load(_fit(tmp_path, 1))
    res = program.run(sets={"Nh": 4, "sigma": 0.2, "epochs": 2, "chains": 8, "lr": 1,
                            "min_factor": 0.5}, seed=1)  # fmt: skip
    sampler = res.summary["sampler"]
    assert [r["Nh"] for r in res.rows] == [4] and res.rows[0]["epochs"] == 2
    assert (sampler["chains"], sampler["lr"]) == (8, 1.0)
    with pytest.raises(PhysmlError) as exc:
        program.run(sets={"learning_rate": 0.1})
    d = exc.value.diagnostics[0]
    assert d.code == "P205" and "optimizer option" in d.message


HOPFIELD = """
model Hopfield(N: int = 100, P: int = 5, seed: int = 1) {
    graph complete(N)
    field s: spin on sites
    data xi: spin[P, N] = random(seed = seed)
    param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
    energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
}
run capacity {
    model Hopfield(N = 100)
    recall xi via glauber(T = 0, sweeps = 10), flip = 0.1
    scan P in [5, 10, 15]
    measure overlap
}
"""


def test_recall_writes_each_point_and_an_interrupt_keeps_them(tmp_path, monkeypatch, results_on_disk):
    from physml_lang.runtime.learners import tasks

    original, calls = tasks.overlap, {"n": 0}

    def third_point_interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # two overlaps per point: the start of the third
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(tasks, "overlap", third_point_interrupted)
    out = tmp_path / "out"
    with pytest.raises(RunInterrupted) as exc:
        physml_lang.load(HOPFIELD).run(out=out, sets={"N": 60, "flip": 0.2})
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "2 finished row(s) kept" in d.message
    rows, csv_rows, summary = results_on_disk(out)
    assert len(rows) == len(csv_rows) == 2 and not summary["complete"]
    assert rows[0]["N"] == 60 and summary["recall"]["flip"] == 0.2


def test_histories_of_finished_points_survive_a_resume(tmp_path, monkeypatch):
    """Ctrl-C in the first epoch of the second point (its checkpoint holds no epoch yet): the
    first point's history comes back with its row, the run ends as an uninterrupted one."""
    program = physml_lang.load(_fit(tmp_path, 3))
    reference = program.run(out=tmp_path / "ref", seed=7)
    out = tmp_path / "out"
    _interrupted(monkeypatch, program, out, at_epoch=4)
    res = program.run(out=out, seed=7, resume=True)
    assert res.summary["resumed"] and res.summary["history"] == reference.summary["history"]
    assert json.dumps(res.rows) == json.dumps(reference.rows)


def test_resume_with_other_data_is_a_located_error(tmp_path, monkeypatch):
    program, out = physml_lang.load(_fit(tmp_path, 3)), tmp_path / "out"
    _interrupted(monkeypatch, program, out, at_epoch=2)
    np.savez(tmp_path / "bars.npz", x=_bars(seed=1))
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(tmp_path / "fit.phys").run(out=out, seed=7, resume=True)
    d = exc.value.diagnostics[0]
    assert d.code == "P602" and "other data" in d.message and d.span is not None
