"""The catalogue entries of Boltzmann models and data sources: declared in the front end, every
one bound by the capability's ``bind``, names resolved in their own namespaces."""

from __future__ import annotations

from physml_lang.catalogue import CATALOGUE, Catalogue, NoOptions, boltzmann, data
from physml_lang.catalogue.boltzmann import GibbsOptions, GibbsSampleOptions
from physml_lang.runtime.learners import tasks
from physml_lang.runtime.learners.gibbs import GibbsSampler


def test_bind_attaches_every_entry_of_boltzmann_models_and_data_sources():
    catalogue = Catalogue()
    boltzmann.declare(catalogue)
    data.declare(catalogue)
    tasks.bind(catalogue)  # raises if it binds anything not declared
    assert not [e.title for reg in catalogue for e in reg.unbound()]
    assert {e.name for e in catalogue.sources} == {"random", "load", "sample", "digits"}
    assert {e.title for e in catalogue.observables} >= {"energy [boltzmann]", "loss [boltzmann]"}


def test_entries_carry_their_schemas():
    assert CATALOGUE.samplers.get("gibbs", "boltzmann").schema is GibbsSampleOptions
    assert CATALOGUE.samplers.implementation("gibbs", "boltzmann") is GibbsSampler
    assert CATALOGUE.objectives.get("pcd", "boltzmann").defaults()["chains"] == 100
    assert CATALOGUE.schedules.get("constant").schema.model_fields == {}
    assert CATALOGUE.observables.get("log_z", "boltzmann").schema is NoOptions


def test_recall_dynamics_are_not_samplers_of_sample_runs():
    # 'recall ... via glauber(...)' names Glauber dynamics; 'sampler glauber' stays the lattice
    # heat-bath sampler and is not a sampler of Boltzmann sample runs
    assert CATALOGUE.updates.get("glauber", "boltzmann").schema is GibbsOptions
    assert CATALOGUE.samplers.get("glauber", "boltzmann") is None
    assert CATALOGUE.samplers.names("boltzmann") == ["gibbs"]
