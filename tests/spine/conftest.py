"""Shared helpers for the spine's physics tests: exact enumeration of small lattices."""

from __future__ import annotations

import itertools

import pytest
import torch

import physml_lang


def enumerate_states(values: list[float], shape: tuple[int, ...]) -> torch.Tensor:
    """Every configuration of a small lattice: (q^N, *shape)."""
    n = 1
    for s in shape:
        n *= s
    confs = torch.tensor(list(itertools.product(values, repeat=n)), dtype=torch.float64)
    return confs.reshape(-1, *shape)


def exact_averages(energies: torch.Tensor, magnetizations: torch.Tensor, T: float, n_sites: int):
    """Exact <E>/N, <|M|>/N, c = beta^2 var(E)/N by Boltzmann weighting of all states."""
    e = energies.double()
    w = torch.exp(-(e - e.min()) / T)
    z = w.sum()
    mean_e = (w * e).sum() / z
    var_e = (w * e * e).sum() / z - mean_e**2
    abs_m = (w * magnetizations.double().abs()).sum() / z
    return {
        "u": float(mean_e / n_sites),
        "m": float(abs_m / n_sites),
        "c": float(var_e / T**2 / n_sites),
    }


@pytest.fixture
def compile_text():
    return lambda text, **params: physml_lang.compile(text, **params)
