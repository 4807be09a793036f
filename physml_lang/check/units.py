"""Physical units of parameters and data columns, checked in ``check``.

    model Pendulum(l: real [m] = 1, g: real [m / s^2] = 9.81) { ... }
    model SolarSystem { data planets: table(a = AU, P = yr) = load("planets.csv") }

A unit is a product of powers of named units (``m / s^2``, ``kg * m^2 / s^2``, ``1 / s``);
each named unit is a scale to SI and a dimension over the seven SI bases. Exponents may be
rationals (``m^(1/2)``). Units are read from the expression IR by a walker (never from text),
so a unit expression can only name units, multiply, divide and raise to numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from physml_lang.diagnostics import did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.walk import Walker, fail

BASES = ("m", "kg", "s", "A", "K", "mol", "cd")
Dims = tuple[Fraction, ...]


def _dims(**powers: int | Fraction) -> Dims:
    return tuple(Fraction(powers.get(b, 0)) for b in BASES)


@dataclass(frozen=True)
class Unit:
    """``scale`` SI units of dimension ``dims`` (powers of m, kg, s, A, K, mol, cd)."""

    scale: float
    dims: Dims
    text: str = ""

    @property
    def dimensionless(self) -> bool:
        return not any(self.dims)

    def __mul__(self, other: Unit) -> Unit:
        return Unit(self.scale * other.scale, tuple(a + b for a, b in zip(self.dims, other.dims,
                                                                          strict=True)))  # fmt: skip

    def __truediv__(self, other: Unit) -> Unit:
        return self * other ** Fraction(-1)

    def __pow__(self, k: Fraction) -> Unit:
        return Unit(self.scale ** float(k), tuple(a * k for a in self.dims))

    def dimension(self) -> str:
        """The dimension in SI bases, e.g. ``m^3 kg^-1 s^-2`` (``1``: dimensionless)."""
        return format_dims(self.dims)


def format_dims(dims: Dims) -> str:
    parts = [b if p == 1 else f"{b}^{p}" for b, p in zip(BASES, dims, strict=True) if p]
    return " ".join(parts) or "1"


DIMENSIONLESS = Unit(1.0, _dims(), "1")
_AU = 1.495978707e11
_YEAR = 365.25 * 86400.0
_EV = 1.602176634e-19

# name -> (scale to SI, dimension)
UNITS: dict[str, Unit] = {
    name: Unit(scale, dims, name) for name, (scale, dims) in {
        # SI bases
        "m": (1.0, _dims(m=1)), "kg": (1.0, _dims(kg=1)), "s": (1.0, _dims(s=1)),
        "A": (1.0, _dims(A=1)), "K": (1.0, _dims(K=1)), "mol": (1.0, _dims(mol=1)),
        "cd": (1.0, _dims(cd=1)),
        # length, mass, time
        "km": (1e3, _dims(m=1)), "cm": (1e-2, _dims(m=1)), "mm": (1e-3, _dims(m=1)),
        "um": (1e-6, _dims(m=1)), "nm": (1e-9, _dims(m=1)), "angstrom": (1e-10, _dims(m=1)),
        "AU": (_AU, _dims(m=1)), "ly": (9.4607304725808e15, _dims(m=1)),
        "pc": (3.0856775814913673e16, _dims(m=1)),
        "g": (1e-3, _dims(kg=1)), "Msun": (1.98847e30, _dims(kg=1)),
        "Mearth": (5.9722e24, _dims(kg=1)),
        "ms": (1e-3, _dims(s=1)), "us": (1e-6, _dims(s=1)), "ns": (1e-9, _dims(s=1)),
        "min": (60.0, _dims(s=1)), "h": (3600.0, _dims(s=1)), "day": (86400.0, _dims(s=1)),
        "yr": (_YEAR, _dims(s=1)),
        # derived
        "Hz": (1.0, _dims(s=-1)), "N": (1.0, _dims(kg=1, m=1, s=-2)),
        "J": (1.0, _dims(kg=1, m=2, s=-2)), "W": (1.0, _dims(kg=1, m=2, s=-3)),
        "Pa": (1.0, _dims(kg=1, m=-1, s=-2)), "C": (1.0, _dims(A=1, s=1)),
        "V": (1.0, _dims(kg=1, m=2, s=-3, A=-1)), "eV": (_EV, _dims(kg=1, m=2, s=-2)),
        "T": (1.0, _dims(kg=1, s=-2, A=-1)),
        # dimensionless
        "rad": (1.0, _dims()), "one": (1.0, _dims()),
    }.items()
}  # fmt: skip


class UnitReader(Walker[Any]):
    """A unit expression -> :class:`Unit` (numbers are exponents, or the ``1`` of ``1 / s``)."""

    what = "a unit"

    def on_name(self, e: E.Name, env: Any) -> Unit:
        unit = UNITS.get(e.id)
        if unit is None:
            fail("P212", f"unknown unit '{e.id}'", e.span,
                 did_you_mean(e.id, set(UNITS)) or "units: " + ", ".join(UNITS))  # fmt: skip
        return unit

    def on_number(self, e: E.Num, env: Any) -> Fraction:
        return Fraction(e.value).limit_denominator(1000)

    def on_unary(self, e: E.Unary, env: Any) -> Fraction:
        v = self.walk(e.operand, env)
        if e.op != "-" or not isinstance(v, Fraction):
            raise self.not_here(e, f"'{e.op}'")
        return -v

    def on_binary(self, e: E.Binary, env: Any) -> Unit | Fraction:
        a, b = self.walk(e.left, env), self.walk(e.right, env)
        if e.op in ("^", "**"):
            if not isinstance(a, Unit) or not isinstance(b, Fraction):
                fail("P212", "a unit is raised to a number: m^2, s^(-1), m^(1/2)", e.span)
            return a**b
        if e.op not in ("*", "/"):
            raise self.not_here(e, f"'{e.op}'")
        if isinstance(a, Fraction) and isinstance(b, Fraction):  # an exponent like (1/2)
            return a * b if e.op == "*" else a / b
        a, b = _as_unit(a, e.left), _as_unit(b, e.right)
        return a * b if e.op == "*" else a / b


def _as_unit(v: Unit | Fraction, e: E.Expr) -> Unit:
    if isinstance(v, Unit):
        return v
    if v == 1:
        return DIMENSIONLESS
    fail("P212", "a unit is a product of units (a number only as 1, as in 1 / s)", e.span,
         "units: m, kg, s, m / s^2, 1 / s")  # fmt: skip


class UnitPrinter(Walker[str]):
    """A unit expression as written (``m / s^2``, ``m^3 / (kg * s^2)``), from the IR."""

    what = "a unit"

    def on_name(self, e: E.Name, env: Any) -> str:
        return e.id

    def on_number(self, e: E.Num, env: Any) -> str:
        return f"{e.value:g}"

    def on_unary(self, e: E.Unary, env: Any) -> str:
        return f"{e.op}{self.walk(e.operand, env)}"

    def on_binary(self, e: E.Binary, env: Any) -> str:
        left, right = self.walk(e.left, env), self.walk(e.right, env)
        if e.op in ("^", "**"):
            return f"{left}^{right}" if " " not in right else f"{left}^({right})"
        if " " in right and (e.op == "/" or " + " in right):
            right = f"({right})"
        return f"{left} {e.op} {right}"


def unit_text(e: E.Expr | None) -> str:
    """A declared unit as written, printed from its expression (no source text kept)."""
    return "" if e is None else UnitPrinter().walk(e)


def unit_of(e: E.Expr, text: str = "") -> Unit:
    """The unit a unit expression names (located P212 for an unknown or malformed one)."""
    v = UnitReader().walk(e)
    unit = _as_unit(v, e)
    return Unit(unit.scale, unit.dims, text or unit.text)


__all__ = ["BASES", "DIMENSIONLESS", "UNITS", "Dims", "Unit", "format_dims", "unit_of",
           "unit_text"]
