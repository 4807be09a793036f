"""Physics validation of coupling flows against physml's own HMC (slow and long).

- slow: phi^4 at the standard flow-tutorial point (8 x 8, m2 = -4, lam = 8; Albergo, Kanwar,
  Shanahan 2019): a Z2-equivariant spline flow trained by reverse KL and Metropolis-corrected
  (neural MCMC) agrees with HMC on <|M|> and V <M^2> within 4 sigma of the combined error, with
  ESS / N >= 0.05 (the issue's target) and <M> = 0 within 4 sigma;
- long: the hopping form on 16 x 16 in the broken phase (kappa = 0.27, lam = 0.022): the
  Z2-equivariant flow, warm-started by forward KL on HMC samples of both modes, gives <M> = 0
  within errors (a flow collapsed onto one mode would not) and <|M|> agreeing with HMC within
  4 sigma. Measured (seed 0, ~6 min on a loaded core): <M> = -0.02 +- 0.15, <|M|> = 0.646 +-
  0.056 against HMC's 0.743 +- 0.012 (1.7 sigma); ESS / N is only 1.5e-4 and the neural MCMC
  acceptance 0.9%, so the error bars are wide: a weak check, not a good flow (without the
  warm start, 600 reverse-KL steps give <|M|> = 0.35 +- 0.04, a failure).
- long: the same point with ``spin_flip = mixture`` (q = (q0(phi) + q0(-phi)) / 2 of an
  unconstrained flow, warm-started on sign-folded HMC samples): ESS / N above 1e-3, <M> = 0
  within 4 sigma, <|M|> and V <M^2> against HMC (trajectories of length 2 from an ordered start:
  HMC of length 1 from a random start keeps domain walls and reads <|M|> low) within 4 sigma.
  Measured (seed 0, 9 min on a loaded core): ESS / N = 4.3e-3, acceptance 10%, <M> = 0.08 +-
  0.11, <|M|> = 0.858 +- 0.024 against HMC's 0.769 +- 0.008 (3.5 sigma), V <M^2> = 197 +- 10
  against 175 +- 3 (2.2 sigma): passes, but the flow still reads <|M|> high - q0 misses the
  small-|M| (domain-wall) configurations that HMC visits when it tunnels.
"""

from __future__ import annotations

import pytest

import physml_lang

TUTORIAL = """
model Phi4Lattice(L: int = 8, m2: real = -4, lam: real = 8) {
    lattice square(L, L, boundary = periodic)
    field phi: real on sites
    action S = sum((phi[j] - phi[i])^2 for (i, j) in bonds)
               + sum(m2 * phi[i]^2 + lam * phi[i]^4 for i in sites)
    symmetry translation, spin_flip
}
learner f = coupling_flow(layers = 8, kind = spline, width = 8, bins = 8, bound = 5)
            respecting translation, spin_flip
run flow {
    model Phi4Lattice(L = 8)
    train f via reverse_kl(steps = 300, batch = 64, lr = 2e-3, samples = 20000)
    measure magnetization, abs_magnetization, m2
}
run hmc {
    model Phi4Lattice(L = 8)
    sampler hmc(chains = 16, sweeps = 2000, burn_in = 200, step_size = 0.05, n_steps = 10,
                jitter = 0.2, start = ordered)
    measure magnetization, abs_magnetization, m2
}
"""


def _agree(a: dict, b: dict, n: float = 4.0) -> bool:
    return abs(a["mean"] - b["mean"]) < n * (a["stderr"] ** 2 + b["stderr"] ** 2) ** 0.5


@pytest.mark.slow
def test_tutorial_point_flow_nmcmc_agrees_with_hmc():
    p = physml_lang.compile(TUTORIAL)
    flow = p.run("flow", progress=False).rows[0]
    hmc = p.run("hmc", progress=False).rows[0]
    assert flow["ess_per_sample"] >= 0.05, flow
    assert flow["nmcmc_acceptance"] > 0.1
    for name in ("abs_magnetization", "m2"):
        assert _agree(flow[name], hmc[name]), (name, flow[name], hmc[name])
    assert abs(flow["magnetization"]["mean"]) < 4 * flow["magnetization"]["stderr"]
    fq, fnis = flow["free_energy_q"], flow["free_energy_nis"]
    assert fq["mean"] > fnis["mean"] - 4 * (fq["stderr"] ** 2 + fnis["stderr"] ** 2) ** 0.5


BROKEN = """
import Phi4
learner f = coupling_flow(layers = 8, kind = spline, width = 8, bins = 8, bound = 5)
            respecting translation, spin_flip
run flow {
    model Phi4(L = 16, kappa = 0.27, lam = 0.022)
    train f via reverse_kl(warm_start = 400, steps = 300, batch = 64, lr = 2e-3,
                           samples = 20000)
    measure magnetization, abs_magnetization
}
run hmc {
    model Phi4(L = 16, kappa = 0.27, lam = 0.022)
    sampler hmc(chains = 16, sweeps = 4000, burn_in = 500, step_size = 0.1, n_steps = 10,
                jitter = 0.2)
    measure magnetization, abs_magnetization
}
"""


@pytest.mark.slow
@pytest.mark.long
def test_broken_phase_z2_flow_is_symmetric_and_agrees_with_hmc():
    p = physml_lang.compile(BROKEN)
    flow = p.run("flow", progress=False).rows[0]
    hmc = p.run("hmc", progress=False).rows[0]
    m = flow["magnetization"]
    assert abs(m["mean"]) < 4 * m["stderr"], m
    assert _agree(flow["abs_magnetization"], hmc["abs_magnetization"]), (flow, hmc)


MIXTURE = """
import Phi4
learner f = coupling_flow(layers = 8, kind = spline, width = 8, bins = 8, bound = 5,
                          spin_flip = mixture) respecting translation, spin_flip
run flow {
    model Phi4(L = 16, kappa = 0.27, lam = 0.022)
    train f via reverse_kl(warm_start = 600, hmc_steps = 20, steps = 200, batch = 64, lr = 2e-3,
                           samples = 10000)
    measure magnetization, abs_magnetization, m2
}
run hmc {
    model Phi4(L = 16, kappa = 0.27, lam = 0.022)
    sampler hmc(chains = 16, sweeps = 4000, burn_in = 500, step_size = 0.1, n_steps = 20,
                start = ordered)
    measure magnetization, abs_magnetization, m2
}
"""


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(1800)
def test_broken_phase_sign_mixture_flow_has_a_useful_ess(record_property):
    """The sign mixture q = (q0(phi) + q0(-phi)) / 2 of an unconstrained flow q0 (warm-started on
    HMC samples folded to M >= 0, then reverse KL): ESS / N above 1e-3 at 16 x 16, both signs
    sampled (<M> = 0 within 4 sigma), <|M|> and V <M^2> against HMC within 4 sigma."""
    p = physml_lang.compile(MIXTURE)
    flow = p.run("flow", seed=0, progress=False).rows[0]
    hmc = p.run("hmc", seed=0, progress=False).rows[0]
    for name in ("magnetization", "abs_magnetization", "m2"):
        record_property(name, f"flow {flow[name]['mean']:.4f} ± {flow[name]['stderr']:.4f}, "
                        f"HMC {hmc[name]['mean']:.4f} ± {hmc[name]['stderr']:.4f}")  # fmt: skip
    for name in ("ess_per_sample", "nmcmc_acceptance", "train_s"):
        record_property(name, flow[name])
    assert flow["ess_per_sample"] > 1e-3, flow
    m = flow["magnetization"]
    assert abs(m["mean"]) < 4 * m["stderr"], m
    for name in ("abs_magnetization", "m2"):
        assert _agree(flow[name], hmc[name]), (name, flow[name], hmc[name])
