"""L-CNN: exact gauge covariance / invariance and translation equivariance; baseline shapes."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from physml_lang.runtime.gauge import (
    gauge_transform,
    gauge_transform_adjoint,
    hot_start,
    random_gauge,
    translate,
)
from physml_lang.runtime.gauge.lcnn import (
    LConv,
    link_matrices,
    make_learner,
    plaquette_features,
)


@pytest.mark.parametrize("group,shape", [("su2", (4, 4)), ("u1", (4, 6)), ("su2", (4, 2, 4)),
                                         ("z2", (4, 4))])  # fmt: skip
def test_lcnn_gauge_equivariance(group, shape, gen, streams):
    d = len(shape)
    model = make_learner("lcnn", group, d, generator=gen, channels=[3, 4], kernel_size=2)
    model = model.double()
    U = hot_start(group, 2, shape, streams)
    om = random_gauge(group, (2, *shape), gen, dtype=U.dtype)
    gU = gauge_transform(U, om, group)
    with torch.no_grad():
        f, gf = model.features(U), model.features(gU)
        # covariant features transform exactly as declared: W -> Omega W Omega^dag
        torch.testing.assert_close(gf, gauge_transform_adjoint(f, om, group))
        torch.testing.assert_close(model(gU), model(U))
        torch.testing.assert_close(model.density(gU), model.density(U))


def test_lconv_transport_su2(gen, streams):
    """LConv with K = 2 covariant for a non-abelian group on its own (random input features)."""
    shape = (6, 4)
    U = hot_start("su2", 2, shape, streams)
    M = link_matrices(U, "su2")
    W = plaquette_features(M)
    conv = LConv(1, 2, 2, kernel_size=2, generator=gen).double()
    conv.weight.data = conv.weight.data.to(torch.complex128)
    om = random_gauge("su2", (2, *shape), gen)
    gM = link_matrices(gauge_transform(U, om, "su2"), "su2")
    gW = gauge_transform_adjoint(W, om, "su2")
    with torch.no_grad():
        torch.testing.assert_close(conv(gW, gM), gauge_transform_adjoint(conv(W, M), om, "su2"))


@pytest.mark.parametrize("group", ["su2", "u1"])
def test_lcnn_translation_equivariance(group, gen, streams):
    model = make_learner("lcnn", group, 2, generator=gen, channels=[2, 3]).double()
    U = hot_start(group, 2, (6, 4), streams)
    a = (2, 3)
    with torch.no_grad():
        torch.testing.assert_close(model.density(translate(U, a)),
                                   translate(model.density(U), a))  # fmt: skip
        torch.testing.assert_close(model(translate(U, a)), model(U))


def test_lcnn_any_size_and_backward(gen, streams):
    model = make_learner("lcnn", "u1", 2, generator=gen, readout="sum")
    for L in (4, 8):
        U = hot_start("u1", 3, (L, L), streams)
        out = model(U)
        assert out.shape == (3, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_plain_cnn_is_not_gauge_invariant(gen, streams):
    model = make_learner("gauge_cnn", "u1", 2).double()
    U = hot_start("u1", 2, (6, 6), streams)
    om = random_gauge("u1", (2, 6, 6), gen)
    with torch.no_grad():
        assert (model(gauge_transform(U, om, "u1")) - model(U)).abs().max() > 1e-6
        torch.testing.assert_close(model(translate(U, (1, 2))), model(U))


def test_learner_options():
    with pytest.raises(ValidationError):
        make_learner("lcnn", "u1", 2, chanels=[2])
    with pytest.raises(ValidationError):
        make_learner("lcnn", "u1", 2, readout="max")
