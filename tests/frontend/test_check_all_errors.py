"""``check`` reports every independent error of a file at once (at most 20, in source order,
each once), inside one model and inside one run too, and never an error that only follows
from another one (a broken lattice, a bad parameter value, an unknown sampler)."""

from __future__ import annotations

import json

import pytest
from frontend_util import GOLDEN, physml

import physml_lang
from physml_lang.diagnostics import MAX_ERRORS, Diagnostic, PhysmlError

BAD = GOLDEN / "bad"

ISING = """\
model Ising(L: int = 4, J: real = 1.0) {{
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
{extra}}}
"""

RUN = """
run r {{
    model Ising()
{body}
}}
"""


def _errors(text: str) -> list[Diagnostic]:
    with pytest.raises(PhysmlError) as exc:
        physml_lang.load(text).check()
    return exc.value.diagnostics


def _summary(ds: list[Diagnostic]) -> list[tuple[str, int]]:
    return [(d.code, d.span.line) for d in ds]


def test_independent_errors_of_one_model_are_reported_together():
    ds = _errors((BAD / "several_errors_in_one_model.phys").read_text())
    assert _summary(ds) == [("P321", 1), ("P321", 1), ("P405", 4), ("P405", 5), ("P200", 7),
                            ("P200", 8), ("P210", 9)]  # fmt: skip


def test_independent_errors_of_one_run_are_reported_together():
    ds = _errors((BAD / "several_errors_in_one_run.phys").read_text())
    assert _summary(ds) == [("P401", 11), ("P402", 11), ("P205", 13), ("P200", 14),
                            ("P208", 14), ("P208", 15)]  # fmt: skip


def test_a_broken_lattice_does_not_cascade():
    """L is not an int: the lattice, the array on its bonds, the energy that sums them, the
    symmetry conditioned on L and the run that instantiates the model say nothing more."""
    ds = _errors((BAD / "cascade_broken_lattice.phys").read_text())
    assert _summary(ds) == [("P321", 1)]


def test_an_unknown_lattice_does_not_cascade_to_what_lives_on_it():
    text = ISING.format(extra="    param K on bonds = normal(0, 1, seed = 1)\n").replace(
        "lattice square(L, L, boundary = periodic)", "lattice sqare(L, L)")
    ds = _errors(text)
    assert [(d.code, d.message) for d in ds] == [("P209", "unknown lattice 'sqare'")]


@pytest.mark.parametrize("params, body", [
    ('L: int = 4, J: real = "x", K: real = 2 * J', "    energy F = -K * sum(s[i] for i in sites)"),
    ('L: int = -1.5, J: real = 1.0', "    symmetry spin_flip if L > 2"),
])  # fmt: skip
def test_a_bad_parameter_is_reported_once_not_at_its_uses(params, body):
    text = ISING.format(extra=body + "\n").replace("L: int = 4, J: real = 1.0", params)
    ds = _errors(text)
    assert len(ds) == 1 and ds[0].code == "P321" and ds[0].span.line == 1, [d.render() for d in ds]


def test_a_failed_field_is_not_an_unknown_name_later():
    text = ISING.format(extra="    field t: potts(1) on sites\n"
                              "    observable c = sum(t[i] for i in sites) + missing\n")
    ds = _errors(text)
    assert [(d.code, d.message) for d in ds] == [
        ("P405", "a Potts variable needs 2 <= q <= 1024 states, got q = 1"),
        ("P200", "unknown name 'missing'")]  # fmt: skip


def test_an_unknown_sampler_does_not_also_report_its_options():
    body = "    sampler metropolys(chainz = 4)\n    let T = 2\n    measure bindr"
    ds = _errors(ISING.format(extra="") + RUN.format(body=body))
    assert [d.code for d in ds] == ["P206", "P208"]


def test_an_unknown_statement_does_not_also_say_the_run_does_nothing():
    ds = _errors(ISING.format(extra="") + RUN.format(body="    samplr metropolis(chains = 4)"))
    assert [d.code for d in ds] == ["P203"]


def test_an_error_reached_twice_is_reported_once():
    """The model's own check and the run that instantiates it find the same bad default."""
    text = ISING.format(extra="").replace("J: real = 1.0", 'J: real = "x"')
    ds = _errors(text + RUN.format(body="    sampler metropolis(chains = 4)\n    let T = 2"))
    assert _summary(ds) == [("P321", 1)]


def test_at_most_twenty_errors_and_a_note_counts_the_rest():
    extra = "".join(f"    observable o{k} = unknown{k}\n" for k in range(MAX_ERRORS + 5))
    ds = _errors(ISING.format(extra=extra))
    assert len(ds) == MAX_ERRORS
    assert [d.message for d in ds] == [f"unknown name 'unknown{k}'" for k in range(MAX_ERRORS)]
    assert ds[-1].notes == ["5 more error(s) not shown: fix these first"]


@pytest.mark.parametrize("name", ["several_errors_in_one_model.phys",
                                  "several_errors_in_one_run.phys"])  # fmt: skip
def test_json_lists_every_error_as_the_text_does(name):
    code, out, err = physml("check", name, "--format", "json", cwd=BAD)
    assert code == 1 and err == ""
    ds = json.loads(out)["diagnostics"]
    assert len(ds) > 3
    _, _, text = physml("check", name, cwd=BAD)
    heads = [line for line in text.splitlines() if line.startswith(f"{name}:")]
    assert heads == [f"{name}:{d['span']['line']}:{d['span']['column']}: error[{d['code']}]: "
                     f"{d['message']}" for d in ds]  # fmt: skip
