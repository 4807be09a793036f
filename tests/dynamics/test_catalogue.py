"""The dynamics entries of the catalogue: declared with their schemas and facts in the front
end, bound by the runtime, consistent with what the implementations do."""

import numpy as np
import pytest
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue, NoOptions, declare_catalogue
from physml_lang.catalogue import dynamics as declared
from physml_lang.runtime.dynamics import integrators, learners, samplers
from physml_lang.runtime.dynamics import tasks as dynamics_tasks
from physml_lang.runtime.dynamics.learners import (
    HNN,
    InteractionNetwork,
    MLPVectorField,
    SympNet,
    make_learner,
)
from physml_lang.runtime.plans import dynamics as plans
from physml_lang.runtime.statistics import binning_analysis, jackknife

INTEGRATORS = ("leapfrog", "verlet", "yoshida4", "implicit_midpoint", "euler", "rk4")
FIELD_SAMPLERS = ("hmc", "ula", "langevin", "mala")
LEARNERS = ("hnn", "mlp_vector_field", "mlp", "sympnet", "interaction")
OBJECTIVES = ("derivative_mse", "step_mse")


def _dynamics_entries():
    """(registry, entry) of every entry this capability declares."""
    fresh = Catalogue()
    declared.declare(fresh)
    return [(reg.kind, entry) for reg in fresh for entry in reg]


def test_every_declared_entry_is_bound():
    """The bound catalogue has an implementation for each entry of catalogue/dynamics.py."""
    for kind, entry in _dynamics_entries():
        bound = CATALOGUE.registry(kind).get(entry.name, entry.family)
        assert bound is not None and bound.implementation is not None, (kind, entry.title)


def test_bind_on_a_fresh_catalogue_binds_every_dynamics_entry():
    fresh = declare_catalogue()
    dynamics_tasks.bind(fresh)
    for kind, entry in _dynamics_entries():
        assert fresh.registry(kind).get(entry.name, entry.family).implementation is not None


def test_entries_names_families_and_schemas():
    assert set(CATALOGUE.integrators.names()) >= set(INTEGRATORS)
    for name in INTEGRATORS:
        e = CATALOGUE.integrators.get(name)
        assert e.family == "" and "phase_space" in e.facts.kinds and e.doc
        assert e.schema is (declared.ImplicitMidpointOptions if name == "implicit_midpoint"
                            else NoOptions)  # fmt: skip
    assert set(CATALOGUE.samplers.names("field")) == set(FIELD_SAMPLERS)
    for name in FIELD_SAMPLERS:
        e = CATALOGUE.samplers.get(name, "field")
        assert e.family == "field" and set(e.facts.domains) == {"real", "angle"}
        assert e.schema is (declared.HMCOptions if name == "hmc" else declared.LangevinOptions)
    assert set(CATALOGUE.learners.names("phase_space")) == set(LEARNERS)
    assert set(CATALOGUE.objectives.names("phase_space")) >= set(OBJECTIVES)
    for name in OBJECTIVES:
        assert CATALOGUE.objectives.get(name, "phase_space").schema is declared.TrainOptions
    assert set(CATALOGUE.observables.names("field")) == set(declared.FIELD_OBSERVABLES)
    assert CATALOGUE.samplers.get("langevin", "field").doc == "alias of ula"
    assert CATALOGUE.learners.get("mlp", "phase_space").doc == "alias of mlp_vector_field"
    assert CATALOGUE.integrators.get("verlet").doc == "alias of leapfrog"


def test_schemas_live_in_the_catalogue():
    """The runtime uses the catalogue's schemas (moved, not copied)."""
    assert samplers.HMCOptions is declared.HMCOptions
    assert samplers.LangevinOptions is declared.LangevinOptions
    assert integrators.ImplicitMidpointOptions is declared.ImplicitMidpointOptions
    assert integrators.NoOptions is NoOptions
    assert learners.HNNOptions is declared.HNNOptions
    assert plans.EvolveOptions is declared.EvolveOptions
    for name in ("INTEGRATORS", "SAMPLERS", "LEARNERS", "TRAIN_METHODS", "FIELD_OBSERVABLES"):
        for module in (integrators, samplers, learners, dynamics_tasks, plans):
            assert not hasattr(module, name), (module.__name__, name)


@pytest.mark.parametrize("name", INTEGRATORS)
def test_integrator_facts_match_the_implementation(name):
    """The doc says whether it is symplectic; kinds say where it is used (hmc: fields)."""
    entry = CATALOGUE.integrators.get(name)
    integ = integrators.make_integrator(name)
    assert integ.name == name
    alias = entry.doc.startswith("alias of ")
    target = CATALOGUE.integrators.get(entry.doc.removeprefix("alias of ")) if alias else entry
    assert ("not symplectic" not in target.doc) == integ.symplectic
    facts = declared.INTEGRATOR_FACTS[name]  # what check reads, without the implementation
    assert (facts.symplectic, facts.requires_separable, facts.order) == (
        integ.symplectic, integ.requires_separable, integ.order)  # fmt: skip
    hmc_integrators = declared.HMCOptions.model_fields["integrator"].annotation.__args__
    assert ("field" in entry.facts.kinds) == (name in hmc_integrators)


def test_static_facts_cover_every_entry():
    """Every declared integrator and dynamics learner has the static facts check reads."""
    phase_space = {e.name for e in CATALOGUE.integrators if "phase_space" in e.facts.kinds}
    assert set(declared.INTEGRATOR_FACTS) == phase_space
    assert set(declared.LEARNER_OBJECTIVES) == set(CATALOGUE.learners.names("phase_space"))
    assert set(declared.LEARNER_OBJECTIVES.values()) <= set(CATALOGUE.objectives.names())


def test_aliases_share_the_implementation():
    assert (CATALOGUE.samplers.implementation("langevin", "field")
            is CATALOGUE.samplers.implementation("ula", "field"))  # fmt: skip
    assert (CATALOGUE.learners.implementation("mlp", "phase_space")
            is CATALOGUE.learners.implementation("mlp_vector_field", "phase_space"))  # fmt: skip
    assert samplers.make_sampler("langevin", chains=2).name == "ula"


def test_learner_facts_and_objectives():
    """hnn and sympnet respect symplectic by construction; each learner's objective is an entry
    of the objectives registry; the factory builds the right module."""
    modules = {"hnn": HNN, "mlp_vector_field": MLPVectorField, "mlp": MLPVectorField,
               "sympnet": SympNet, "interaction": InteractionNetwork}  # fmt: skip
    for name in LEARNERS:
        entry = CATALOGUE.learners.get(name, "phase_space")
        assert entry.facts.symmetries == {"hnn": ("symplectic",), "sympnet": ("symplectic",),
                                          "interaction": ("translation",)}.get(name, ())
        kind = entry.implementation
        assert CATALOGUE.objectives.get(kind.objective, "phase_space") is not None
        assert kind.objective == ("step_mse" if name == "sympnet" else "derivative_mse")
        assert kind.objective == declared.LEARNER_OBJECTIVES[name]  # the static fact check reads
        model, opts = make_learner(name, 2, torch.Generator().manual_seed(0))
        assert isinstance(model, modules[name]) and isinstance(opts, entry.schema)


def test_field_observable_estimators():
    """The bound estimators: binning means, V <m^2>, jackknife functions of averages at beta
    (susceptibility, Binder, specific heat, helicity modulus over the axes)."""
    rng = np.random.default_rng(0)
    m = np.abs(rng.normal(1.0, 0.1, (200, 4)))
    a = rng.normal(size=(200, 4))
    d1 = [rng.normal(0.0, 2.0, (200, 4)) for _ in range(2)]
    d2 = [rng.normal(12.0, 1.0, (200, 4)) for _ in range(2)]
    s = {"action_density": a, "magnetization": m, "abs_magnetization": m, "m2": m**2, "m4": m**4,
         "twist1_0": d1[0], "twist1_1": d1[1], "twist2_0": d2[0], "twist2_1": d2[1]}  # fmt: skip
    V, beta = 16.0, 0.5

    def est(name):
        return CATALOGUE.observables.implementation(name, "field")(s, V, beta)

    for name in ("action_density", "magnetization", "abs_magnetization"):
        assert est(name).mean == binning_analysis(s[name]).mean
    assert est("m2").mean == pytest.approx(V * binning_analysis(s["m2"]).mean, rel=1e-15)
    chi = jackknife(lambda m2, mm: beta * V * (m2 - mm * mm), [s["m2"], m])
    assert est("susceptibility").mean == chi.mean and est("susceptibility").stderr == chi.stderr
    assert 0.6 < est("binder").mean < 0.7  # a narrow |m| distribution: U -> 2/3
    c = est("specific_heat")
    assert c.mean == pytest.approx(beta**2 * V * a.var(), rel=1e-12) and c.stderr > 0
    ups = est("helicity_modulus")
    ref = sum(d2[mu].mean() - beta * d1[mu].var() for mu in range(2)) / (2 * V)
    assert ups.mean == pytest.approx(ref, rel=1e-12) and 0 < ups.stderr < 0.05


def test_unknown_names_raise_key_errors_naming_the_known():
    with pytest.raises(KeyError, match="known: euler, implicit_midpoint, leapfrog"):
        integrators.make_integrator("magic")
    with pytest.raises(KeyError, match="known: hmc, langevin, mala, ula"):
        samplers.make_sampler("metropolis")
    with pytest.raises(KeyError, match="known: hnn, interaction, mlp, mlp_vector_field, sympnet"):
        make_learner("rbm", 2)
