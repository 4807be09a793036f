"""Learned dynamics: symplectic maps, H_theta conservation, HNN vs MLP rollout energy."""

import pydantic
import pytest
import torch

from physml_lang.runtime.dynamics import make_integrator
from physml_lang.runtime.dynamics.data import initial_conditions, make_dataset, simulate
from physml_lang.runtime.dynamics.learners import (
    HNN,
    MLPVectorField,
    SympNet,
    make_learner,
    rollout,
    train_map,
    train_vector_field,
)
from physml_lang.runtime.random import RandomStreams

from .test_integrators import step_jacobian, symplectic_defect

F64 = torch.float64


def map_jacobian(model: SympNet, z0: torch.Tensor) -> torch.Tensor:
    n = z0.numel() // 2

    def f(z):
        q, p = model(z[:n][None], z[n:][None])
        return torch.cat([q[0], p[0]])

    return torch.autograd.functional.jacobian(f, z0)


@pytest.mark.parametrize("separable", [False, True])
def test_hnn_flow_map_is_symplectic(separable):
    gen = torch.Generator().manual_seed(0)
    model = HNN(2, [16, 16], separable=separable, generator=gen)
    name = "yoshida4" if separable else "implicit_midpoint"
    integ = make_integrator(name, **({} if separable else {"tol": 1e-14}))
    z0 = torch.tensor([0.3, -0.5, 0.8, 0.1], dtype=F64)
    M = step_jacobian(integ, model.system(), z0, 0.1)
    assert symplectic_defect(M) < 1e-11
    # rk4 on the same learned H is not symplectic
    assert symplectic_defect(step_jacobian(make_integrator("rk4"), model.system(), z0, 0.3)) > 1e-9


def test_sympnet_map_is_symplectic_and_mlp_map_is_not():
    gen = torch.Generator().manual_seed(1)
    model = SympNet(3, layers=3, width=8, generator=gen)
    with torch.no_grad():  # make the map strongly nonlinear
        for prm in model.parameters():
            prm.mul_(5.0)
    z0 = torch.randn(6, generator=gen, dtype=F64)
    M = map_jacobian(model, z0)
    assert symplectic_defect(M) < 1e-11
    assert (M - torch.eye(6, dtype=F64)).abs().max() > 0.1  # not trivially the identity
    # an RK4 step of an unstructured MLP vector field is not symplectic
    mlp = MLPVectorField(3, [8], generator=gen)
    defect = symplectic_defect(step_jacobian(make_integrator("rk4"), mlp.system(), z0, 0.5))
    assert defect > 1e-3


def test_dataset_targets_and_noise():
    d = make_dataset("kepler", 6, RandomStreams(2), t_span=2.0, points=11, noise=0.1)
    assert d.q.shape == (6, 11, 4) and d.dq.shape == (6, 11, 4) and d.t.shape == (11,)
    assert torch.allclose(d.dq, d.system.dH_dp(d.q_true, d.p_true))
    assert torch.allclose(d.dp, -d.system.dH_dq(d.q_true, d.p_true))
    noise = torch.cat([(d.q - d.q_true).flatten(), (d.p - d.p_true).flatten()])
    assert abs(float(noise.std()) - 0.1) < 0.02
    E = d.system.hamiltonian(d.q_true, d.p_true)  # clean trajectories conserve energy
    assert float((E - E[:, :1]).abs().max()) < 1e-8
    z0, z1 = d.pairs()
    assert z0.shape == (60, 8) and z1.shape == (60, 8)


def _train_hnn(separable: bool, steps: int = 150):
    streams = RandomStreams(3)
    data = make_dataset("pendulum", 8, streams, t_span=3.0, points=15, noise=0.0)
    model = HNN(1, [24, 24], separable=separable, generator=streams.host_generator())
    res = train_vector_field(model, *data.flat(), streams, steps=steps, lr=3e-3)
    return model, res


def test_hnn_learned_energy_is_conserved_along_its_flow():
    """H_theta is conserved by its own flow: with the implicit midpoint rule the error is
    O(dt^2), bounded, and shrinks 4x when dt halves."""
    model, res = _train_hnn(separable=False)
    assert res.final_loss < 0.5 * res.losses[0]
    q0, p0 = initial_conditions("pendulum", 4, RandomStreams(4))
    errs = []
    for dt in (0.2, 0.1):
        tr = rollout(model, q0, p0, dt, int(round(4 / dt)))
        rel = (tr.energy - tr.energy[0]).abs() / tr.energy[0].abs().clamp_min(1e-3)
        errs.append(float(rel.max()))
    assert errs[0] < 0.02
    assert 3.0 < errs[0] / errs[1] < 5.0


def test_separable_hnn_with_yoshida_conserves_h_theta():
    model, _ = _train_hnn(separable=True, steps=100)
    q0, p0 = initial_conditions("pendulum", 8, RandomStreams(5))
    tr = rollout(model, q0, p0, 0.1, 100)
    assert tr.integrator == "yoshida4"
    rel = (tr.energy - tr.energy[0]).abs() / tr.energy[0].abs().clamp_min(1e-3)
    assert float(rel.max()) < 1e-3


def _energy_mse(model, data, name, n_test=10, T=20.0, steps=100):
    q0, p0 = initial_conditions(name, n_test, RandomStreams(99))
    qt, pt, _ = simulate(data.system, q0, p0, T, steps + 1, substeps=10)
    tr = rollout(model, q0, p0, T / steps, steps, energy=data.system.hamiltonian)
    E_true = data.system.hamiltonian(qt, pt)  # (B, T)
    return float(((tr.energy.T - E_true) ** 2).mean())


def hnn_vs_mlp(hidden, steps, trajectories=25, seed=0, lr=1e-3, horizons=((20.0, 100),)):
    """Energy MSE of rollouts (HNN: implicit midpoint; MLP: RK4) per (T, steps) horizon."""
    streams = RandomStreams(seed)
    data = make_dataset("mass_spring", trajectories, streams.fork(0), t_span=3.0, points=30,
                        noise=0.1)  # fmt: skip
    out = {}
    for cls in (HNN, MLPVectorField):
        model = cls(1, hidden, generator=streams.fork(1).host_generator())
        train_vector_field(model, *data.flat(), streams.fork(2), steps=steps, lr=lr)
        res = [_energy_mse(model, data, "mass_spring", T=T, steps=n) for T, n in horizons]
        out[cls.__name__] = res[0] if len(res) == 1 else res
    return out


def test_hnn_beats_mlp_on_mass_spring_fast():
    mse = hnn_vs_mlp([32, 32], 300, trajectories=10, lr=1e-2)
    assert mse["HNN"] < 1e-3 and mse["HNN"] < 0.2 * mse["MLPVectorField"], mse


@pytest.mark.slow
def test_hnn_vs_mlp_greydanus_mass_spring():
    """Greydanus et al. 2019 setup (mass-spring, 25 trajectories x 30 points on t in [0, 3],
    noise 0.1, 200x200 tanh, Adam 1e-3, 2000 full-batch steps): energy MSE 1.7e-1 (MLP) vs
    3.8e-4 (HNN). Measured here (seed 0): HNN ~2.5e-4 at T = 20, MLP ~1e-3 at T = 20 -- our
    baseline is much better than theirs, so we test the physics instead: the HNN's error stays
    bounded from T = 20 to T = 100 while the MLP's grows (drift), and the HNN wins at both."""
    (h20, h100), (m20, m100) = hnn_vs_mlp(
        [200, 200], 2000, horizons=((20.0, 200), (100.0, 1000))).values()  # fmt: skip
    print(f"energy MSE HNN {h20:.3g} (T=20) {h100:.3g} (T=100); MLP {m20:.3g} {m100:.3g}")
    assert h20 < 1e-3 and h100 < 2 * h20  # bounded
    assert m100 > 3 * m20  # secular drift of the unstructured model
    assert h20 < m20 and h100 < 0.1 * m100


def test_sympnet_learns_pendulum_map():
    streams = RandomStreams(6)
    data = make_dataset("pendulum", 10, streams, t_span=3.0, points=31, noise=0.0)
    z0, z1 = data.pairs()
    model = SympNet(1, layers=2, width=16, generator=streams.host_generator())
    res = train_map(model, z0, z1, streams, steps=150, lr=3e-3)
    assert res.final_loss < 0.05 * res.losses[0]
    tr = rollout(model, z0[:4, :1], z0[:4, 1:], 0.1, 300, energy=data.system.hamiltonian)
    rel = (tr.energy - tr.energy[0]).abs() / tr.energy[0].abs()
    assert torch.isfinite(tr.q).all() and float(rel.max()) < 0.5  # bounded, no blow-up


def test_learner_registry():
    model, opts = make_learner("hnn", 2, torch.Generator().manual_seed(0), hidden=[8])
    assert isinstance(model, HNN) and opts.steps == 2000
    with pytest.raises(pydantic.ValidationError):
        make_learner("hnn", 2, hidden=[])
    with pytest.raises(pydantic.ValidationError):
        make_learner("sympnet", 2, depth=3)
    with pytest.raises(KeyError):
        make_learner("transformer", 2)
