"""physml: a declarative modelling language for sampling, learning and evolving physical systems.

import physml_lang
p = physml_lang.compile("examples/ising2d.phys", L=16)
p.energy(configurations)          # (B,) energies of (B, 16, 16) spin configurations
result = p.run(sets={"T": 2.0})   # the rows physml run writes to summary.json

The API (and with it torch) loads on first use of these names (PEP 562), so ``physml --help``
and ``physml check`` start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic, PhysmlError

if TYPE_CHECKING:
    from .api import CompiledProgram, Program, compile, load

__version__ = "0.1.0"
__all__ = ["compile", "load", "Program", "CompiledProgram", "PhysmlError", "Diagnostic"]
_API = ("compile", "load", "Program", "CompiledProgram")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'physml_lang' has no attribute '{name}'")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext physml_lang``: the ``%%physml`` cell magic (needs the 'notebook' extra)."""
    from .tools.notebook import load_ipython_extension as load

    load(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
