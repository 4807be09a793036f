"""The invariant and locate statements through the language: the catalogue's option schemas,
the static plan's located refusals (P430, P203, P109, option errors), ``--set`` of method
options, and the examples check."""

from __future__ import annotations

from pathlib import Path

import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.plans.topology import plan_topology
from physml_lang.runtime.tasks import RunState

ROOT = Path(__file__).resolve().parents[2]
LEARNERS = """
learner cnn_net = classifier(channels = [8, 8]) respecting translation
learner fc_net = classifier(hidden = [32])
"""


def _plan(body: str, sets=None, learners: str = LEARNERS):
    program = physml_lang.load(learners + "run r {\n" + body + "\n}\n")
    return plan_topology(RunState.of(program.checked.runs["r"]), program.checked, sets)


def _error(body: str, learners: str = LEARNERS, sets=None) -> PhysmlError:
    with pytest.raises(PhysmlError) as exc:
        _plan(body, sets, learners)
    return exc.value


@pytest.mark.parametrize("name", ["winding_numbers", "chern_numbers", "microscope_impurities"])
def test_examples_check(name):
    program = physml_lang.load(ROOT / "examples" / f"{name}.phys")
    program.check()


def test_plan_reads_method_options_and_learners():
    plan = _plan("invariant winding(train = [0, 1], test = [2], k_points = 32), "
                 "learners = [cnn_net, fc_net]")  # fmt: skip
    assert plan.task == "topology" and plan.method == "winding"
    assert plan.options.train == [0, 1] and plan.options.k_points == 32
    assert [(s.name, s.conv) for s in plan.learners] == [("cnn_net", True), ("fc_net", False)]
    assert plan.learners[0].options.channels == [8, 8]
    plan = _plan("invariant winding(test = [2]), learners = [cnn_net]", {"k_points": 48})
    assert plan.options.k_points == 48
    plan = _plan("locate impurities(size = 12, spacing = 3, test_size = 15), learners = [fc_net]")
    assert plan.task == "images" and plan.options.size == 12


@pytest.mark.parametrize("body, code, words", [
    ("invariant winding(train = [], test = [2]), learners = [cnn_net]", "P430", "empty"),
    ("invariant winding(train = [-1, 0, 1], test = [1, 2]), learners = [cnn_net]", "P430",
     "also trained"),
    ("invariant winding(test = [5]), learners = [cnn_net]", "P430", "harmonics"),
    ("invariant winding(k_points = 8), learners = [cnn_net]", "P430", "resolve"),
    ("invariant chern(points = 6), learners = [cnn_net]", "P430", "resolve"),
    ("invariant winding(test = [2, 2]), learners = [cnn_net]", "P402", "repeat"),
    ("invariant winding(), learners = [nope]", "P203", "unknown learner"),
    ("invariant winding()", "P109", "learners"),
    ("invariant winding(), epochs = 3, learners = [cnn_net]", "P109", "parentheses"),
    ("locate impurities(size = 4, spacing = 4, test_size = 8), learners = [cnn_net]", "P430",
     "2 x 2"),
    ("locate impurities(size = 16, spacing = 3), learners = [cnn_net]", "P402", "multiple"),
    ("locate impurities(psf = 5), learners = [cnn_net]", "P430", "resolved"),
    ("locate impurities(impurity = dark), learners = [cnn_net]", "P402", "missing or bright"),
])  # fmt: skip
def test_located_refusals(body, code, words):
    err = _error(body)
    d = err.diagnostics[0]
    assert d.code == code and words in d.message + (d.hint or "")
    assert d.span is not None


def test_learner_declarations_are_checked():
    conv_hidden = "learner c = classifier(hidden = [8]) respecting translation\n"
    err = _error("invariant winding(), learners = [c]", conv_hidden)
    assert err.diagnostics[0].code == "P430" and "fully connected" in err.diagnostics[0].message
    dense_channels = "learner c = classifier(channels = [8])\n"
    err = _error("invariant winding(), learners = [c]", dense_channels)
    assert err.diagnostics[0].code == "P430" and "convolutional" in err.diagnostics[0].message
    dense_order = "learner c = classifier(order = 3)\n"
    err = _error("invariant winding(), learners = [c]", dense_order)
    assert err.diagnostics[0].code == "P430" and "convolutional" in err.diagnostics[0].message
    too_high = "learner c = classifier(order = 5) respecting translation\n"
    assert _error("invariant winding(), learners = [c]", too_high).diagnostics[0].code == "P402"


def test_plaquette_learner_options():
    plaq = ("learner c = classifier(channels = [8], kernel = 2, pointwise = true, order = 3) "
            "respecting translation\n")  # fmt: skip
    plan = _plan("invariant chern(test = [2]), learners = [c]", learners=plaq)
    o = plan.learners[0].options
    assert (o.kernel, o.pointwise, o.order) == (2, True, 3)


def test_unknown_set_is_located():
    err = _error("invariant winding(), learners = [cnn_net]", sets={"k_pts": 3})
    assert err.diagnostics[0].code == "P205" and "k_points" in (err.diagnostics[0].hint or "")


def test_a_model_is_refused():
    err = _error("model Ising(L = 4)\n invariant winding(), learners = [cnn_net]",
                 "import Ising\n" + LEARNERS)  # fmt: skip
    d = err.diagnostics[0]
    assert d.code == "P430" and "needs no model" in d.message and d.span is not None
