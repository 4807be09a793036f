"""Groups, plaquettes, Wilson/Polyakov loops, gauge transformations, translations, forces."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from physml_lang.compiler.lower.groups import su2_from_quaternion
from physml_lang.runtime.gauge import (
    gauge_force,
    gauge_invariance_violation,
    gauge_transform,
    gauge_transform_sites,
    gauge_violations,
    get_group,
    hot_start,
    link_colouring,
    plaquette_field,
    polyakov_loops,
    random_gauge,
    staples,
    topological_charge,
    translate,
    u1_plaquette_angles,
    wilson_action,
    wilson_loops,
)

GROUPS = ["z2", "u1", "su2"]
SHAPES = [(4, 6), (4, 4, 2), (2, 4, 2, 4)]


@pytest.mark.parametrize("name", GROUPS)
def test_group_axioms(name, gen):
    G = get_group(name)
    a, b, c = (G.random((50,), gen) for _ in range(3))
    close = torch.testing.assert_close
    close(G.multiply(G.multiply(a, b), c), G.multiply(a, G.multiply(b, c)))
    e = G.identity((50,), dtype=a.dtype)
    close(G.multiply(a, G.inverse(a)), e, atol=1e-12, rtol=0)
    close(G.retr(e), torch.ones(50, dtype=torch.float64))
    assert float(G.distance_from_group(a)) < 1e-12
    close(G.project(a), a)
    # linear form is a homomorphism
    close(G.to_lin(G.multiply(a, b)), G.lin_mul(G.to_lin(a), G.to_lin(b)))


def test_su2_projection_and_det(gen):
    G = get_group("su2")
    a = G.random((100,), gen)
    noisy = a + 1e-3 * torch.randn(a.shape, generator=gen, dtype=torch.complex128)
    p = G.project(noisy)
    assert float(G.distance_from_group(p)) < 1e-12
    assert float((p - a).abs().max()) < 1e-2


def test_schema_rejects_options():
    with pytest.raises(ValidationError):
        get_group("u1", charge=2)
    with pytest.raises(KeyError):
        get_group("su3")


@pytest.mark.parametrize("name", GROUPS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gauge_invariance(name, shape, gen, streams):
    G = get_group(name)
    U = hot_start(name, 3, shape, streams)
    om = random_gauge(name, (3, *shape), gen, dtype=U.dtype)
    gU = gauge_transform(U, om, name)
    assert float(G.distance_from_group(gU)) < 1e-12
    torch.testing.assert_close(plaquette_field(gU, name), plaquette_field(U, name))
    torch.testing.assert_close(wilson_action(gU, name, 1.7), wilson_action(U, name, 1.7))
    torch.testing.assert_close(wilson_loops(gU, name, 2, 1), wilson_loops(U, name, 2, 1))
    torch.testing.assert_close(polyakov_loops(gU, name), polyakov_loops(U, name))
    assert gauge_invariance_violation(lambda V: wilson_action(V, name, 2.0), U, name, gen) < 1e-10


def test_violation_names_breaking_term(gen, streams):
    U = hot_start("u1", 2, (4, 4), streams)
    terms = {
        "plaquette": lambda V: wilson_action(V, "u1", 1.0),
        "link_mass": lambda V: torch.cos(V).flatten(1).sum(1),  # not gauge invariant
    }
    v = gauge_violations(terms, U, "u1", gen)
    assert v["plaquette"] < 1e-10 and v["link_mass"] > 1e-2


@pytest.mark.parametrize("name", GROUPS)
def test_matter_hopping_invariant(name, gen, streams):
    """Re sum_x phi_x^dag U_mu(x) phi_{x+mu} is invariant under phi -> Omega phi, U -> gU."""
    G = get_group(name)
    shape = (4, 4)
    U = hot_start(name, 2, shape, streams)
    if name == "su2":
        phi = torch.randn((2, *shape, 2), generator=gen, dtype=torch.complex128)
    else:
        phi = torch.randn((2, *shape), generator=gen, dtype=torch.complex128)

    def hop(V, f):
        total = 0
        for mu in range(2):
            u = G.to_lin(V[:, :, :, mu])
            f2 = torch.roll(f, -1, dims=1 + mu)
            if name == "su2":
                total = total + (f.conj()[..., None, :] @ u @ f2[..., None]).real.sum((1, 2, 3, 4))
            else:
                total = total + (f.conj() * u * f2).real.sum((1, 2))
        return total

    om = random_gauge(name, (2, *shape), gen, dtype=U.dtype)
    torch.testing.assert_close(hop(gauge_transform(U, om, name), gauge_transform_sites(phi, om,
                                                                                      name)),
                               hop(U, phi))  # fmt: skip


@pytest.mark.parametrize("name", GROUPS)
def test_translation(name, streams):
    U = hot_start(name, 2, (4, 6, 4), streams)
    a = (1, 3, 2)
    tU = translate(U, a)
    torch.testing.assert_close(wilson_action(tU, name, 1.0), wilson_action(U, name, 1.0))
    torch.testing.assert_close(plaquette_field(tU, name), translate(plaquette_field(U, name), a))


def test_u1_paths_agree(streams):
    """Generic (complex phase) plaquettes and Wilson loops equal the angle formulas."""
    th = hot_start("u1", 2, (6, 4, 4), streams)
    G = get_group("u1")
    from physml_lang.compiler.lower.links import plaquettes

    torch.testing.assert_close(G.lin_retr(plaquettes(th, G)), torch.cos(u1_plaquette_angles(th)))
    torch.testing.assert_close(wilson_loops(th, "u1", 1, 1), plaquette_field(th, "u1"))
    # 2x3 loop in plane (0,1) from angles directly
    t0, t1 = th[..., 0], th[..., 1]

    def sh(f, mu, k):
        return torch.roll(f, -k, dims=1 + mu)

    line0 = t0 + sh(t0, 0, 1)
    line1 = t1 + sh(t1, 1, 1) + sh(t1, 1, 2)
    ang = line0 + sh(line1, 0, 2) - sh(line0, 1, 3) - line1
    torch.testing.assert_close(wilson_loops(th, "u1", 2, 3)[..., 0], torch.cos(ang))
    # Polyakov loop along the last direction
    pl = polyakov_loops(th, "u1")
    torch.testing.assert_close(pl, torch.polar(torch.ones_like(pl.real),
                                               th[..., 2].sum(3, keepdim=True).expand_as(pl.real)))  # fmt: skip


def test_topological_charge_integer(streams):
    th = hot_start("u1", 20, (6, 8), streams)
    q = topological_charge(th)
    torch.testing.assert_close(q, torch.round(q), atol=1e-10, rtol=0)
    assert q.abs().max() > 0


@pytest.mark.parametrize("name", GROUPS)
def test_staples_give_local_action(name, gen, streams):
    G = get_group(name)
    U = hot_start(name, 2, (4, 4, 4), streams)
    A = staples(U, name)
    S0 = wilson_action(U, name, 1.0)
    for x, y, z, mu in [(0, 0, 0, 0), (1, 2, 3, 1), (3, 3, 0, 2)]:
        V = U.clone()
        new = G.random((2,), gen, dtype=U.dtype)
        V[:, x, y, z, mu] = new

        def loc(u, x=x, y=y, z=z, mu=mu):
            return -G.lin_retr(G.lin_mul(G.to_lin(u), A[:, x, y, z, mu]))

        dS = wilson_action(V, name, 1.0) - S0
        torch.testing.assert_close(dS, loc(new) - loc(U[:, x, y, z, mu]))


@pytest.mark.parametrize("shape", [(4, 4), (4, 2, 6), (2, 2, 2, 4)])
def test_colouring_independent(shape, gen, streams):
    """Changing all links of one colour changes S by the sum of the local changes."""
    name = "su2"
    G = get_group(name)
    d = len(shape)
    U = hot_start(name, 2, shape, streams)
    A = staples(U, name)
    colours = link_colouring(shape)
    assert len(colours) == 2 * d
    cover = torch.zeros(shape + (d,), dtype=torch.long)
    for mu, mask in colours:
        cover[..., mu] += mask.long()
        new = G.random(U.shape[:-2], gen)
        sel = torch.zeros(shape + (d,), dtype=torch.bool)
        sel[..., mu] = mask
        V = torch.where(sel[None, ..., None, None], new, U)
        local = -(G.lin_retr(G.lin_mul(V, A)) - G.lin_retr(G.lin_mul(U, A))) * sel[None]
        dS = wilson_action(V, name, 1.0) - wilson_action(U, name, 1.0)
        torch.testing.assert_close(dS, local.flatten(1).sum(1))
    assert bool((cover == 1).all())
    with pytest.raises(ValueError):
        link_colouring((4, 3))


def test_forces_match_autograd(streams):
    th = hot_start("u1", 2, (4, 4, 4), streams).requires_grad_(True)
    wilson_action(th, "u1", 1.3).sum().backward()
    torch.testing.assert_close(gauge_force(th.detach(), "u1", 1.3), -th.grad)
    U = hot_start("su2", 2, (4, 4, 4), streams)
    w = torch.zeros(*U.shape[:-2], 3, dtype=torch.float64, requires_grad=True)
    # exp(i w.sigma/2) U to first order in w
    X = su2_from_quaternion(torch.cat([torch.ones_like(w[..., :1]), w / 2], -1))
    wilson_action(X @ U, "su2", 1.7).sum().backward()
    torch.testing.assert_close(gauge_force(U, "su2", 1.7), -w.grad)
    assert math.isfinite(float(w.grad.abs().sum()))
