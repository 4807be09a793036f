"""One option vocabulary: old option names are accepted with a located P403 warning."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from physml_lang.check.model import option_names, validate_options
from physml_lang.diagnostics import PhysmlError, PhysmlWarning


class Leapfrog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {"n_leapfrog": "n_steps"}
    n_steps: int = 10


def test_an_old_name_is_accepted_with_a_warning():
    with pytest.warns(PhysmlWarning) as record:
        opts = validate_options(Leapfrog, {"n_leapfrog": 4}, {"n_leapfrog": None}, None, "hmc")
    assert opts.n_steps == 4
    d = record[0].message.diagnostic
    assert d.code == "P403" and d.severity == "warning" and "'n_steps'" in d.message
    assert option_names(Leapfrog) == {"n_steps", "n_leapfrog"}


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(PhysmlError, match="old name"):
        validate_options(Leapfrog, {"n_leapfrog": 4, "n_steps": 5},
                         {"n_leapfrog": None, "n_steps": None}, None, "hmc")  # fmt: skip


def test_a_warning_is_rebuilt_from_its_text():
    """Warnings cross processes as (class, args), e.g. under pytest-xdist."""
    with pytest.warns(PhysmlWarning) as record:
        validate_options(Leapfrog, {"n_leapfrog": 4}, {"n_leapfrog": None}, None, "hmc")
    w = record[0].message
    again = type(w)(*w.args)
    assert str(again) == str(w) and "warning[P403]" in str(again)
