"""Slow validation: score model and flow matching on 2D phi^4, 8 x 8, m^2 = -4, lambda = 8 (the
flow tutorial's point), trained on physml's own HMC samples (examples/phi4_diffusion.phys as
written). The Metropolis-corrected and the reweighted ODE samplers must agree with that HMC on
<|m|> and V <m^2> within 4 sigma of the combined error; acceptance and ESS are reported.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import physml_lang

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "phi4_diffusion.phys"


@pytest.mark.slow
@pytest.mark.parametrize("run", ["score", "flow"])
def test_corrected_samplers_agree_with_hmc_on_phi4_8x8(run, tmp_path, record_property):
    result = physml_lang.load(EXAMPLE).run(run, seed=0, out=tmp_path, device="cpu", progress=False)
    rows = {r["method"]: r for r in result.summary["rows"]}
    hmc = rows["hmc"]
    for method in ("ode_reweighted", "ode_metropolis"):
        for name in ("abs_magnetization", "m2", "action_density"):
            a, b = rows[method][name], hmc[name]
            err = math.hypot(a["stderr"], b["stderr"])
            record_property(f"{method}/{name}", f"{a['mean']:.4f} ± {a['stderr']:.4f} vs HMC "
                            f"{b['mean']:.4f} ± {b['stderr']:.4f}")  # fmt: skip
            assert abs(a["mean"] - b["mean"]) < 4 * err, (method, name, a, b)
    acc, ess = rows["ode_metropolis"]["acceptance"], rows["ode_reweighted"]["ess_per_sample"]
    record_property("acceptance", acc)
    record_property("ess_per_sample", ess)
    assert 0.05 < acc <= 1 and 0.05 < ess <= 1
    # the uncorrected ODE is visibly rougher than the target: the correction matters
    assert rows["ode"]["action_density"]["mean"] > hmc["action_density"]["mean"]
