"""Run the dynamics tests single-threaded: their tensors are small, and intra-op threads on a
shared, oversubscribed CPU made small autograd steps ~100x slower (measured: 4 s vs 0.04 s per
HNN training step). Restored after each test."""

import pytest
import sympy
import torch

from physml_lang.compiler.lower.hamiltonian import lower_hamiltonian


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_equals_unrolled(cm, q: torch.Tensor, p: torch.Tensor, tol: float = 1e-10):
    """H, dH/dq, dH/dp of a compiled model's system equal those of its unrolled symbolic H
    (lower_hamiltonian of the same derivation) to ``tol`` relative to max(|reference|, 1).
    Returns the unrolled reference system."""
    params = {sympy.Symbol(k, real=True): float(v) for k, v in cm.builder.params.items()}
    ref = lower_hamiltonian(cm.derivation, params)
    for f in ("hamiltonian", "dH_dq", "dH_dp"):
        a, b = getattr(cm.system, f)(q, p), getattr(ref, f)(q, p)
        assert a.shape == b.shape, f
        assert float((a - b).abs().max()) <= tol * float(b.abs().max().clamp_min(1.0)), f
    return ref
