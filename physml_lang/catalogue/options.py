"""Option schemas of catalogue entries that the front end validates (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LatticeOptions(BaseModel):
    """Options shared by the regular lattices."""

    model_config = ConfigDict(extra="forbid")
    boundary: Literal["periodic", "open"] | list[Literal["periodic", "open"]] = Field(
        "periodic", description="periodic or open, for every axis or per axis: [periodic, open]")
