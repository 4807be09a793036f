"""Catalogue entries of data sources: what a ``data`` declaration realises -- an array loaded
from a file, drawn at random, sampled from a model, or scikit-learn's digits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .domains import DATA_DOMAINS
from .registry import Catalogue

# the discrete domains a data declaration may have
DISCRETE = ("spin", "binary", "potts")


class RandomOptions(BaseModel):
    """Options of ``random(...)``: a seeded draw of the domain's values."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, description="seed of the draw")
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability of the larger value")


class LoadOptions(BaseModel):
    """Options of ``load(path, key = ...)``: an array read from a file."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="a .npz, .npy or .csv file, relative to the .phys file")
    key: str | None = Field(None, description="the array of an .npz file")


class SampleOptions(BaseModel):
    """Options of ``sample(Model(...), ...)``: configurations from a lattice sampler."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(1000, ge=1, le=10_000_000, description="number of configurations")
    T: float = Field(gt=0, description="temperature")
    sampler: str = Field("metropolis", description="a sampler name")
    chains: int = Field(100, ge=1, le=100_000, description="independent chains")
    burn_in: int = Field(1000, ge=0, description="sweeps before the first sample")
    thin: int = Field(10, ge=1, description="sweeps between samples of one chain")
    seed: int = Field(0, ge=0, description="seed of the chains")


class DigitsOptions(BaseModel):
    """Options of ``digits(...)``: the binarisation threshold."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(8.0, ge=0, le=16, description="pixels >= threshold (0..16) are on")


def declare(catalogue: Catalogue) -> None:
    """Declare the data sources (shared by every model kind)."""
    sources = catalogue.sources
    sources.declare("random", RandomOptions, "seeded random configurations", domains=DISCRETE)
    sources.declare("load", LoadOptions, "an .npz/.npy/.csv file", domains=DATA_DOMAINS)
    sources.declare("sample", SampleOptions, "configurations sampled from a model",
                    domains=DISCRETE)  # fmt: skip
    sources.declare("digits", DigitsOptions, "scikit-learn's 8x8 digits, binarised",
                    domains=("binary", "spin"))  # fmt: skip
