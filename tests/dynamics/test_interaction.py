"""The interaction network (``learner F = interaction(...)``): pairwise forces antisymmetric by
construction, so the total momentum of its rollouts is conserved to round-off, while an
unstructured MLP vector field trained on the same N-body trajectories drifts."""

from __future__ import annotations

import pytest
import torch

from physml_lang.api import load
from physml_lang.catalogue.dynamics import TrajectoryOptions
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.dynamics.data import initial_states, simulated
from physml_lang.runtime.dynamics.learners import (
    InteractionNetwork,
    make_learner,
    momentum_drift,
    rollout,
    total_momentum,
    train_vector_field,
)
from physml_lang.runtime.random import RandomStreams

F64 = torch.float64

RUN = """
import SpringCluster
learner IN = interaction(hidden = [32, 32], dims = DIMS) respecting translation
learner baseline = mlp(hidden = [32, 32])
run springs {
    model SpringCluster(N = 3, D = 2)
    trajectories count = 4, points = 10, t_span = 2.0, noise = 0.0, start = normal, radius = [0.5, 1.0]
    train IN, baseline via derivative_mse(steps = 20, lr = 3e-3)
    rollout count = 2, horizon = 2, steps = 20
}
"""


def test_pair_forces_cancel_and_depend_on_differences_only():
    gen = torch.Generator().manual_seed(0)
    net = InteractionNetwork(5 * 3, 3, [16, 16], generator=gen)
    q = 2 * torch.randn(7, 15, generator=gen, dtype=F64)
    p = torch.randn(7, 15, generator=gen, dtype=F64)
    with torch.no_grad():
        qdot, pdot = net.vector_field(q, p)
    assert qdot.shape == pdot.shape == (7, 15)
    scale = float(pdot.detach().abs().max())
    assert scale > 1e-3  # a non-trivial force
    assert float(total_momentum(pdot, 3).abs().max()) < 1e-14 * 10 * scale
    # a global translation of every particle changes no force
    shift = torch.tensor([0.7, -1.3, 2.1], dtype=F64).repeat(5)
    with torch.no_grad():
        moved = net.vector_field(q + shift, p)[1]
        perm = torch.tensor([3, 4, 5, 0, 1, 2, *range(6, 15)])
        swapped = net.vector_field(q[:, perm], p[:, perm])[1]
    torch.testing.assert_close(moved, pdot, rtol=1e-12, atol=1e-12)
    # exchanging two particles exchanges their forces (the network is one function of a pair)
    torch.testing.assert_close(swapped, pdot[:, perm], rtol=1e-12, atol=1e-12)


def test_learned_rollouts_conserve_momentum_and_mlp_does_not():
    """Both learners fitted to the same spring-cluster trajectories (N = 4 in 2D); rk4 rollouts
    of 200 steps: the interaction network keeps sum_i p_i to ~1e-13 of sum_i |p_i|, the MLP
    drifts by more than 1e-4."""
    cm = load("import SpringCluster\n").model("SpringCluster", N=4, D=2)
    o = TrajectoryOptions(count=12, points=20, t_span=4.0, noise=0.0, start="normal",
                          radius=[0.5, 1.0])  # fmt: skip
    t, q, p, dq, dp = simulated(cm, o, RandomStreams(0).fork(-1))
    flat = [x.reshape(-1, cm.n) for x in (q, p, dq, dp)]
    q0, p0 = initial_states(cm, o, 4, RandomStreams(0).fork(-2))
    drifts = {}
    for name in ("interaction", "mlp"):
        gen = torch.Generator().manual_seed(1)
        model, _ = make_learner(name, cm.n, gen, hidden=[32, 32])
        res = train_vector_field(model, *flat, RandomStreams(1), steps=150, lr=3e-3)
        assert res.final_loss < res.losses[0]
        tr = rollout(model, q0, p0, 0.05, 200)
        assert torch.isfinite(tr.p).all()
        drifts[name] = float(momentum_drift(tr.p, 2).max())
    print(drifts)
    assert drifts["interaction"] < 1e-12, drifts
    assert drifts["mlp"] > 1e-4, drifts


def test_language_run_and_static_errors():
    pytest.importorskip("physml_lang.runtime.dynamics.tasks")
    res = load(RUN.replace("DIMS", "2")).run(seed=0)
    rows = {r["learner"]: r for r in res.rows}
    assert rows["IN"]["kind"] == "interaction" and rows["IN"]["diverged"] == 0
    # dims that do not divide the phase space: a located P429, not a traceback
    with pytest.raises(PhysmlError) as err:
        load(RUN.replace("DIMS", "3").replace("N = 3", "N = 4")).run(seed=0)
    assert err.value.diagnostics[0].code == "P431"
    # the interaction network respects translation, not the symplectic structure
    with pytest.raises(PhysmlError) as err:
        load(RUN.replace("DIMS", "2").replace("respecting translation", "respecting symplectic"))
    assert err.value.diagnostics[0].code == "P501"
