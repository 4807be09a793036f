"""Field domains: the values a field takes at one site, by name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .registry import Catalogue, NoOptions

DOMAINS: dict[str, str] = {
    "spin": "Ising spin, values -1 and +1; spin(S): m = -S, -S + 1, ..., S (S = 1/2, 1, 3/2, ...)",
    "binary": "binary unit, values 0 and 1",
    "potts": "potts(q): values 0 .. q-1",
    "integer": "integer(lo, hi): the integers lo, lo + 1, ..., hi",
    "qubit": "spin-1/2 degree of freedom (Pauli operators X, Y, Z)",
    "real": "real number",
    "angle": "angle in (-pi, pi] (XY / O(2) models)",
    "z2": "Z2 gauge link, values -1 and +1",
    "u1": "U(1) gauge link exp(i theta)",
    "su2": "SU(2) gauge link, 2x2 special unitary matrix",
}
DATA_DOMAINS = ("spin", "binary", "potts", "real")
MAX_POTTS_STATES = 1024
MAX_SPIN = 64  # the largest spin S (2S + 1 values)

# What ``magnetization`` measures for each discrete domain (static facts, listed by physml list)
MAGNETIZATION = {
    "spin": "sum of s (spin S: sum of m)",
    "binary": "sum of 2 s - 1",
    "potts": "order parameter N (q max_k n_k / N - 1) / (q - 1)",
    "integer": "sum of s",
    "qubit": "sum of Z",
    "z2": "sum of s",
    "real": "sum of x",
    "angle": "|sum exp(i theta)|",
}

SYMMETRIES: dict[str, str] = {
    "translation": "invariance under lattice translations",
    "spin_flip": "invariance under a global flip of every spin (s -> -s)",
    "gauge": "invariance under local gauge transformations",
    "symplectic": "canonical structure of phase space",
    "point_group": "lattice rotations and reflections",
}


class PottsOptions(BaseModel):
    """potts(q): the number of states."""

    model_config = ConfigDict(extra="forbid")
    q: int = Field(ge=2, le=MAX_POTTS_STATES, description="number of states")


class SpinOptions(BaseModel):
    """spin(S): the spin quantum number; plain ``spin`` is the Ising spin +-1."""

    model_config = ConfigDict(extra="forbid")
    S: float | None = Field(None, gt=0, le=MAX_SPIN,
                            description="spin S = 1/2, 1, 3/2, ... (plain spin: +-1)")

    @field_validator("S")
    @classmethod
    def _half_integer(cls, v: float | None) -> float | None:
        if v is not None and not float(2 * v).is_integer():
            raise ValueError("a spin is a multiple of 1/2 (S = 1/2, 1, 3/2, ...)")
        return v


class IntegerOptions(BaseModel):
    """integer(lo, hi): the integers lo .. hi."""

    model_config = ConfigDict(extra="forbid")
    lo: int = Field(ge=-1_000_000, le=1_000_000, description="smallest value")
    hi: int = Field(ge=-1_000_000, le=1_000_000, description="largest value")

    @field_validator("hi")
    @classmethod
    def _ordered(cls, hi: int, info: ValidationInfo) -> int:
        lo = info.data.get("lo")
        if lo is not None and not 1 <= hi - lo <= MAX_POTTS_STATES:
            raise ValueError(f"integer(lo, hi) needs lo < hi with at most {MAX_POTTS_STATES + 1} "
                             "values")  # fmt: skip
        return hi


SCHEMAS: dict[str, type[BaseModel]] = {"potts": PottsOptions, "spin": SpinOptions,
                                       "integer": IntegerOptions}  # fmt: skip


def domain_args(name: str, options: BaseModel | None) -> tuple[int, ...]:
    """The integer arguments a DomainIR carries: (q,), (2S,), (lo, hi), or ()."""
    if options is None:
        return ()
    if isinstance(options, PottsOptions):
        return (options.q,)
    if isinstance(options, SpinOptions):
        return () if options.S is None else (int(round(2 * options.S)),)
    if isinstance(options, IntegerOptions):
        return (options.lo, options.hi)
    return ()


def declare(catalogue: Catalogue) -> None:
    """Field domains as entries: static facts (values, what magnetization means); the torch
    behaviour of the discrete ones (proposals, global flip, magnetization) is bound by the
    compiler's lowering (``compiler/lower/domains.py``), gauge groups by the gauge lowering."""
    for name, doc in DOMAINS.items():
        meaning = MAGNETIZATION.get(name)
        text = f"{doc}; magnetization = {meaning}" if meaning else doc
        catalogue.domains.declare(name, SCHEMAS.get(name, NoOptions), text)
