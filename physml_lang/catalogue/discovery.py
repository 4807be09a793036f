"""Catalogue entries: discovering laws and conserved quantities from data (``discover``).

    run kepler  { model SolarSystem   discover P via power_law(a), data = planets }
    run orbits  { model Kepler   trajectories count = 20, t_span = 60, points = 3001, start = kepler
                  discover period via power_law(semi_major_axis) }
    run motion  { model Pendulum   trajectories count = 8, noise = 0
                  discover equations(degree = 3, threshold = 0.05, trig = true) }
    run orbits2 { model Kepler   trajectories count = 40, start = kepler
                  discover conserved(degree = 2) }
    run events  { model Collisions   discover conserved(degree = 3), data = events }

The methods (their option schemas in :data:`DISCOVER_SCHEMAS`): ``power_law`` / ``monomial``
(y = c prod x_i^a_i by least squares on logarithms, with confidence intervals, rational
exponents and a dimensional analysis from declared units), ``equations`` (SINDy: sparse
regression of Hamilton's equations over a feature library), ``conserved`` (the null space of
feature changes along trajectories). One task, ``discover``, runs them all: on a table of a
model (``data = NAME``) or on the trajectories a phase-space model simulates
(``trajectories ...``), whose columns are the orbit measures ``period``, ``amplitude``,
``semi_major_axis``, ``energy``, the scanned variables and the model's parameters.

``conserved`` on a table reads events: each column NAME (the state before an event) pairs with
the column NAME_after (the state after it), ``table(m1 = kg, v1 = m / s, m1_after = kg,
v1_after = m / s)``; a column without its partner is a located P428 at the column. The
quantities are those every event conserves (``find_conserved_pairs``), with their dimensions
when the columns carry units; only ``degree`` and ``tol`` apply there (``trig``,
``inverse_radius`` and ``velocities`` need trajectories: P402).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

FAMILY = ""  # discover applies to data tables and to simulated dynamics alike
DISCOVER_TASKS = {"power_law": "discover", "monomial": "discover", "equations": "discover",
                  "conserved": "discover"}  # fmt: skip
ORBIT_COLUMNS = ("period", "amplitude", "semi_major_axis", "energy")


class PowerLawOptions(BaseModel):
    """``power_law(x1, x2, ...)``: y = c prod x_i^a_i by least squares on log y; each exponent
    with a t-based confidence interval and the simplest rational p/q inside it."""

    model_config = ConfigDict(extra="forbid")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the exponents' "
                              "confidence intervals (t distribution)")  # fmt: skip
    max_denominator: int = Field(6, ge=1, le=1000, description="the largest q of a rational "
                                 "exponent p/q")  # fmt: skip


class EquationsOptions(BaseModel):
    """``equations(...)``: SINDy, sequentially thresholded least squares over monomials of the
    phase-space variables up to ``degree`` (and sin, cos of the coordinates with ``trig``)."""

    model_config = ConfigDict(extra="forbid")
    degree: int = Field(3, ge=1, le=6, description="the highest degree of the monomials")
    threshold: float = Field(0.05, ge=0, description="coefficients smaller than this are "
                             "zeroed (in the data's units; of unit-norm columns with "
                             "normalize)")  # fmt: skip
    trig: bool = Field(False, description="add sin and cos of the coordinates")
    derivatives: Literal["exact", "finite_difference"] = Field(
        "exact", description="exact: Hamilton's equations of the model at the sampled states; "
        "finite_difference: from the (noisy) trajectories")  # fmt: skip
    max_iterations: int = Field(20, ge=1, le=1000, description="thresholding rounds")
    normalize: bool = Field(False, description="threshold the coefficients of unit-norm "
                            "feature columns")  # fmt: skip


class ConservedOptions(BaseModel):
    """``conserved(...)``: conserved quantities as the null space of feature changes along
    trajectories (sparsest first), counted as functionally independent."""

    model_config = ConfigDict(extra="forbid")
    degree: int = Field(2, ge=1, le=6, description="the highest degree of the monomials")
    trig: bool = Field(False, description="add sin and cos of the coordinates")
    inverse_radius: bool = Field(False, description="add 1/|r| of pair separations (Kepler)")
    tol: float | None = Field(None, gt=0, description="singular-value tolerance of the null "
                              "space (default: from the data)")  # fmt: skip
    velocities: bool = Field(False, description="the state is (q, dq/dt) instead of (q, p): "
                             "a double pendulum's energy is a finite sum of features in the "
                             "velocities, not in the momenta")  # fmt: skip


class DiscoverOptions(BaseModel):
    """Named options of the ``discover`` statement itself."""

    model_config = ConfigDict(extra="forbid")
    data: str | None = Field(None, description="the table of the run's model to fit")


DISCOVER_SCHEMAS: dict[str, type[BaseModel]] = {
    "power_law": PowerLawOptions, "monomial": PowerLawOptions, "equations": EquationsOptions,
    "conserved": ConservedOptions}  # fmt: skip
LAW_METHODS = ("power_law", "monomial")

DISCOVER_COLUMNS = ("method", "law", "expression")
DISCOVER_OPTIONAL = ("target", "predictor", "exponent", "ci", "rational", "prefactor",
                     "fitted_prefactor", "r2", "n_points", "confidence",
                     "dimensions_possible", "dimensions_consistent", "prefactor_dims",
                     "constant_exponents", "dimension_exponents", "dimensions_note", "variable",
                     "terms", "coefficients", "features",
                     "residual", "source", "count", "count_from_data", "quantity",
                     "feature_names", "entry", "null_dimension", "laws", "dimensions")  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Declare the discover methods and task."""
    docs = {"power_law": "y = c prod x_i^a_i by least squares on logarithms: exponents with "
            "confidence intervals, rational exponents, dimensional analysis from units",
            "monomial": "alias of power_law",
            "equations": "equations of motion by sparse regression over a feature library "
            "(SINDy, sequentially thresholded least squares)",
            "conserved": "conserved quantities: the sparsest null vectors of feature changes "
            "along trajectories, counted as functionally independent"}  # fmt: skip
    for name, schema in DISCOVER_SCHEMAS.items():
        catalogue.analyses.declare(name, schema, docs[name], task="discover")
    catalogue.tasks.declare("discover", DiscoverOptions, "discover laws, equations of motion "
                            "or conserved quantities from tables or simulated trajectories",
                            columns=Columns(fixed=DISCOVER_COLUMNS,
                                            optional=DISCOVER_OPTIONAL, measures=False,
                                            scans_in_some_rows=True))  # fmt: skip


__all__ = ["DISCOVER_SCHEMAS", "DISCOVER_TASKS", "DiscoverOptions", "EquationsOptions",
           "LAW_METHODS", "ORBIT_COLUMNS", "PowerLawOptions", "ConservedOptions", "declare"]
