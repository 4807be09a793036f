"""``physml list [KIND [NAME]]``: the catalogue as text -- entries, their options with types,
defaults and descriptions, and their static facts."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from physml_lang.diagnostics import Diagnostic, PhysmlError, did_you_mean

from .registry import Catalogue, Entry, Registry


def type_text(annotation: object) -> str:
    """A readable option type: ``int``, ``float``, ``random|ordered``, ``int | None``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        args = [type_text(a) for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"list of {args[0]}" if args else "list"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def option_default(info: FieldInfo) -> str:
    """An option's default as the catalogue shows it: the value, or required/computed."""
    if info.is_required():
        return "required"
    default = info.default
    if default is PydanticUndefined:
        if info.default_factory is None:
            return "computed"
        default = info.default_factory()
    return repr(default) if not isinstance(default, str) else default


def _default_text(info: FieldInfo) -> str:
    bare = info.is_required() or (info.default is PydanticUndefined
                                  and info.default_factory is None)  # fmt: skip
    return option_default(info) if bare else f"= {option_default(info)}"


def entry_text(entry: Entry, indent: str = "  ") -> list[str]:
    """An entry: title and doc, facts, then one line per option."""
    lines = [f"{indent}{entry.title}: {entry.doc}" if entry.doc else f"{indent}{entry.title}"]
    facts = entry.facts
    known = [("for", facts.kinds if not entry.family else ()), ("domains", facts.domains),
             ("symmetries", facts.symmetries)]  # fmt: skip
    shown = [f"{k} {', '.join(v)}" for k, v in known if v]
    if shown:
        lines.append(f"{indent}    ({'; '.join(shown)})")
    for name, info in entry.schema.model_fields.items():
        text = f"{indent}    {name}: {type_text(info.annotation)} {_default_text(info)}"
        if info.description:
            text += f"  -- {info.description}"
        lines.append(text)
    return lines


def registry_text(registry: Registry, names: Iterable[str] | None = None) -> list[str]:
    wanted = set(names) if names is not None else None
    lines = [f"{registry.kind}:"]
    for entry in registry:
        if wanted is None or entry.name in wanted:
            lines += entry_text(entry)
    return lines


def listing(catalogue: Catalogue, kind: str | None = None, name: str | None = None) -> str:
    """The text of ``physml list``: every kind of entry, one kind, or one entry of a kind."""
    if kind is None:
        out: list[str] = []
        for registry in catalogue:
            out += registry_text(registry) + [""]
        return "\n".join(out).rstrip() + "\n"
    registry = catalogue.registry(kind)
    if name is not None and name not in registry.names():
        raise PhysmlError(Diagnostic(
            "P203", f"no {registry.noun} called '{name}'",
            hint=did_you_mean(name, set(registry.names())) or
            f"{registry.kind}: {', '.join(registry.names())}"))  # fmt: skip
    return "\n".join(registry_text(registry, None if name is None else [name])) + "\n"


__all__ = ["entry_text", "listing", "type_text"]
