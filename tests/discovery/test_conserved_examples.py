"""Conserved quantities through the language, end to end: the runs of
examples/conserved_quantities.phys (shrunk by --set values; the example as written is checked by
its claims) and examples/collisions.phys, with the found combinations compared to the known ones
in normalised feature coordinates (cosine >= 0.999); the before/after pairing of a table's
columns and its located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.discovery import task
from physml_lang.runtime.discovery.features import feature_library

from .conserved_systems import _pendulum_rhs, in_library, integrate, kepler_invariants, symbols
from .conserved_systems import pendulum_energy as reference_pendulum_energy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Caught(list):
    """Results of the engine, and ``inputs``: its first argument (the states) of each call."""

    def __init__(self):
        super().__init__()
        self.inputs: list[np.ndarray] = []


@pytest.fixture
def found(monkeypatch):
    """The engine's ConservedResult of each discover conserved run, caught on its way."""
    caught = Caught()

    def spy(fn):
        def wrapped(*args, **kwargs):
            caught.inputs.append(args[0])
            caught.append(fn(*args, **kwargs))
            return caught[-1]

        return wrapped

    monkeypatch.setattr(task, "find_conserved", spy(task.find_conserved))
    monkeypatch.setattr(task, "find_conserved_pairs", spy(task.find_conserved_pairs))
    return caught


def cosine(result, known: sympy.Expr, library) -> float:
    """|cos| between a known quantity and the span of the found null vectors, in normalised
    feature coordinates (features / their std over the data)."""
    k = in_library(known, library) * result.feature_scales
    basis = np.array([q.normalised for q in result.basis]).T  # (features, null)
    projected = basis @ np.linalg.lstsq(basis, k, rcond=None)[0]
    return float(np.linalg.norm(projected) / np.linalg.norm(k))


def kepler_known() -> dict[str, sympy.Expr]:
    """E, L, A_x, A_y of H = |p|^2 / 2 - 1 / |q| in the example's names."""
    return kepler_invariants("q0 q1 p0 p1")


def pendulum_energy() -> sympy.Expr:
    """The double pendulum's energy in the example's names (angles, angular velocities)."""
    return reference_pendulum_energy("q0 q1 dq0 dq1")


def _counts(rows: list[dict]) -> dict:
    (row,) = [r for r in rows if r.get("entry") == "counts"]
    return row


@pytest.fixture(scope="module")
def example():
    return physml_lang.load(EXAMPLES / "conserved_quantities.phys")


def test_oscillator_energy(example, found):
    rows = example.run("oscillator", sets={"count": 4}, device="cpu").rows
    assert (_counts(rows)["count"], _counts(rows)["count_from_data"]) == (1, 1)
    q, p = symbols("q p")
    (res,) = found
    assert cosine(res, (p**2 + q**2) / 2, feature_library(["q", "p"], 3)) >= 0.999


def test_kepler_energy_angular_momentum_and_runge_lenz(example, found):
    """4 null vectors (E, L, A_x, A_y), 3 functionally independent (|A|^2 = 1 + 2 E L^2)."""
    rows = example.run("kepler", sets={"points": 120, "t_span": 8.0}, device="cpu").rows
    counts = _counts(rows)
    assert (counts["null_dimension"], counts["count"], counts["count_from_data"]) == (4, 3, 3)
    (res,) = found
    library = feature_library(["q0", "q1", "p0", "p1"], 3, inverse_radius=True)
    for name, known in kepler_known().items():
        assert cosine(res, known, library) >= 0.999, name


def test_double_pendulum_energy_in_velocities(example, found):
    rows = example.run("pendulum", sets={"count": 4, "points": 100, "t_span": 20.0},
                       device="cpu").rows
    assert _counts(rows)["count"] == 1
    (res,) = found
    library = feature_library(["q0", "q1", "dq0", "dq1"], 2, trig=True)
    assert cosine(res, pendulum_energy(), library) >= 0.999
    assert "cos(q0 - q1)" in rows[0]["law"]


def test_collisions_conserve_momentum_not_kinetic_energy(found):
    prog = physml_lang.load(EXAMPLES / "collisions.phys")
    prog.check()
    rows = prog.run(device="cpu").rows
    counts = _counts(rows)
    assert counts["laws"] == ["m1", "m2", "m1*v1 + m2*v2"] and counts["count"] == 3
    momentum = next(r for r in rows if r.get("law") == "m1*v1 + m2*v2")
    assert momentum["dimensions"] == "m kg s^-1"
    m1, m2, v1, v2 = symbols("m1 m2 v1 v2")
    (res,) = found
    library = feature_library(["m1", "m2", "v1", "v2"], 3)
    assert cosine(res, m1 * v1 + m2 * v2, library) >= 0.999
    assert cosine(res, (m1 * v1**2 + m2 * v2**2) / 2, library) < 0.9  # not conserved


def _events(tmp_path, columns: str, rows: np.ndarray, statement: str):
    names = [c.split("=")[0].strip() for c in columns.split(",")]
    lines = [",".join(names)] + [",".join(f"{x:.12g}" for x in r) for r in rows]
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "events.phys"
    path.write_text(f"model Events {{ data events: table({columns}) = load(\"events.csv\") }}\n"
                    f"run c {{ model Events   {statement} }}\n")  # fmt: skip
    return physml_lang.load(path)


def _elastic(events: int = 60, seed: int = 3) -> np.ndarray:
    """(events, 6): m1, m2 and v1, v2 before and after elastic collisions (e = 1)."""
    rng = np.random.default_rng(seed)
    m1, m2 = rng.uniform(0.5, 5.0, (2, events))
    v1, v2 = rng.uniform(-3.0, 3.0, (2, events))
    momentum = m1 * v1 + m2 * v2
    return np.stack([m1, m2, v1, v2, (momentum - m2 * (v1 - v2)) / (m1 + m2),
                     (momentum + m1 * (v1 - v2)) / (m1 + m2)], axis=1)  # fmt: skip


def test_elastic_collisions_conserve_kinetic_energy_too(tmp_path, found):
    """The control: with restitution 1 the kinetic energy is a fourth quantity."""
    columns = ("m1 = kg, m2 = kg, v1 = m / s, v2 = m / s, m1_after = kg, m2_after = kg, "
               "v1_after = m / s, v2_after = m / s")
    data = _elastic()
    prog = _events(tmp_path, columns, np.concatenate([data[:, :4], data[:, :2], data[:, 4:]], 1),
                   "discover conserved(degree = 3), data = events")  # fmt: skip
    counts = _counts(prog.run(device="cpu").rows)
    assert counts["count"] == 4
    m1, m2, v1, v2 = symbols("m1 m2 v1 v2")
    library = feature_library(["m1", "m2", "v1", "v2"], 3)
    assert cosine(found[0], (m1 * v1**2 + m2 * v2**2) / 2, library) >= 0.999


@pytest.mark.parametrize("columns, statement, code, words, where", [
    ("m = kg, v = m / s, v_after = m / s", "discover conserved(degree = 2), data = events",
     "P428", "column 'm' of table events has no partner 'm_after'", "m = kg"),
    ("v = m / s, m_after = kg, v_after = m / s", "discover conserved, data = events",
     "P428", "no partner 'm'", "m_after"),
    ("m = kg, v = m / s", "discover conserved, data = events", "P428", "no partner", "m = kg"),
    ("v = m / s, v_after = m / s", "discover conserved(trig = true), data = events", "P402",
     "needs trajectories", "trig"),
    ("v = m / s, v_after = m / s", "discover equations, data = events", "P108",
     "reads trajectories", "events"),
])  # fmt: skip
def test_a_table_without_partners_is_located(tmp_path, columns, statement, code, words, where):
    prog = _events(tmp_path, columns, np.ones((3, len(columns.split(",")))), statement)
    with pytest.raises(PhysmlError) as err:
        prog.check()
    d = err.value.diagnostics[0]
    assert d.code == code and words in d.message, d
    line = (tmp_path / "events.phys").read_text().splitlines()[d.span.line - 1]
    assert line[d.span.column - 1 :].startswith(where), (line, d.span)


def test_a_table_of_events_too_small_for_the_library_is_located(tmp_path):
    prog = _events(tmp_path, "m = kg, v = m / s, m_after = kg, v_after = m / s",
                   np.array([[1.0, 2.0, 1.0, 1.5], [2.0, 1.0, 2.0, 0.5]]),
                   "discover conserved(degree = 3), data = events")  # fmt: skip
    with pytest.raises(PhysmlError) as err:
        prog.run(device="cpu")
    d = err.value.diagnostics[0]
    assert d.code == "P428" and "too few samples" in d.message


def _lyapunov(start: np.ndarray, rounds: int = 50, every: float = 2.0) -> float:
    """Largest finite-time Lyapunov exponent of the double pendulum (Benettin: a neighbour
    1e-8 away, renormalised every ``every`` time units) from one start (t1, t2, w1, w2)."""
    a, b, total = start, start + np.array([1e-8, 0, 0, 0]), 0.0
    for _ in range(rounds):
        a, b = integrate(_pendulum_rhs, np.array([a, b]), every, 2)[:, -1]
        gap = np.linalg.norm(b - a)
        total += np.log(gap / 1e-8)
        b = a + (b - a) * 1e-8 / gap
    return total / (rounds * every)


@pytest.mark.slow
def test_the_example_as_written_finds_the_known_quantities(example, found):
    """Counts are the example's claims; here the cosines with E, L, A and the pendulum's energy
    and the chaotic regime of the pendulum's orbits (every Lyapunov exponent > 0.1)."""
    q, p = symbols("q p")
    example.run("oscillator", device="cpu")
    assert cosine(found[0], (p**2 + q**2) / 2, feature_library(["q", "p"], 3)) >= 0.999
    example.run("kepler", device="cpu")
    library = feature_library(["q0", "q1", "p0", "p1"], 3, inverse_radius=True)
    for name, known in kepler_known().items():
        assert cosine(found[1], known, library) >= 0.999, name
    example.run("pendulum", device="cpu")
    library = feature_library(["q0", "q1", "dq0", "dq1"], 2, trig=True)
    assert cosine(found[2], pendulum_energy(), library) >= 0.999
    exponents = [_lyapunov(start) for start in found.inputs[2][:, 0]]
    assert min(exponents) > 0.1, exponents
