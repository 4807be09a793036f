"""Shared helpers for the gauge tests."""

from __future__ import annotations

import pytest
import torch

from physml_lang.runtime.random import RandomStreams


@pytest.fixture
def gen() -> torch.Generator:
    """Host draws of the checks themselves (random gauge transformations, test inputs)."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def streams() -> RandomStreams:
    """The samplers' random streams (chain on the leading axis)."""
    return RandomStreams(1234)
