"""Data declarations and index-defined parameters: values, shapes, domains, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

import physml_lang
from physml_lang.diagnostics import PhysmlError

HOPFIELD = """
model H(N: int = 40, P: int = 3) {
    graph complete(N)
    field s: spin on sites
    data xi: spin[P, N] = SOURCE
    param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
    energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
}
"""


def instantiate(source: str, tmp_path=None, **params):
    """The realised model (data loaded, arrays evaluated) of the Hopfield model above."""
    text = HOPFIELD.replace("SOURCE", source)
    if tmp_path is not None:
        path = tmp_path / "m.phys"
        path.write_text(text)
        return physml_lang.load(path).model("H", **params).model
    return physml_lang.load(text).model("H", **params).model


def code_of(fn) -> str:
    with pytest.raises(PhysmlError) as exc:
        fn()
    return exc.value.diagnostics[0].code


def test_random_patterns_and_hebb_rule():
    ir = instantiate("random(seed = 1)")
    xi = ir.data["xi"].values
    assert xi.shape == (3, 40) and set(np.unique(xi)) == {-1.0, 1.0}
    W = ir.arrays["W"].values
    expected = xi.T @ xi / 40
    np.fill_diagonal(expected, 0)
    assert ir.arrays["W"].on == "pairs"
    np.testing.assert_allclose(W, expected, atol=1e-12)
    # same seed, same patterns
    np.testing.assert_array_equal(instantiate("random(seed = 1)").data["xi"].values, xi)


def test_load_npz_npy_csv(tmp_path):
    rng = np.random.default_rng(0)
    xi = rng.choice([-1.0, 1.0], size=(3, 40))
    np.savez(tmp_path / "p.npz", patterns=xi, other=np.zeros(2))
    np.save(tmp_path / "p.npy", xi)
    np.savetxt(tmp_path / "p.csv", xi, delimiter=",", header="a" * 3, comments="")
    for src in ('load("p.npz", key = "patterns")', 'load("p.npy")', 'load("p.csv")'):
        ir = instantiate(src, tmp_path)
        np.testing.assert_array_equal(ir.data["xi"].values, xi)


def test_data_diagnostics(tmp_path):
    xi = np.ones((3, 40))
    np.savez(tmp_path / "p.npz", patterns=xi, other=xi)
    bad = xi.copy()
    bad[1, 7] = 2.0
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "short.npy", xi[:, :10])
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert code_of(lambda: instantiate('load("missing.npy")', tmp_path)) == "P600"
    assert code_of(lambda: instantiate('load("p.npz")', tmp_path)) == "P601"  # two arrays
    assert code_of(lambda: instantiate('load("p.npz", key = "xi")', tmp_path)) == "P601"
    assert code_of(lambda: instantiate('load("bad.npy")', tmp_path)) == "P601"
    assert code_of(lambda: instantiate('load("short.npy")', tmp_path)) == "P601"
    assert code_of(lambda: instantiate('load("corrupt.npz")', tmp_path)) == "P601"
    assert code_of(lambda: instantiate('load("obj.npy")', tmp_path)) == "P601"  # never unpickled
    with pytest.raises(PhysmlError) as exc:
        instantiate('load("bad.npy")', tmp_path)
    assert "(1, 7)" in str(exc.value) and "m.phys:5" in str(exc.value)


def test_index_definition_errors():
    text = HOPFIELD.replace("SOURCE", "random(seed = 1)")
    bad = text.replace("sum(xi[mu, i] * xi[mu, j] for mu) / N", "xi[mu, i] * xi[mu, j]")
    with pytest.raises(PhysmlError):
        physml_lang.load(bad).model("H")
    bad = text.replace("xi[mu, j] for mu", "xi[mu, j, i] for mu")
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(bad).model("H")
    assert exc.value.diagnostics[0].code == "P302"
