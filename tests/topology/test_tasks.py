"""The topology and images tasks end to end (small settings): rows and summary on disk, plots,
the dense net's n/a on other-size images, reproducibility at a fixed seed, and every tensor on
the run's device (the meta pass)."""

from __future__ import annotations

import json

import pytest
import torch

import physml_lang
from physml_lang.runtime.topology.images import ImageSpec, located, microscope_images
from physml_lang.runtime.topology.networks import ConvNet
from physml_lang.runtime.topology.training import expected_calibration_error

PROGRAM = """
learner cnn_net = classifier(channels = [8, 8]) respecting translation
learner fc_net = classifier(hidden = [32])
learner plaquette_net = classifier(channels = [8, 8], kernel = 2, pointwise = true, order = 3)
    respecting translation

run winding {
    invariant winding(train = [-1, 0, 1], test = [-2, 2], samples = 60, tests = 20, epochs = 2,
                      k_points = 32),
        learners = [cnn_net, fc_net]
}
run chern {
    invariant chern(train = [-1, 0, 1], test = [2], samples = 20, tests = 10, epochs = 2,
                    points = 16),
        learners = [plaquette_net]
}
run impurities {
    locate impurities(size = 12, spacing = 3, test_size = 15, samples = 100, tests = 40,
                      epochs = 2),
        learners = [cnn_net, fc_net]
}
"""


@pytest.fixture(scope="module")
def program():
    return physml_lang.load(PROGRAM)


def test_winding_rows_summary_and_plot(program, tmp_path):
    res = program.run("winding", out=tmp_path, seed=0)
    rows = res.rows
    assert len(rows) == 2 * (4 + 3)  # per learner: train -1, 0, 1, all; test -2, 2, all
    keys = {(r["learner"], r["split"], r["label"]) for r in rows}
    assert ("cnn_net", "test", -2) in keys and ("fc_net", "train", "all") in keys
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["mean_abs_error"] >= 0
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["complete"] and saved["rows"] == json.loads(json.dumps(rows))
    assert set(saved["test_accuracy"]) == {"cnn_net", "fc_net"}
    assert (tmp_path / "accuracy_per_class.png").exists()
    again = program.run("winding", seed=0)
    assert again.rows == rows  # same seed, same numbers


def test_chern_rows(program):
    rows = program.run("chern", seed=0).rows
    assert [(r["split"], r["label"]) for r in rows] == [
        ("train", -1), ("train", 0), ("train", 1), ("train", "all"), ("test", 2), ("test", "all")]


def test_images_rows_with_dense_na(program, tmp_path):
    res = program.run("impurities", out=tmp_path, seed=0)
    rows = {(r["learner"], r["condition"]): r for r in res.rows}
    assert set(rows) == {(n, c) for n in ("cnn_net", "fc_net")
                         for c in ("train", "shifted", "noisy", "size")}  # fmt: skip
    assert rows[("fc_net", "size")]["accuracy"] is None  # one image size only
    assert rows[("cnn_net", "size")]["size"] == 15
    assert 0 <= rows[("cnn_net", "size")]["accuracy"] <= 1
    assert rows[("cnn_net", "noisy")]["ece"] >= 0
    assert set(res.summary["off_distribution_gap"]) == {"shifted", "noisy", "size"}
    assert (tmp_path / "accuracy_per_condition.png").exists()
    assert (tmp_path / "calibration.png").exists()


def test_set_reaches_method_options(program):
    rows = program.run("winding", seed=0, sets={"test": [3], "harmonics": 3}).rows
    assert {r["label"] for r in rows if r["split"] == "test"} == {3, "all"}


def test_runs_create_no_tensor_on_the_default_device(program):
    torch.set_default_device("meta")
    try:
        for run in ("winding", "chern", "impurities"):
            program.run(run, seed=0, device="cpu")
    finally:
        torch.set_default_device(None)


def test_images_target_is_the_vacancy():
    gen = torch.Generator().manual_seed(0)
    for shift in (False, True):
        spec = ImageSpec(12, 3, 0.6, 0.0, 0.0, "missing", shift)
        x, t = microscope_images(spec, 50, gen, device="cpu")
        flat = x.flatten(1)
        at = flat[torch.arange(50), t]
        assert torch.all(at < 0.05)  # no atom, no noise: dark at the target pixel
        # the brightest pixels are atoms' centres (peak 1); the vacancy's site is not among them
        assert torch.all(flat.amax(-1) > 0.95)
        logits = torch.zeros(50, 144).scatter(1, t[:, None], 1.0)
        assert torch.all(located(logits, t, 12, 3))
    bright = ImageSpec(12, 3, 0.6, 0.0, 0.0, "bright")
    x, t = microscope_images(bright, 20, gen, device="cpu")
    assert torch.equal(x.flatten(1).argmax(-1), t)


def test_expected_calibration_error():
    conf = torch.tensor([1.0, 1.0, 0.5, 0.5])
    assert expected_calibration_error(conf, torch.tensor([True, True, True, False])) == 0
    assert expected_calibration_error(conf, torch.tensor([False, False, True, False])) == \
        pytest.approx(0.5 * 1.0 + 0.5 * 0.0)


def test_memory_is_checked_before_any_allocation():
    program = physml_lang.load("learner c = classifier() respecting translation\nrun r {\n"
                               "    locate impurities(samples = 1000000, size = 510, "
                               "test_size = 510), learners = [c]\n}\n")  # fmt: skip
    with pytest.raises(physml_lang.PhysmlError) as exc:
        program.run("r", seed=0)
    assert exc.value.diagnostics[0].code == "P409"


def test_plaquette_net_is_a_sum_of_local_terms_on_the_torus():
    torch.manual_seed(0)
    net = ConvNet(2, 3, [8, 8], 2, 1, "sum", pointwise=True, order=3, device="cpu")
    x = torch.randn(4, 3, 8, 8, device="cpu")
    out = net(x)
    # invariant under translations of the torus; defined on any grid size
    assert torch.allclose(net(torch.roll(x, (3, 5), dims=(2, 3))), out, atol=1e-5)
    assert net(torch.randn(2, 3, 12, 12, device="cpu")).shape == (2, 1)
    # local: a change at one site moves only the four plaquettes that hold it
    per_site = net.body(torch.nn.functional.pad(x, (0, 1, 0, 1), mode="circular"))
    y = x.clone()
    y[:, :, 4, 4] += 1
    moved = net.body(torch.nn.functional.pad(y, (0, 1, 0, 1), mode="circular")) != per_site
    assert moved[0, 0].nonzero().tolist() == [[3, 3], [3, 4], [4, 3], [4, 4]]
