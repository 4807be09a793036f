"""The gauge-equivariant flow of 2D U(1) links (runtime/gauge_flows/flow.py): invertible, its
log-det equal to the brute-force Jacobian's, exactly gauge equivariant (and its density gauge
invariant), equivariant under the translations its masks respect (multiples of 4), and, trained
by reverse KL at L = 4, beta = 1, an unbiased estimate of the exact log Z.

Exact statements tested to 1e-12 (float64): f(Omega z) = Omega f(z) (mod 2 pi) for every gauge
transformation Omega (the layers add functions of plaquettes to links), and hence
log q(Omega theta) = log q(theta).
"""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.compiler.lower.links import wilson_action
from physml_lang.runtime.gauge.exact import u1_partition_function_log
from physml_lang.runtime.gauge_flows.flow import (
    GaugeFlow,
    circular_spline,
    plaquettes,
    stripe_masks,
)
from physml_lang.runtime.gauge_flows.task import reverse_kl_step
from physml_lang.runtime.generative.estimates import importance_estimate

TWO_PI = 2 * math.pi


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomised(shape: tuple[int, int], layers: int = 8, seed: int = 0,
                scale: float = 0.3) -> GaugeFlow:  # fmt: skip
    """A flow whose heads are random (not the identity it starts as)."""
    gen = torch.Generator().manual_seed(seed)
    flow = GaugeFlow(shape, layers, 6, 2, 3, 6, generator=gen)
    with torch.no_grad():
        for layer in flow.layers:
            w = layer.net.head.weight
            w.copy_(scale * torch.randn(w.shape, generator=gen, dtype=w.dtype))
            b = layer.net.head.bias
            b.copy_(scale * torch.randn(b.shape, generator=gen, dtype=b.dtype))
    return flow


def _angle_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| modulo 2 pi."""
    return float((torch.remainder(a - b + math.pi, TWO_PI) - math.pi).abs().max())


def _z(n: int, shape: tuple[int, int], seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return TWO_PI * torch.rand((n, *shape, 2), generator=gen, dtype=torch.float64)


def test_masks_partition_the_plaquettes_into_active_passive_frozen():
    for mu in (0, 1):
        for off in range(4):
            active, frozen = stripe_masks((8, 8), mu, off)
            assert int(active.sum()) == 16 and int(frozen.sum()) == 32
            assert not bool((active & frozen).any())


def test_the_circular_spline_is_a_smooth_monotone_bijection_of_the_circle():
    gen = torch.Generator().manual_seed(3)
    params = torch.randn(1, 3 * 8 + 1, generator=gen, dtype=torch.float64).expand(4001, -1)
    x = torch.linspace(0, TWO_PI, 4001, dtype=torch.float64).clamp(max=TWO_PI - 1e-12)
    y, log_grad = circular_spline(x, params)
    unrot = torch.remainder(y - y[0], TWO_PI)
    assert bool((unrot[1:] > unrot[:-1]).all())  # monotone once rotated back
    assert float(log_grad[0] - log_grad[-1]).__abs__() < 1e-6  # f'(0) = f'(2 pi): smooth
    x_back, log_grad_inv = circular_spline(y, params, inverse=True)
    assert _angle_diff(x_back, x) < 1e-11
    assert float((log_grad + log_grad_inv).abs().max()) < 1e-10


def test_the_flow_is_invertible_with_opposite_log_dets():
    flow = _randomised((8, 8), layers=16)
    z = _z(16, (8, 8))
    with torch.no_grad():
        theta, logdet = flow(z)
        z_back, logdet_inv = flow.inverse(theta)
    assert _angle_diff(z_back, z) < 1e-12
    assert float((logdet + logdet_inv).abs().max()) < 1e-12
    assert float(logdet.abs().max()) > 1e-2  # not the identity


def test_the_log_det_is_the_brute_force_jacobians():
    """L = 4: the 32 x 32 Jacobian of all links by autograd, its log |det| against the sum of
    the splines' log-derivatives."""
    flow = _randomised((4, 4), layers=8, scale=0.5)
    z = _z(3, (4, 4), seed=5)
    for b in range(3):
        J = torch.autograd.functional.jacobian(
            lambda v: flow(v.reshape(1, 4, 4, 2))[0].reshape(-1), z[b].reshape(-1))
        sign, logabs = torch.linalg.slogdet(J)
        assert float(sign) > 0
        assert float(logabs) == pytest.approx(float(flow(z[b:b + 1])[1].detach()), abs=1e-10)


def test_the_flow_is_exactly_gauge_equivariant_and_its_density_gauge_invariant():
    """theta_mu(x) -> theta_mu(x) + a(x) - a(x + e_mu) with random a: f(Omega z) = Omega f(z)
    and log q(Omega theta) = log q(theta), both to 1e-12."""
    flow = _randomised((8, 8), layers=16)
    z = _z(8, (8, 8))
    a = _z(8, (8, 8), seed=9)[..., 0]

    def gauge(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([t[..., 0] + a - a.roll(-1, 1), t[..., 1] + a - a.roll(-1, 2)], -1)

    with torch.no_grad():
        theta, logdet = flow(z)
        theta_g, logdet_g = flow(torch.remainder(gauge(z), TWO_PI))
        assert _angle_diff(plaquettes(gauge(z)), plaquettes(z)) < 1e-12  # P is invariant
        assert _angle_diff(theta_g, gauge(theta)) < 1e-12
        assert float((logdet_g - logdet).abs().max()) < 1e-12
        lq, lq_g = flow.log_prob(theta), flow.log_prob(gauge(theta))
        assert float((lq - lq_g).abs().max()) < 1e-12


@pytest.mark.parametrize("shift", [(4, 0), (0, 4), (4, 4)])
def test_the_flow_commutes_with_translations_by_the_mask_period(shift):
    flow = _randomised((8, 8), layers=16)
    z = _z(4, (8, 8))

    def translate(t: torch.Tensor) -> torch.Tensor:
        return t.roll(shift, (1, 2))

    with torch.no_grad():
        theta, logdet = flow(z)
        theta_t, logdet_t = flow(translate(z))
    assert _angle_diff(theta_t, translate(theta)) < 1e-12
    assert float((logdet_t - logdet).abs().max()) < 1e-12


def test_a_unit_translation_is_not_a_symmetry_of_the_masks():
    """The check above is not vacuous: a shift by 1 changes the flow's output."""
    flow = _randomised((8, 8), layers=16)
    z = _z(4, (8, 8))
    with torch.no_grad():
        theta, _ = flow(z)
        theta_t, _ = flow(z.roll(1, 1))
    assert _angle_diff(theta_t, theta.roll(1, 1)) > 1e-3


def test_a_trained_flow_estimates_the_exact_log_z_at_l4_beta1():
    """Reverse KL at L = 4, beta = 1 (120 steps), then NIS with 4000 samples: F_NIS within 4
    sigma of the exact -log Z / V (character expansion), F_q above it (a bound)."""
    torch.manual_seed(0)
    L, beta = 4, 1.0
    gen = torch.Generator().manual_seed(0)
    flow = GaugeFlow((L, L), 8, 8, 2, 3, 8, generator=gen)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)

    def action(theta):
        return wilson_action(theta, "u1", beta)

    for _ in range(120):
        u = torch.rand((64, L, L, 2), generator=gen, dtype=torch.float64)
        reverse_kl_step(flow, action, u, 1.0, opt, 1.0)
    with torch.no_grad():
        theta, log_q = flow.sample(torch.rand((4000, L, L, 2), generator=gen,
                                              dtype=torch.float64))  # fmt: skip
        est = importance_estimate(action(theta), log_q, 1.0, L * L)
    exact = -u1_partition_function_log(beta, L) / (L * L)
    assert abs(est.free_energy_nis - exact) < 4 * est.free_energy_nis_err
    assert est.free_energy_q > exact - 4 * est.free_energy_q_err
    assert est.ess_per_sample > 0.3


def test_weights_trained_on_a_small_torus_make_an_exact_flow_on_a_larger_one():
    """The weights of an L = 4 flow in an L = 8 flow (what ``train_extent`` does): on a
    configuration tiled from an L = 4 one, the L = 8 flow gives the tiled output with 4 times
    the log-det (the conditioners are circular, the masks have period 4); its log-det is the
    brute-force Jacobian's on a generic configuration; it is gauge equivariant."""
    small = _randomised((4, 4), layers=8, scale=0.5)
    large = GaugeFlow((8, 8), 8, 6, 2, 3, 6)
    large.load_state_dict(small.state_dict())
    z = _z(3, (4, 4), seed=7)
    with torch.no_grad():
        theta, logdet = small(z)
        theta_l, logdet_l = large(z.repeat(1, 2, 2, 1))
    assert _angle_diff(theta_l, theta.repeat(1, 2, 2, 1)) < 1e-12
    assert float((logdet_l - 4 * logdet).abs().max()) < 1e-10
    z8 = _z(1, (8, 8), seed=8)
    J = torch.autograd.functional.jacobian(
        lambda v: large(v.reshape(1, 8, 8, 2))[0].reshape(-1), z8.reshape(-1))
    sign, logabs = torch.linalg.slogdet(J)
    assert float(sign) > 0
    assert float(logabs) == pytest.approx(float(large(z8)[1].detach()), abs=1e-9)
    a = _z(1, (8, 8), seed=9)[..., 0]
    gauge = torch.stack([z8[..., 0] + a - a.roll(-1, 1), z8[..., 1] + a - a.roll(-1, 2)], -1)
    with torch.no_grad():
        theta8, ld8 = large(z8)
        theta_g, ld_g = large(torch.remainder(gauge, TWO_PI))
    gauge_out = torch.stack([theta8[..., 0] + a - a.roll(-1, 1),
                             theta8[..., 1] + a - a.roll(-1, 2)], -1)  # fmt: skip
    assert _angle_diff(theta_g, gauge_out) < 1e-12
    assert float((ld_g - ld8).abs().max()) < 1e-12
