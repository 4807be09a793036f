"""Training end to end: CD/PCD runs, checkpoints, resume, saved parameters, divergence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError, PhysmlWarning, RunInterrupted

TEXT = """
import RBM
data bars: binary = load("bars.npz", key = "x")
learner rbm = RBM(Nv = 9, Nh = 6, sigma = 0.1)
run fit {
    train rbm via OBJ, data = bars, epochs = EPOCHS, batch = 32
    optimizer adam(lr = LR)
    schedule cosine(min_factor = 0.2)
    ais betas = 300, chains = 100
    generate chains = 16, sweeps = 20, burn_in = 20
    measure log_likelihood, exact_log_likelihood
}
"""


def bars(n=600, seed=0) -> np.ndarray:
    """3x3 bars-and-stripes images, flattened."""
    rng = np.random.default_rng(seed)
    lines = rng.integers(0, 2, size=(n, 3))
    horizontal = rng.integers(0, 2, size=n).astype(bool)
    img = np.where(horizontal[:, None, None], lines[:, :, None], lines[:, None, :])
    img = np.broadcast_to(img, (n, 3, 3))
    return img.reshape(n, 9).astype(np.float64)


def program(tmp_path, obj="cd(k = 1)", epochs=15, lr=0.1):
    np.savez(tmp_path / "bars.npz", x=bars())
    text = TEXT.replace("OBJ", obj).replace("EPOCHS", str(epochs)).replace("LR", str(lr))
    path = tmp_path / "fit.phys"
    path.write_text(text)
    return physml_lang.load(path)


@pytest.mark.parametrize("obj", ["cd(k = 1)", "pcd(k = 1, chains = 64)"])
def test_training_improves_likelihood(tmp_path, obj):
    p = program(tmp_path, obj)
    p.check()
    out = tmp_path / "out"
    res = p.run(out=out, seed=1)
    row = res.rows[0]
    ll, exact = row["log_likelihood"], row["exact_log_likelihood"]
    assert abs(ll["mean"] - exact["mean"]) < 4 * ll["stderr"] + 0.05
    # uniform model: -9 log 2 = -6.24; bars-and-stripes has 14 patterns: log(1/14) = -2.64
    assert exact["mean"] > -5.0
    for name in ("summary.json", "results.csv", "params.safetensors", "samples.png",
                 "training.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.safetensors").exists()  # complete: nothing to resume
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and len(summary["history"][0]) == 15


def test_resume_and_load_parameters(tmp_path):
    p = program(tmp_path, epochs=3)
    out = tmp_path / "out"
    first = p.run(out=out, seed=2)
    # a run without --resume starts afresh: the same seed gives the same training
    again = p.run(out=out, seed=2)
    assert again.summary["history"] == first.summary["history"]
    # saved parameters load into the model: `param W on edges = load(...)`
    text = f"""
    model R(Nv: int = 9, Nh: int = 6) {{
        graph bipartite(Nv, Nh)
        field v: binary on visible
        field h: binary on hidden
        learnable param W on edges = load("{out}/params.safetensors")
        learnable param a on visible = load("{out}/params.safetensors")
        learnable param b on hidden = load("{out}/params.safetensors", key = "b")
        energy E = -sum(a[i] * v[i] for i in visible) - sum(b[j] * h[j] for j in hidden)
                   - sum(W[i, j] * v[i] * h[j] for (i, j) in edges)
    }}
    """
    m = physml_lang.compile(text, allow_outside=True).compiled  # out is outside the cwd
    from safetensors.torch import load_file

    saved = load_file(str(out / "params.safetensors"))
    torch.testing.assert_close(m.params["W"].detach(), saved["W"])


def _interrupt_third_epoch(monkeypatch) -> None:
    from physml_lang.runtime.learners import train as train_mod

    original, calls = train_mod.Trainer.run_epoch, {"n": 0}

    def flaky(self, on_step=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, on_step)

    monkeypatch.setattr(train_mod.Trainer, "run_epoch", flaky)


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    """Ctrl-C in epoch 3: a P701 saying the checkpoint can be resumed; --resume continues at
    epoch 3 with the numbers of an uninterrupted run."""
    p = program(tmp_path, epochs=4)
    reference = p.run(out=tmp_path / "ref", seed=3)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _interrupt_third_epoch(m)
        with pytest.raises(RunInterrupted) as exc:
            p.run(out=out, seed=3)
    d = exc.value.diagnostics[0]
    assert d.code == "P701" and "--resume" in d.hint
    assert (out / "checkpoint.safetensors").is_file() and not (out / "summary.json").exists()
    res = p.run(out=out, seed=3, resume=True)
    epochs = [h["epoch"] for h in res.summary["history"][0]]
    assert res.summary["resumed"] and epochs == [1, 2, 3, 4]
    assert res.summary["history"] == reference.summary["history"]
    assert json.dumps(res.rows) == json.dumps(reference.rows)


def test_the_resume_option_is_a_deprecated_resume(tmp_path, monkeypatch):
    """``resume = true`` in the train statement still resumes, with a P403 pointing to
    --resume; without either, a run starts afresh."""
    p = program(tmp_path, epochs=4)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _interrupt_third_epoch(m)
        with pytest.raises(RunInterrupted):
            p.run(out=out, seed=3)
    text = (tmp_path / "fit.phys").read_text().replace("batch = 32", "batch = 32, resume = true")
    (tmp_path / "old.phys").write_text(text)
    with pytest.warns(PhysmlWarning) as record:
        res = physml_lang.load(tmp_path / "old.phys").run(out=out, seed=3)
    d = record[0].message.diagnostic
    assert d.code == "P403" and "--resume" in d.hint and d.span is not None
    assert res.summary["resumed"] and len(res.summary["history"][0]) == 4
    with monkeypatch.context() as m:
        _interrupt_third_epoch(m)
        with pytest.raises(RunInterrupted):
            p.run(out=out, seed=3)
    assert "resumed" not in p.run(out=out, seed=3).summary


def test_divergence_is_a_clean_error(tmp_path):
    p = program(tmp_path, obj="cd(k = 1)", epochs=5, lr=1e9)
    out = tmp_path / "out"
    with pytest.raises(PhysmlError) as exc:
        p.run(out=out, seed=0)
    d = exc.value.diagnostics[0]
    assert d.code == "P700" and "diverged" in d.message


def test_data_domain_checked_against_field(tmp_path):
    np.savez(tmp_path / "bars.npz", x=2 * bars() - 1)  # spins into a binary layer
    text = TEXT.replace("OBJ", "cd(1)").replace("EPOCHS", "1").replace("LR", "0.1")
    (tmp_path / "fit.phys").write_text(text)
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(tmp_path / "fit.phys").check()
    assert exc.value.diagnostics[0].code == "P601"


def test_an_exact_likelihood_too_large_to_enumerate_is_found_by_check(tmp_path):
    """30 visible units: exact log Z would enumerate 2^30 states; check says so at the measure
    (before any training), and points to the estimate by annealed importance sampling."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", x=rng.integers(0, 2, size=(50, 30)).astype(np.float64))
    text = TEXT.replace("Nv = 9, Nh = 6, sigma = 0.1", "Nv = 30, Nh = 4").replace(
        "bars.npz", "wide.npz").replace("OBJ", "cd(k = 1)").replace("EPOCHS", "1").replace(
        "LR", "0.1")  # fmt: skip
    (tmp_path / "wide.phys").write_text(text)
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(tmp_path / "wide.phys").check()
    d = exc.value.diagnostics[0]
    assert d.code == "P407" and "30 enumerated units" in d.message and "log_likelihood" in d.hint
    assert d.span is not None and d.span.line == 11
