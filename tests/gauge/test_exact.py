"""Exact 2D references against reference.md."""

from __future__ import annotations

import pytest

from physml_lang.runtime.gauge import exact


def test_bessel_ratio_table():
    table = [0.446390, 0.697775, 0.809985, 0.863523, 0.893383, 0.912359]
    for beta, ref in zip(range(1, 7), table):
        assert abs(exact.u1_plaquette_infinite(beta) - ref) < 1e-6


def test_u1_torus():
    assert abs(exact.u1_plaquette_torus(6.0, 8) - 0.912455) < 1e-6
    # large volume -> infinite volume
    assert abs(exact.u1_plaquette_torus(2.0, 64) - exact.u1_plaquette_infinite(2.0)) < 1e-12


@pytest.mark.parametrize("beta,ref", [(1.0, 2.6007), (2.0, 1.2393), (3.0, 0.7078)])
def test_u1_topological_susceptibility(beta, ref):
    assert abs(exact.u1_topological_susceptibility_torus(beta, 8) - ref) < 1e-4


def test_su2_and_z2():
    assert abs(exact.su2_plaquette_torus(3.0, 32) - exact.su2_plaquette_infinite(3.0)) < 1e-10
    assert abs(exact.z2_plaquette_torus(0.7, 32) - exact.z2_plaquette_infinite(0.7)) < 1e-12
    # small volume differs visibly from infinite volume
    assert abs(exact.su2_plaquette_torus(3.0, 2) - exact.su2_plaquette_infinite(3.0)) > 1e-3
