"""VMC machinery: Jacobians, SR solves, Metropolis moves, statistics, checkpoints, TFIM L=10."""

import numpy as np
import pydantic
import pytest
import torch

from physml_lang.api import load
from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.quantum import (
    OBSERVABLE_RUNS,
    OBSERVABLES,
    AdamSpec,
    MetropolisSpec,
    SGDSpec,
    SRSpec,
)
from physml_lang.compiler.derive.pauli import PauliSum, PauliTerm, tfim
from physml_lang.runtime.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from physml_lang.runtime.quantum.lattice import nearest_bonds, translation_table
from physml_lang.runtime.quantum.learners import RBM, AutoregressiveGRU, SymmetrizedAutoregressive
from physml_lang.runtime.quantum.measures import QuantumObservable
from physml_lang.runtime.quantum.operator import LocalOperator
from physml_lang.runtime.quantum.registry import QuantumContext, SymmetryError, make_learner
from physml_lang.runtime.quantum.vmc import (
    VMC,
    MetropolisOptions,
    MetropolisSampler,
    OptimizerOptions,
    SROptions,
    diagonal_observables,
    energy_force,
    expectation,
    log_psi_jacobian,
    propose_exchange,
    propose_flip,
    run_vmc,
    split_rhat,
    sr_direction,
)
from physml_lang.runtime.random import RandomStreams


def all_configs(n):
    return LocalOperator.codes_to_configs(torch.arange(2**n), n)


def per_sample_autograd(model, s):
    rows = []
    for b in range(s.shape[0]):
        out = model(s[b : b + 1])[0]
        parts = [out.real, out.imag] if out.is_complex() else [out]
        gs = [
            torch.cat(
                [
                    g.reshape(-1)
                    for g in torch.autograd.grad(x, list(model.parameters()), retain_graph=True)
                ]
            )
            for x in parts
        ]
        rows.append(torch.complex(gs[0], gs[1]) if out.is_complex() else gs[0])
    return torch.stack(rows)


@pytest.mark.parametrize("kind", ["real", "complex", "rnn"])
def test_jacobian_matches_per_sample_autograd(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "rnn":
        model = SymmetrizedAutoregressive(
            AutoregressiveGRU(6, hidden=4, phase="head", generator=g), translation_table((6,))
        )
    else:
        model = RBM(6, alpha=1, complex=kind == "complex", init_std=0.3, generator=g)
    s = all_configs(6)[::5]
    torch.testing.assert_close(
        log_psi_jacobian(model, s, chunk_size=4), per_sample_autograd(model, s)
    )


def test_energy_force_matches_jacobian_formula():
    g = torch.Generator().manual_seed(1)
    model = RBM(6, alpha=1, complex=True, init_std=0.3, generator=g)
    s = all_configs(6)
    e = LocalOperator(tfim(6, nearest_bonds((6,)), 0.7)).local_energy(model, s)
    o = log_psi_jacobian(model, s)
    ref = ((o - o.mean(0)).conj() * (e - e.mean()).unsqueeze(1)).mean(0).real
    torch.testing.assert_close(energy_force(model, s, e), ref)


@pytest.mark.parametrize("complex_", [False, True])
def test_sr_dense_cg_and_numpy_agree(complex_):
    g = torch.Generator().manual_seed(2)
    model = RBM(6, alpha=2, complex=complex_, init_std=0.3, generator=g)
    s = all_configs(6)[torch.randint(0, 64, (40,), generator=g)]
    h = tfim(6, nearest_bonds((6,)), 1.0) + PauliSum([PauliTerm(0.2, (("Y", 0),))], 6)
    e = LocalOperator(h).local_energy(model, s)
    o = log_psi_jacobian(model, s)
    dense, _ = sr_direction(o, e, SROptions(diag_shift=1e-3, solver="dense"))
    cg, info = sr_direction(
        o, e, SROptions(diag_shift=1e-3, solver="cg", cg_tol=1e-12, cg_maxiter=2000)
    )
    on, en = o.numpy(), e.numpy()
    ob, eb = on - on.mean(0), en - en.mean()
    s_np = (ob.conj().T @ ob).real / len(en) + 1e-3 * np.eye(on.shape[1])
    f_np = (ob.conj().T @ eb).real / len(en)
    ref = np.linalg.solve(s_np, f_np)
    np.testing.assert_allclose(dense.numpy(), ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cg.numpy(), ref, rtol=1e-5, atol=1e-7)
    assert info["sr_iterations"] > 0


def exact_probs(model, n):
    with torch.no_grad():
        p = torch.exp(2 * model(all_configs(n)).real)
    return (p / p.sum()).numpy()


@pytest.mark.parametrize("move", ["flip", "exchange"])
def test_metropolis_samples_psi_squared(move):
    n = 6
    g = torch.Generator().manual_seed(3)
    model = RBM(n, alpha=1, init_std=0.4, generator=g)
    opts = MetropolisOptions(
        n_chains=256,
        sweeps_per_sample=1,
        initial_burn_in_sweeps=20,
        move=move,
        magnetization=0 if move == "exchange" else None,
    )
    sampler = MetropolisSampler(n, opts)
    s = sampler.sample(model, 256 * 40, RandomStreams(3)).reshape(-1, n)
    codes = LocalOperator.configs_to_codes(s).numpy()
    p = exact_probs(model, n)
    if move == "exchange":
        assert torch.all(s.sum(1) == 0)
        sector = all_configs(n).sum(1).numpy() == 0
        p = np.where(sector, p, 0.0)
        p /= p.sum()
    freq = np.bincount(codes, minlength=2**n) / len(codes)
    # chains decorrelate within ~1 sweep here; allow for that with a factor 2 on the variance
    sigma = np.sqrt(2 * p * (1 - p) / len(codes))
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-4)


def test_split_rhat():
    rng = np.random.default_rng(0)
    assert abs(split_rhat(rng.normal(size=(400, 8))) - 1.0) < 0.02
    stuck = rng.normal(size=(400, 8)) + np.arange(8)
    assert split_rhat(stuck) > 1.5


def test_options_are_validated_and_catalogue_entries_resolve():
    with pytest.raises(pydantic.ValidationError):
        MetropolisOptions(n_chains=0)
    with pytest.raises(pydantic.ValidationError):
        OptimizerOptions(lr=0.1, bogus=1)
    with pytest.raises(pydantic.ValidationError):
        MetropolisSpec(chains=0)
    with pytest.raises(pydantic.ValidationError):
        SRSpec(solver="kernel")  # a runtime solver the language does not offer
    ctx = QuantumContext(8, shape=(8,), symmetries={"translation", "spin_flip"})
    m = make_learner("rbm", {"alpha": 2}, ctx)
    s = all_configs(8)
    torch.testing.assert_close(m(s[:, translation_table((8,))[3]]), m(s))
    with pytest.raises(SymmetryError):
        make_learner("cnn", {}, QuantumContext(8, symmetries={"translation"}))
    with pytest.raises(SymmetryError):
        make_learner("rbm", {"sign_rule": "marshall"}, QuantumContext(8))
    with pytest.raises(SymmetryError, match="cannot respect"):
        make_learner("rbm", {}, QuantumContext(8, symmetries={"point_group"}))
    with pytest.raises(KeyError):
        make_learner("transformer", {}, ctx)


def _quantum(kind: str) -> dict:
    return {e.name: e for e in CATALOGUE.registry(kind) if e.family == "quantum"}


def test_catalogue_entries_of_quantum_runs_are_declared_and_bound():
    assert set(_quantum("learners")) == {"rbm", "cnn", "rnn"}
    assert set(_quantum("samplers")) == {"metropolis", "autoregressive"}
    assert set(_quantum("optimisers")) == {"sr", "sgd", "adam"}
    assert set(_quantum("updates")) == {"flip", "exchange"}
    assert set(_quantum("observables")) == set(OBSERVABLES)
    for kind in ("learners", "samplers", "optimisers", "updates", "observables", "tasks"):
        assert all(e.implementation is not None for e in _quantum(kind).values()), kind
    for entry in _quantum("learners").values():
        assert entry.facts.symmetries == ("translation", "spin_flip")
        assert entry.facts.domains == ("qubit",)
    assert _quantum("updates")["flip"].implementation is propose_flip
    assert _quantum("updates")["exchange"].implementation is propose_exchange
    obs = {k: e.implementation for k, e in _quantum("observables").items()}
    assert all(isinstance(o, QuantumObservable) for o in obs.values())
    assert {k for k, o in obs.items() if o.exact is None} == {"variance", "r_hat"}
    assert {k for k, o in obs.items() if o.vmc is None} == {"gap"}
    for k, o in obs.items():  # the catalogue's static fact (what physml check reads) agrees
        assert (o.exact is not None, o.vmc is not None) == (
            "exact" in OBSERVABLE_RUNS[k], "vmc" in OBSERVABLE_RUNS[k]), k  # fmt: skip


def test_optimiser_entries_configure_run_vmc():
    opt = CATALOGUE.optimisers.implementation
    sr = opt("sr", "quantum")(SRSpec(lr=0.05, diag_shift=0.1, solver="cg", momentum=0.5))
    assert sr == OptimizerOptions(name="sgd", lr=0.05, momentum=0.5,
                                  sr=SROptions(diag_shift=0.1, solver="cg"))  # fmt: skip
    sgd = opt("sgd", "quantum")(SGDSpec(lr=0.1, lr_decay=0.9, min_lr=0.01))
    assert sgd == OptimizerOptions(name="sgd", lr=0.1, lr_decay=0.9, min_lr=0.01, sr=None)
    adam = opt("adam", "quantum")(AdamSpec())
    assert adam == OptimizerOptions(name="adam", lr=0.01, sr=None)


def test_sampler_entries_build_samplers_from_the_language_options():
    p = load("import TFIM, Heisenberg")
    metropolis = CATALOGUE.samplers.lookup("metropolis", "quantum")
    spec = metropolis.schema(chains=3, sweeps=0.5, burn_in=1, initial_burn_in=4)
    tf = metropolis.implementation(spec, p.model("TFIM", L=6), "cpu")
    assert isinstance(tf, MetropolisSampler)
    assert tf.options == MetropolisOptions(n_chains=3, sweeps_per_sample=0.5, burn_in_sweeps=1,
                                           initial_burn_in_sweeps=4, move="flip")  # fmt: skip
    he = metropolis.implementation(spec, p.model("Heisenberg", L=6), "cpu")  # conserves sum(Z)
    assert (he.options.move, he.options.magnetization) == ("exchange", 0)
    ar = CATALOGUE.samplers.lookup("autoregressive", "quantum")
    draws = ar.implementation(ar.schema(), p.model("TFIM", L=6), "cpu")
    model = AutoregressiveGRU(6, hidden=4, generator=torch.Generator().manual_seed(0))
    assert draws.sample(model, 5, RandomStreams(0)).shape == (5, 1, 6)


@pytest.mark.parametrize("move", [propose_flip, propose_exchange])
def test_moves(move):
    g = torch.Generator().manual_seed(7)
    s = all_configs(6)[torch.randint(0, 64, (500,), generator=g)]
    sp = move(s, RandomStreams(7))
    changed = (sp != s).sum(1)
    if move is propose_flip:
        assert torch.all(changed == 1)
    else:  # a swap of opposite spins (nothing in a fully polarised chain)
        assert torch.all((changed == 2) | ((changed == 0) & (s.sum(1).abs() == 6)))
        assert torch.equal(sp.sum(1), s.sum(1))


def test_observables_against_exact_state():
    # An exactly sampled autoregressive state: estimates must agree with exact sums.
    n = 6
    g = torch.Generator().manual_seed(4)
    model = AutoregressiveGRU(n, hidden=8, generator=g)
    with torch.no_grad():
        model.out.mul_(10.0)
    samples = model.sample(20000, RandomStreams(4)).reshape(200, 100, n)
    x_op = LocalOperator(PauliSum([PauliTerm(1.0, (("X", i),)) for i in range(n)], n))
    est = expectation(x_op, model, samples)
    with torch.no_grad():
        psi = torch.exp(model(all_configs(n))).numpy()
    exact_x = psi @ (x_op.to_sparse() @ psi)
    assert abs(est.mean - exact_x) < 4 * est.stderr
    obs = diagonal_observables(samples, positions=np.arange(n)[:, None], qs=np.array([[np.pi]]))
    conf = all_configs(n).numpy()
    p = psi**2
    exact_m = p @ conf.mean(1)
    assert abs(obs["magnetization"].mean - exact_m) < 4 * obs["magnetization"].stderr
    stag = (conf * (-1.0) ** np.arange(n)).sum(1) ** 2 / n
    sq = obs["structure_factor"][0]
    assert abs(sq.mean - p @ stag) < 4 * sq.stderr
    np.testing.assert_allclose(obs["zz"].numpy(), (conf.T * p) @ conf, atol=0.03)


OPTIMISERS = {"adam": OptimizerOptions(name="adam", lr=0.01, sr=None),  # moments
              "sr-cg": OptimizerOptions(lr=0.02, sr=SROptions(solver="cg"))}  # CG warm start


def _tfim_run(iterations, optimizer, path=None, init_seed=5, resume=False):
    """``iterations`` steps of a VMC (saved to ``path`` at the end, or continued from it; the
    streams' draw counter beside the VMC's tensors, as the run driver keeps it). The run seed
    is an input of the streams, not state: it stays 5; ``init_seed`` seeds the initial weights."""
    streams = RandomStreams(5)
    model = RBM(6, alpha=1, generator=torch.Generator().manual_seed(init_seed))
    sampler = MetropolisSampler(6, MetropolisOptions(n_chains=8))
    state = VMC(LocalOperator(tfim(6, nearest_bonds((6,)), 1.0)), model, sampler,
                OPTIMISERS[optimizer], streams, 64)  # fmt: skip
    if resume:
        saved = load_checkpoint(path, {})
        state.restore(saved.tensors, saved.state["done"])
        streams.restore({"draws": saved.tensors["random/draws"]})
    while state.iteration < iterations:
        state.step()
    if path is not None and not resume:
        tensors = {**state.tensors(), **{f"random/{k}": v for k, v in streams.state().items()}}
        save_checkpoint(path, Checkpoint(tensors, {"done": iterations}), {})
    return state.result(64), model


@pytest.mark.parametrize("optimizer", list(OPTIMISERS))
def test_checkpoint_resume_is_bitwise(tmp_path, optimizer):
    """Three iterations, saved; fresh objects (other initial weights, fresh streams) resumed
    from the file continue to six iterations exactly as an uninterrupted run: parameters,
    optimiser state, chains, the streams' draw counter and the CG warm start are in the
    checkpoint."""
    path = tmp_path / "ckpt.safetensors"
    full, m_full = _tfim_run(6, optimizer)
    _tfim_run(3, optimizer, path)
    res, model = _tfim_run(6, optimizer, path, init_seed=99, resume=True)
    for a, b in zip(model.parameters(), m_full.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert res.history["energy"] == full.history["energy"]
    assert res.energy.mean == full.energy.mean and res.iterations == 6


def test_vmc_tfim_l10_reaches_1e3():
    L, E0 = 10, -12.7849064430
    g = torch.Generator().manual_seed(6)
    model = RBM(L, alpha=1, generator=g)
    chains = MetropolisOptions(n_chains=100, sweeps_per_sample=0.5, burn_in_sweeps=1)
    res = run_vmc(
        tfim(L, nearest_bonds((L,)), 1.0),
        model,
        MetropolisSampler(L, chains),
        None,
        OptimizerOptions(lr=0.05, sr=SROptions(diag_shift=0.01)),
        iterations=60,
        streams=RandomStreams(6),
        n_samples=400,
        eval_samples=4000,
    )
    rel = abs(res.energy.mean - E0) / abs(E0)
    assert rel <= 1e-3, (res.energy, rel)
    assert res.energy.mean > E0 - 4 * res.energy.stderr  # variational
    assert abs(res.extra["r_hat"] - 1.0) < 0.1
