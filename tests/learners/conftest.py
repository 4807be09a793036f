"""Shared fixtures of the learner tests: tiny models compiled from .phys text."""

from __future__ import annotations

import pytest
import torch

import physml_lang
from physml_lang.compiler.models.boltzmann import BoltzmannModel

RBM_TEXT = """
model R(Nv: int = 6, Nh: int = 4) {
    graph bipartite(Nv, Nh)
    field v: VDOM on visible
    field h: HDOM on hidden
    learnable param W on edges = normal(0, 0.6, seed = 1)
    learnable param a on visible = normal(0, 0.5, seed = 2)
    learnable param b on hidden = normal(0, 0.5, seed = 3)
    energy E = -sum(a[i] * v[i] for i in visible) - sum(b[j] * h[j] for j in hidden)
               - sum(W[i, j] * v[i] * h[j] for (i, j) in edges)
}
"""


def rbm(vdom: str = "binary", hdom: str = "binary", **params) -> BoltzmannModel:
    text = RBM_TEXT.replace("VDOM", vdom).replace("HDOM", hdom)
    program = physml_lang.load(text)
    return program.compile_ir(program.instantiate("R", params), kind="boltzmann",
                              dtype=torch.float64)  # fmt: skip


@pytest.fixture
def make_rbm():
    return rbm
