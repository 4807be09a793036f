"""physml: a declarative modelling language for sampling, learning and evolving physical systems."""

__version__ = "0.1.0"
