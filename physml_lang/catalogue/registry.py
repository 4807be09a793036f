"""One registry type for every kind of catalogue entry.

An :class:`Entry` is declared here, in the front end, with what ``physml check`` needs to
validate a program without running it: a name, a pydantic options schema, a docstring and its
static facts (model kinds, field domains, symmetries). Its implementation -- a torch sampler, a
learner, a task -- is attached later by ``bind``, which each implementation package exposes and
only the top layer calls; nothing registers by import.

Names may be shared by several model kinds (``metropolis`` samples spins, links and qubit
states): an entry then has a ``family`` (the model kind it belongs to), and a lookup names the
family it asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean

from .columns import Columns

T = TypeVar("T")


class NoOptions(BaseModel):
    """An entry without options."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Facts:
    """Static facts of an entry, read by ``check`` and printed by ``physml list``.

    ``kinds``: model kinds it applies to (empty: any). ``domains``: field domains it supports
    (empty: any). ``symmetries``: symmetries it can respect (learners) or needs. ``columns``:
    the columns of the rows a task writes (tasks only). ``task``: the task a ``train ... via``
    statement with this objective runs (objectives only)."""

    kinds: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    symmetries: tuple[str, ...] = ()
    columns: Columns | None = None
    task: str = ""


@dataclass
class Entry(Generic[T]):
    """A named capability: options schema, documentation, static facts, implementation."""

    name: str
    schema: type[BaseModel]
    doc: str
    facts: Facts = field(default_factory=Facts)
    family: str = ""
    implementation: T | None = None
    static_check: Any = None  # torch-free validation, bound by ``bind_check`` (tasks)

    @property
    def title(self) -> str:
        """The name as listed: ``metropolis`` or ``metropolis [gauge]``."""
        return f"{self.name} [{self.family}]" if self.family else self.name

    def defaults(self) -> dict[str, Any]:
        """Option name -> default (required options are left out)."""
        return {k: f.get_default(call_default_factory=True)
                for k, f in self.schema.model_fields.items() if not f.is_required()}  # fmt: skip


class Registry(Generic[T]):
    """Entries of one kind (``samplers``, ``learners``, ...), keyed by (name, family)."""

    def __init__(self, kind: str, noun: str):
        self.kind = kind
        self.noun = noun
        self._entries: dict[tuple[str, str], Entry[T]] = {}

    # ---------------------------------------------------------------- declaring and binding
    def declare(self, name: str, schema: type[BaseModel] = NoOptions, doc: str = "", *,
                family: str = "", kinds: tuple[str, ...] = (), domains: tuple[str, ...] = (),
                symmetries: tuple[str, ...] = (), columns: Columns | None = None,
                task: str = "") -> Entry[T]:  # fmt: skip
        """Add an entry (front end: no implementation yet)."""
        key = (name, family)
        if key in self._entries:
            raise ValueError(f"{self.noun} {name!r} ({family or 'any kind'}) declared twice")
        entry: Entry[T] = Entry(name, schema, doc, Facts(kinds or ((family,) if family else ()),
                                                         domains, symmetries, columns, task),
                                 family)  # fmt: skip
        self._entries[key] = entry
        return entry

    def bind(self, name: str, implementation: T, *, family: str = "") -> None:
        """Attach the implementation of a declared entry (called by an implementation
        package's ``bind``); an implementation without an entry is an error."""
        self._attach(name, family, "implementation", implementation, "an implementation")

    def bind_check(self, name: str, check: Any, *, family: str = "") -> None:
        """Attach the static (torch-free) check of a declared entry: what ``physml check``
        runs instead of the implementation."""
        self._attach(name, family, "static_check", check, "a check")

    def _attach(self, name: str, family: str, slot: str, value: Any, what: str) -> None:
        entry = self._entries.get((name, family))
        if entry is None:
            raise KeyError(f"no {self.noun} {name!r} ({family or 'any kind'}) is declared in the "
                           f"catalogue: declare it before binding {what}")  # fmt: skip
        current = getattr(entry, slot)
        if current is not None and current is not value:
            raise ValueError(f"{what} of {self.noun} {entry.title} is bound twice")
        setattr(entry, slot, value)

    # ---------------------------------------------------------------- finding
    def get(self, name: str, family: str = "") -> Entry[T] | None:
        """The entry of ``family`` called ``name``, else the one shared by every kind."""
        return self._entries.get((name, family)) or self._entries.get((name, ""))

    def names(self, family: str | None = None, *, shared: bool = True) -> list[str]:
        """Names visible to ``family`` (its own entries, and shared ones unless ``shared`` is
        false); all without one. In declaration order, which hints list them in."""
        kinds = ("", family) if shared else (family,)
        names = [e.name for e in self._entries.values() if family is None or e.family in kinds]
        return list(dict.fromkeys(names))

    def lookup(self, name: str, family: str = "", span: Span | None = None,
               what: str | None = None) -> Entry[T]:  # fmt: skip
        """The entry, or a located P203 naming the close and the available ones."""
        entry = self.get(name, family)
        if entry is not None:
            return entry
        known = self.names(family)
        where = f" for {what}" if what else (f" for {family} models" if family else "")
        elsewhere = sorted({e.family for e in self._entries.values() if e.name == name})
        hint = did_you_mean(name, set(known)) or f"{self.kind}{where}: {', '.join(known)}"
        if elsewhere:
            hint = f"'{name}' is a {self.noun} of {', '.join(elsewhere)} models; " + hint
        raise PhysmlError(Diagnostic("P203", f"unknown {self.noun} '{name}'{where}", span, hint))

    def implementation(self, name: str, family: str = "") -> T:
        """The bound implementation (a missing binding is a packaging error, not a user's)."""
        entry = self.get(name, family)
        if entry is None or entry.implementation is None:
            raise RuntimeError(f"{self.noun} {name!r} ({family or 'any kind'}) has no bound "
                               "implementation: the top layer binds the runtime first")  # fmt: skip
        return entry.implementation

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: (e.name, e.family)))

    def __len__(self) -> int:
        return len(self._entries)

    def unbound(self) -> list[Entry[T]]:
        return [e for e in self if e.implementation is None]


@dataclass
class Catalogue:
    """Every registry of the language, one per kind of entry."""

    lattices: Registry[Any] = field(default_factory=lambda: Registry("lattices", "lattice"))
    domains: Registry[Any] = field(default_factory=lambda: Registry("domains", "field domain"))
    samplers: Registry[Any] = field(default_factory=lambda: Registry("samplers", "sampler"))
    updates: Registry[Any] = field(default_factory=lambda: Registry("updates", "update"))
    learners: Registry[Any] = field(default_factory=lambda: Registry("learners", "learner"))
    optimisers: Registry[Any] = field(default_factory=lambda: Registry("optimisers", "optimiser"))
    schedules: Registry[Any] = field(
        default_factory=lambda: Registry("schedules", "learning-rate schedule"))
    objectives: Registry[Any] = field(
        default_factory=lambda: Registry("objectives", "training objective"))
    integrators: Registry[Any] = field(
        default_factory=lambda: Registry("integrators", "integrator"))
    observables: Registry[Any] = field(
        default_factory=lambda: Registry("observables", "observable"))
    sources: Registry[Any] = field(default_factory=lambda: Registry("sources", "data source"))
    # how a learning-about-physics statement finds its answer: discover P via power_law(a),
    # classify phases via supervised(...), invariant winding(...), locate impurities(...)
    analyses: Registry[Any] = field(
        default_factory=lambda: Registry("analyses", "analysis method"))
    tasks: Registry[Any] = field(default_factory=lambda: Registry("tasks", "task"))

    def __iter__(self) -> Iterator[Registry[Any]]:
        return iter(getattr(self, f.name) for f in fields(self))

    def registry(self, kind: str) -> Registry[Any]:
        """The registry called ``kind`` (``samplers``, ...), or a P203 naming them."""
        for reg in self:
            if reg.kind == kind:
                return reg
        kinds = [r.kind for r in self]
        raise PhysmlError(Diagnostic("P203", f"no kind of entry called '{kind}'",
                                     hint=did_you_mean(kind, set(kinds)) or ", ".join(kinds)))


__all__ = ["Catalogue", "Entry", "Facts", "NoOptions", "Registry"]
