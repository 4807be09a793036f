"""Golden diagnostics: every broken program in tests/golden/bad gives exactly the pinned text.

``physml check NAME.phys`` is run with the golden folder as working directory, so the rendered
location is ``NAME.phys:LINE:COL``. Regenerate with ``PHYSML_UPDATE_GOLDEN=1`` (see
tests/golden/README.md) and review the diff.
"""

from __future__ import annotations

import json

import pytest
from frontend_util import GOLDEN, compare_golden, physml

BAD = GOLDEN / "bad"

# Programs whose diagnostic is missing because of a known bug outside the front-end tests'
# files. Strict: when the bug is fixed the test XPASSes and fails, so the marker gets removed.
KNOWN_BUGS: dict[str, str] = {}


def _cases():
    for path in sorted(BAD.glob("*.phys")):
        marks = []
        if path.stem in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[path.stem], strict=True))
        yield pytest.param(path.name, id=path.stem, marks=marks)


def test_enough_golden_programs():
    assert len(list(BAD.glob("*.phys"))) >= 25


@pytest.mark.parametrize("name", list(_cases()))
def test_bad_program_diagnostic(name: str):
    code, out, err = physml("check", name, cwd=BAD)
    assert "Traceback" not in out + err
    assert code == 1, f"expected exit code 1, got {code}; stdout:\n{out}"
    assert out == ""
    golden = BAD / (name[: -len(".phys")] + ".txt")
    if name[: -len(".phys")] in KNOWN_BUGS and not golden.exists():
        return  # fixed upstream: drop it from KNOWN_BUGS and pin the text (PHYSML_UPDATE_GOLDEN=1)
    compare_golden(golden, err)
    # the contract's first line: FILE:LINE:COL: error[CODE]: message (or error[CODE] unlocated)
    first = err.splitlines()[0]
    assert first.startswith(f"{name}:") or first.startswith("error[P")


@pytest.mark.parametrize(
    "name", ["name_unknown_lattice.phys", "option_unknown.phys", "syntax_semicolon.phys"]
)
def test_json_format(name: str):
    code, out, err = physml("check", name, "--format", "json", cwd=BAD)
    assert code == 1
    assert "Traceback" not in out + err
    data = json.loads(out)
    (d,) = data["diagnostics"]
    assert set(d) >= {"code", "span", "message", "hint"}
    assert d["code"].startswith("P") and d["message"]
    assert d["span"]["file"] == name
    assert d["span"]["line"] >= 1 and d["span"]["column"] >= 1
    # the JSON and the text rendering say the same thing
    _, _, text = physml("check", name, cwd=BAD)
    assert text.startswith(f"{name}:{d['span']['line']}:{d['span']['column']}: error[{d['code']}]")


def test_json_format_hint_is_did_you_mean():
    _, out, _ = physml("check", "name_unknown_lattice.phys", "--format", "json", cwd=BAD)
    d = json.loads(out)["diagnostics"][0]
    assert d["code"] == "P209" and d["hint"] == "did you mean 'square'?"
