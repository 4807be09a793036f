"""Derived quantities of Boltzmann models against brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch

import physml_lang
from physml_lang.catalogue.boltzmann import AdamOptions, CDOptions, ConstantOptions, PCDOptions
from physml_lang.runtime.learners import ais_log_z, exact_log_z
from physml_lang.runtime.learners.train import Trainer
from physml_lang.runtime.random import RandomStreams

from .conftest import rbm


def all_states(values, n):
    return torch.tensor(list(itertools.product(values, repeat=n)), dtype=torch.float64)


@pytest.mark.parametrize("vdom,hdom", [("binary", "binary"), ("spin", "binary"), ("spin", "spin")])
def test_energy_conditionals_free_energy(vdom, hdom):
    m = rbm(vdom, hdom)
    W, a, b = (m.params[k].detach() for k in "Wab")
    dv, dh = m.domains["v"].values(), m.domains["h"].values()
    V, H = all_states(dv, 6), all_states(dh, 4)
    v = V.repeat_interleave(len(H), 0)
    h = H.repeat(len(V), 1)
    e = m.energy({"v": v, "h": h}).detach()
    torch.testing.assert_close(e, -(v @ a) - (h @ b) - ((v @ W) * h).sum(-1))
    # P(h_j = 1 | v) and P(v_i = 1 | h) from the derived local energies vs enumeration
    with torch.no_grad():
        eh = m.local_energies("h", {"v": V, "h": torch.zeros(len(V), 4, dtype=torch.float64)})
        ev = m.local_energies("v", {"v": torch.zeros(len(H), 6, dtype=torch.float64), "h": H})
    p_h = torch.softmax(-eh, 0)[1]
    p_v = torch.softmax(-ev, 0)[1]
    w = torch.exp(-e).reshape(len(V), len(H))
    brute_h = (w[:, :, None] * (H[None] == dh[1])).sum(1) / w.sum(1, keepdim=True)
    brute_v = (w.T[:, :, None] * (V[None] == dv[1])).sum(1) / w.T.sum(1, keepdim=True)
    torch.testing.assert_close(p_h, brute_h)
    torch.testing.assert_close(p_v, brute_v)
    # free energy with h summed: F(v) = -log sum_h exp(-E(v, h))
    F = m.free_energy({"v": V}).detach()
    torch.testing.assert_close(F, -torch.log(w.sum(1)))
    assert m.blocks == ["v", "h"]


def test_emitted_free_energy_closed_forms():
    assert "log(1 + exp(" in rbm("spin", "binary").emit_sympy()  # softplus
    assert "log(2*cosh(" in rbm("spin", "spin").emit_sympy()


def test_hopfield_energy_matches_spine():
    text = """
    model H(N: int = 30, P: int = 4) {
        graph complete(N)
        field s: spin on sites
        data xi: spin[P, N] = random(seed = 2)
        param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
        param hf on sites = normal(0, 1, seed = 3)
        energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs) - sum(hf[i] * s[i] for i in sites)
    }
    """
    p = physml_lang.compile(text)
    spine = p.compiled
    m = p.compile_ir(spine.ir, kind="boltzmann", dtype=torch.float32)
    assert m.blocks == []  # s interacts with itself: site-by-site updates
    s = torch.randint(0, 2, (7, 30), generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    torch.testing.assert_close(m.energy({"s": s}), spine.energy(s), rtol=1e-5, atol=1e-4)
    le = m.local_energies("s", {"s": s})
    ref = torch.stack([spine.fields["s"].local_energy({"s": s}, v) for v in (-1.0, 1.0)])
    torch.testing.assert_close(le, ref, rtol=1e-5, atol=1e-4)
    for k in (0, 17):
        torch.testing.assert_close(m.local_energies("s", {"s": s}, k), le[:, :, k])


@pytest.mark.parametrize("nv,nh", [(6, 4), (10, 10)])
def test_ais_against_exact(nv, nh):
    m = rbm(Nv=nv, Nh=nh)
    exact = exact_log_z(m)
    est, err = ais_log_z(m, betas=300, chains=200, streams=RandomStreams(1))
    assert abs(est - exact) < 4 * err + 0.02, (est, err, exact)


def _exact_gradient(m, data):
    log_z = exact_log_z  # noqa: F841
    V = all_states(m.domains["v"].values(), m.sets["visible"])
    loss = m.free_energy({"v": data}).mean() + torch.logsumexp(-m.free_energy({"v": V}), 0)
    return torch.autograd.grad(loss, list(m.params.values()))


@pytest.mark.parametrize("objective", ["cd", "pcd"])
def test_cd_pcd_gradients_against_exact(objective):
    m = rbm()
    g = torch.Generator().manual_seed(3)
    data = (torch.rand(4000, 6, generator=g) < 0.3).double()
    exact = _exact_gradient(m, data)
    oopts = CDOptions(k=30) if objective == "cd" else PCDOptions(k=40, chains=4000)
    t = Trainer(m, data, objective, oopts, "adam", AdamOptions(), "constant", ConstantOptions(),
                1, 4000, RandomStreams(3))  # fmt: skip
    neg = t.negatives(data)[t.field]
    loss = t.free_energy(data).mean() - t.free_energy(neg).mean()
    grads = torch.autograd.grad(loss, list(m.params.values()))
    flat = torch.cat([x.reshape(-1) for x in grads])
    ref = torch.cat([x.reshape(-1) for x in exact])
    cos = float(flat @ ref / (flat.norm() * ref.norm()))
    rel = float((flat - ref).norm() / ref.norm())
    assert cos > 0.99 and rel < 0.12, (cos, rel)
    # CD-1 is biased but points the same way
    if objective == "cd":
        t1 = Trainer(m, data, "cd", CDOptions(k=1), "adam", AdamOptions(), "constant",
                     ConstantOptions(), 1, 4000, RandomStreams(4))  # fmt: skip
        neg = t1.negatives(data)[t1.field]
        loss = t1.free_energy(data).mean() - t1.free_energy(neg).mean()
        g1 = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, list(m.params.values()))])
        assert float(g1 @ ref / (g1.norm() * ref.norm())) > 0.8


@pytest.mark.parametrize("update", ["block", "sequential"])
def test_a_chain_is_the_same_in_any_batch(update):
    """Chain b draws from stream b: the first chains of a batch of 3 and of 8 run identically
    (block sweeps of an RBM; sequential heat-bath sweeps of a Hopfield net at T = 1)."""
    from physml_lang.runtime.learners.gibbs import GibbsSampler, random_state

    if update == "block":
        m = rbm("spin", "binary")
    else:
        p = physml_lang.load("""
        model H(N: int = 12, P: int = 2) {
            graph complete(N)
            field s: spin on sites
            data xi: spin[P, N] = random(seed = 2)
            param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
            energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
        }""")
        m = p.compile_ir(p.instantiate("H", {}), kind="boltzmann", dtype=torch.float64)
    runs = []
    for chains in (3, 8):
        streams = RandomStreams(5)
        sampler = GibbsSampler(m, 1.0, streams)
        state = random_state(m, streams, chains)
        for _ in range(4):
            state = sampler.sweep(state)
        runs.append(state)
    for f in m.domains:
        torch.testing.assert_close(runs[0][f], runs[1][f][:3], rtol=0, atol=0)
