"""The columns of the rows a task writes (``results.csv``, ``summary.json``), known statically.

Each task entry declares its :class:`Columns` (``catalogue.tasks.declare(..., columns=...)``):
the columns of every row, those a row has where the model, the sampler or the options give them,
and whether the run's scanned variables, ``let`` values, temperature (T or beta) and measured
names are columns. :meth:`Columns.of` reads them off the names a run block declares: what a
``plot`` of the run may name (``physml check`` refuses anything else), and what tests compare
with the results of real runs, so that the declaration cannot drift from the runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

THERMAL = ("T", "beta")


@dataclass(frozen=True)
class Columns:
    """The columns of a task's rows, by what decides them.

    ``fixed``: in every row. ``optional``: in the rows where the model, sampler or options
    give them (a gap with more than one level, an exact reference, HMC's energy statistics).
    ``scans`` / ``lets``: the scanned variables / the ``let`` names are columns. ``thermal``:
    the temperature the run scans or lets (T or beta) is a column. ``measures``: each measured
    name is a column, ``defaults`` those measured when the run measures nothing. ``expands``:
    measures written as other columns (``structure_factor`` as its values at q = 0 and pi).
    ``scans_in_some_rows``: the scanned variables are columns of some rows only (a law fitted
    across the scan points has them as predictors, not as columns)."""

    fixed: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    scans: bool = True
    lets: bool = False
    thermal: bool = False
    measures: bool = True
    defaults: tuple[str, ...] = ()
    expands: tuple[tuple[str, tuple[str, ...]], ...] = ()
    scans_in_some_rows: bool = False

    def of(self, scans: Iterable[str], lets: Iterable[str], measures: Iterable[str]) -> list[str]:
        """The columns of a run with these scanned variables, ``let`` names and measured
        names: its variables first, then its measures, then the task's own columns."""
        scans, lets = list(scans), list(lets)
        out = list(scans) if self.scans else []
        out += lets if self.lets else []
        if self.thermal:
            out += [n for n in THERMAL if n in scans or n in lets]
        if self.measures:
            expands = dict(self.expands)
            for name in list(measures) or self.defaults:
                out += expands.get(name, (name,))
        out += [*self.fixed, *self.optional]
        return list(dict.fromkeys(out))

    def may_be_absent(self, scans: Iterable[str]) -> set[str]:
        """The columns a run with these scanned variables may leave out of its rows."""
        return set(self.optional) | (set(scans) if self.scans_in_some_rows else set())


__all__ = ["Columns", "THERMAL"]
