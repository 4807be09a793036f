"""Chains that have not mixed are detected, and their error bars stay honest."""

from __future__ import annotations

import numpy as np

import physml_lang
from physml_lang.runtime.statistics import (
    between_chain_excess,
    binning_analysis,
    excess_limit,
    split_rhat,
)


def test_mixed_chains_pass_the_checks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16))
    assert abs(split_rhat(x) - 1) < 0.01
    assert between_chain_excess(x) < excess_limit(16)


def test_trapped_chains_widen_the_error_bar():
    """Half the chains sit in one state, half in another: the time series of the chain average
    is flat, so binning alone would claim a tiny error; the chain spread gives the true one."""
    rng = np.random.default_rng(1)
    offsets = np.repeat([-1.0, 1.0], 8)
    x = offsets + 0.01 * rng.normal(size=(1000, 16))
    est = binning_analysis(x)
    spread = offsets.std(ddof=1) / np.sqrt(16)
    assert abs(est.stderr - spread) < 1e-3
    assert split_rhat(x) > 10
    assert between_chain_excess(x) > 100 * excess_limit(16)


METASTABLE = """
import Ising
run cold {
    model Ising(L = 16)
    sampler metropolis(chains = 16, sweeps = 300, burn_in = 20, start = random)
    scan T in [1.0, 4.0]
    measure e = energy / sites
}
"""


def test_metastable_domains_are_reported():
    """Random starts quenched to T = 1 freeze into striped domains: a P702 warning names the
    temperature; at T = 4 the chains mix and nothing is said."""
    rows_summary = physml_lang.compile(METASTABLE).run(seed=3).summary
    warnings = rows_summary.get("warnings", [])
    assert [w["code"] for w in warnings] == ["P702"]
    assert "T = 1" in warnings[0]["message"] and warnings[0]["severity"] == "warning"
    hot = rows_summary["rows"][1]
    assert hot["r_hat"] < 1.1
