"""physml: a declarative modelling language for sampling, learning and evolving physical systems.

import physml_lang
p = physml_lang.compile("examples/ising2d.phys", L=16)
p.energy(configurations)          # (B,) energies of (B, 16, 16) spin configurations
result = p.run(sets={"T": 2.0})   # the rows physml run writes to summary.json
"""

from .api import CompiledProgram, Program, compile, load
from .diagnostics import Diagnostic, PhysmlError

__version__ = "0.1.0"
__all__ = ["compile", "load", "Program", "CompiledProgram", "PhysmlError", "Diagnostic"]
