"""Reference accuracies through the language (run with -m slow): the examples' configurations."""

from pathlib import Path

import pytest

from physml_lang.program import load

pytestmark = [pytest.mark.slow, pytest.mark.long]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_tfim_l20_rbm_relative_error_1e4(tmp_path):
    """examples/tfim.phys as written (300 SR iterations, 40000 final samples): |E - E0| / |E0|
    <= 1e-4. Measured: -25.49023 +- 0.00064, 3.0e-5 (74 s)."""
    res = load(EXAMPLES / "tfim.phys").run(
        "ground_state", sets={"iterations": 300, "final_samples": 40000}, out=tmp_path, seed=2
    )
    row = res.rows[0]
    assert row["relative_error"] <= 1e-4, row
    assert row["energy"]["mean"] > -25.4909896864 - 4 * row["energy"]["stderr"]


def test_heisenberg_4x4_translation_beats_plain(tmp_path):
    """examples/heisenberg_2d.phys, 400 iterations: symmetric <= 1e-3, plain visibly worse.
    Measured: symmetric -44.896 +- 0.011 (3.9e-4), plain -44.632 +- 0.028 (6.3e-3)."""
    prog = load(EXAMPLES / "heisenberg_2d.phys")
    sym = prog.run("symmetric", sets={"iterations": 400}, out=tmp_path / "s", seed=3).rows[0]
    plain = prog.run("plain", sets={"iterations": 400}, out=tmp_path / "p", seed=3).rows[0]
    assert abs(sym["exact_energy"] - -44.9139328337) < 1e-8
    assert sym["relative_error"] <= 1e-3, sym
    gap = plain["energy"]["mean"] - sym["energy"]["mean"]
    assert gap > 4 * (plain["energy"]["stderr"] + sym["energy"]["stderr"]), (sym, plain)


def test_heisenberg_chain_symmetrised_rnn(tmp_path):
    """examples/heisenberg_chain_rnn.phys as written: relative error <= 5e-3 vs -28.5691854425.
    Measured: -28.5625 +- 0.0042 (2.3e-4)."""
    row = load(EXAMPLES / "heisenberg_chain_rnn.phys").run(
        "ground_state", out=tmp_path, seed=4
    ).rows[0]
    assert abs(row["exact_energy"] - -28.5691854425) < 1e-8
    assert row["relative_error"] <= 5e-3, row
