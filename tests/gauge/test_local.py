"""Local (coloured) updates of links and matter for non-Wilson gauge actions (runtime/gauge/
local.py) against exact enumeration and exact limits; the real-arithmetic U(1) Metropolis."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.special import i0, i1

import physml_lang
from physml_lang.compiler.lower.links import lin_links, mean_plaquette, staples_lin
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.gauge import metropolis_sweep
from physml_lang.runtime.gauge.local import LocalSampler, kind_colouring
from physml_lang.runtime.gauge.sampling import _u1_metropolis_sweep, _u1_staple_angles
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis

Z2H = """
model H(L: int = 2, beta: real = 0.7, kappa: real = 0.4) {
    lattice square(L, L, boundary = periodic)
    field U: z2 on links
    field phi: spin on sites
    plaquette P[x] = U[x, 0] * U[x + e0, 1] * U[x + e1, 0] * U[x, 1]
    action S = -beta * sum(P[x] for x in sites)
               - kappa * sum(phi[x] * U[x, mu] * phi[x + e_mu] for (x, mu) in links)
    symmetry gauge, translation
}
"""

U1H = """
model H(L: int = 4, beta: real = 0.0, kappa: real = 1.2) {
    lattice square(L, L, boundary = periodic)
    field U: u1 on links
    field phi: u1 on sites
    action S = -beta * sum(re(U[x, 0] * U[x + e0, 1] * conj(U[x + e1, 0]) * conj(U[x, 1]))
                           for x in sites)
               - kappa * sum(re(conj(phi[x]) * U[x, mu] * phi[x + e_mu]) for (x, mu) in links)
    symmetry gauge, translation
}
"""


def _link_term(U: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Mean of phi[x] U[x, mu] phi[x + e_mu] over links (z2): (B,)."""
    d = phi.dim() - 1
    return sum(phi * U[..., mu] * torch.roll(phi, -1, 1 + mu) for mu in range(d)).flatten(1) \
        .mean(1) / d  # fmt: skip


def _exact_2x2(cm) -> tuple[float, float]:
    states = torch.tensor(list(itertools.product([1.0, -1.0], repeat=12)), dtype=torch.float64)
    U, phi = states[:, :8].reshape(-1, 2, 2, 2), states[:, 8:].reshape(-1, 2, 2)
    S = cm.generic_action(U, {"phi": phi})
    w = torch.exp(-(S - S.min()))
    w = w / w.sum()
    return float((w * mean_plaquette(U, "z2")).sum()), float((w * _link_term(U, phi)).sum())


@pytest.mark.parametrize("kind", ["heatbath", "metropolis"])
def test_z2_higgs_2x2_against_exact_enumeration(kind: str) -> None:
    cm = physml_lang.compile(Z2H).compiled
    assert not cm.is_wilson
    p_exact, l_exact = _exact_2x2(cm)  # 0.753601, 0.471150 (4096 states)
    s = LocalSampler(cm, kind, hits=1)
    g = RandomStreams(3)
    U = cm.group.random((2048, 2, 2, 2), g)
    s.start(U, True, g)
    for _ in range(20):
        U = s.step(U, g)
    P, Lk = [], []
    for _ in range(120):
        U = s.step(U, g)
        P.append(mean_plaquette(U, "z2"))
        Lk.append(_link_term(U, s.matter["phi"]))
    for series, exact in ((P, p_exact), (Lk, l_exact)):
        est = binning_analysis(torch.stack(series).numpy())
        assert abs(est.mean - exact) < 4 * est.stderr, (kind, est, exact)


def test_u1_higgs_beta0_link_term_is_bessel_ratio() -> None:
    # beta = 0: in unitary gauge every link decouples, <cos(phi_y + theta - phi_x)> = I1/I0(k)
    cm = physml_lang.compile(U1H).compiled
    s = LocalSampler(cm, "metropolis", step=2.0, hits=2)
    g = RandomStreams(5)
    U = cm.group.random((256, 4, 4, 2), g)
    s.start(U, True, g)
    for _ in range(20):
        U = s.step(U, g)
    vals = []
    for _ in range(100):
        U = s.step(U, g)
        ph = s.matter["phi"]
        vals.append(sum(torch.cos(U[..., mu] + torch.roll(ph, -1, 1 + mu) - ph)
                        for mu in range(2)).flatten(1).mean(1) / 2)  # fmt: skip
    est = binning_analysis(torch.stack(vals).numpy())
    exact = i1(1.2) / i0(1.2)
    assert abs(est.mean - exact) < 4 * est.stderr, (est, exact)


def test_colouring_separates_every_shared_density_location() -> None:
    cm = physml_lang.compile(Z2H.replace("L: int = 2", "L: int = 4")).compiled
    la = LocalSampler(cm, "heatbath").local
    offs = la.stencil[("phi", None)]
    assert offs == {(0, 0), (1, 0), (0, 1)}
    masks = kind_colouring(offs, (4, 4))
    assert len(masks) == 4 and torch.stack(masks).sum(0).eq(1).all()
    with pytest.raises(ValueError):
        kind_colouring({(0, 0), (2, 0)}, (2, 2))  # the same variable twice in one density


def test_higgs_runs_through_the_language_and_hmc_is_refused(tmp_path) -> None:
    src = Z2H.replace("L: int = 2", "L: int = 4") + """
run r {
    model H(beta = 0.0, kappa = 0.5)
    sampler heatbath(chains = 64, sweeps = 60, burn_in = 10)
    measure plaquette, link = sum(phi[x] * U[x, mu] * phi[x + e_mu] for (x, mu) in links) / 32,
            energy = action / sites
}
"""  # fmt: skip
    res = physml_lang.load(src).run(out=tmp_path)
    row = res.rows[0]
    assert abs(row["link"]["mean"] - math.tanh(0.5)) < 4 * row["link"]["stderr"]
    assert abs(row["energy"]["mean"] + 2 * 0.5 * math.tanh(0.5)) < 4 * row["energy"]["stderr"]
    with pytest.raises(PhysmlError) as info:
        physml_lang.load(
            src.replace("sampler heatbath(", "sampler hmc(")
        ).check()
    assert info.value.diagnostics[0].code == "P502"
    # the stdlib 3D Z2 Higgs model is sampleable (check derives it and plans its local updates)
    assert physml_lang.load("import Z2Higgs\nrun s {\n model Z2Higgs(L = 4)\n"
                            " sampler metropolis(sweeps = 2)\n}\n").check()  # fmt: skip


def test_u1_real_staple_angles_equal_complex_staples() -> None:
    g = torch.Generator().manual_seed(0)
    for shape in ((4, 6), (4, 4, 4)):
        th = (torch.rand((2, *shape, len(shape)), generator=g, dtype=torch.float64) * 2 - 1) \
            * math.pi  # fmt: skip
        lin = lin_links(th, "u1")
        from physml_lang.runtime.gauge import get_group

        for mu in range(len(shape)):
            A = staples_lin(lin, get_group("u1"), mu)
            t = th[..., mu]
            ref = (torch.exp(1j * t) * A).real
            val = sum(torch.cos(t + a) for a in _u1_staple_angles(list(th.unbind(-1)), mu))
            assert torch.allclose(val, ref, atol=1e-12)


def test_u1_metropolis_both_evaluations_agree() -> None:
    # same random stream -> identical chains whether cos(t + a_k) or (C, S) sums are used
    th = torch.zeros((2, 4, 4, 4, 3), dtype=torch.float64)
    g1, g2 = RandomStreams(1), RandomStreams(1)
    a, _ = metropolis_sweep(th, "u1", 1.0, g1, 1.0, 6)  # 3D, 6 hits: (C, S) form
    b, _ = _u1_metropolis_sweep(th, 1.0, g2, 1.0, 6, force_angles=True)
    assert torch.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("kind", ["heatbath", "metropolis"])
def test_local_chains_do_not_depend_on_their_batch(kind: str) -> None:
    """Links and matter of chain b evolve identically in a batch of 2 and of 5."""
    cm = physml_lang.compile(Z2H.replace("L: int = 2", "L: int = 4")).compiled
    s = LocalSampler(cm, kind, hits=2)

    def chains(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        streams = RandomStreams(8)
        U = cm.group.random((n, 4, 4, 2), streams)
        s.start(U, True, streams)
        for _ in range(4):
            U = s.step(U, streams)
        return U, s.matter["phi"]

    (U5, phi5), (U2, phi2) = chains(5), chains(2)
    assert torch.equal(U2, U5[:2]) and torch.equal(phi2, phi5[:2])
