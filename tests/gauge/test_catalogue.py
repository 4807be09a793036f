"""The gauge capability's catalogue entries: declared with their schemas and facts, bound by the
runtime, and named by the hints exactly as the catalogue holds them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.gauge import HMCRun, MetropolisRun, RunControls
from physml_lang.runtime.gauge.sampling import LinkSampler, make_sampler
from physml_lang.runtime.plans import gauge as plans


def _gauge(kind: str) -> list:
    return [e for e in CATALOGUE.registry(kind) if e.family == "gauge"]


@pytest.mark.parametrize("kind", ["samplers", "learners", "observables", "tasks"])
def test_every_gauge_entry_is_bound(kind: str) -> None:
    entries = _gauge(kind)
    assert entries
    assert [e.title for e in entries if e.implementation is None] == []


def test_sampler_entries_validate_the_sampler_statement() -> None:
    entries = {e.name: e for e in _gauge("samplers")}
    assert set(entries) == {"metropolis", "heatbath", "hmc"}
    assert entries["hmc"].facts.domains == ("u1", "su2")
    for name, entry in entries.items():
        factory = entry.implementation
        assert isinstance(factory, LinkSampler) and factory.kind == name
        # the statement's schema: the sampler's own options and the run's controls
        assert set(entry.schema.model_fields) >= set(factory.options.model_fields)
        assert set(entry.schema.model_fields) >= set(RunControls.model_fields)
    assert MetropolisRun(hits=2, sweeps=5, chains=3).hits == 2
    assert HMCRun(sweeps=5).sweeps == 5  # one sweep = one trajectory
    with pytest.raises(ValidationError):
        HMCRun(trajectories=5)  # the old name only through validate_options (P403)


def test_make_sampler_validates_only_the_samplers_options() -> None:
    with pytest.raises(ValidationError):
        make_sampler("heatbath", "z2", 1.0, chains=4)
    with pytest.raises(KeyError, match=r"known: \['heatbath', 'hmc', 'metropolis'\]"):
        make_sampler("wolff", "z2", 1.0)


def test_learner_entries_state_the_symmetries_they_respect() -> None:
    learners = {e.name: e for e in _gauge("learners")}
    assert learners["lcnn"].facts.symmetries == ("gauge", "translation")
    assert learners["gauge_cnn"].facts.symmetries == ("translation",)


def test_hints_name_the_catalogues_entries() -> None:
    def names(hint: str) -> set[str]:
        return set(hint.split(": ", 1)[1].split(", "))

    assert names(plans.sampler_hint()) == set(CATALOGUE.samplers.names("gauge"))
    assert names(plans.learner_hint()) == set(CATALOGUE.learners.names("gauge"))
    assert plans.builtin_observables() == {
        "plaquette", "action", "topological_charge", "polyakov_loop", "abs_polyakov_loop",
        "sites", "wilson_loop"}  # fmt: skip
    action = CATALOGUE.observables.lookup("action", "gauge")
    assert CATALOGUE.observables.lookup("energy", "gauge").implementation is action.implementation
