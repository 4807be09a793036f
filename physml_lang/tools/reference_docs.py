"""Generated pages of the documentation site: the language reference (from the lark grammar and
the run-statement table), the catalogue (every registry entry and option, from the pydantic
schemas) and the validation table (from the examples' ``# Claims`` blocks and the recorded long
runs). Each generator returns Markdown; ``docs/hooks/physml_docs.py`` adds the pages to the
build."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic.fields import FieldInfo

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.listing import option_default, type_text
from physml_lang.catalogue.registry import Entry

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md(text: str) -> str:
    """Plain text as Markdown that renders literally (one line, safe in a table cell)."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def code(text: str) -> str:
    """Inline code, safe in a table cell."""
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def anchor(text: str) -> str:
    """The id of a heading (``toc``'s slug for the same text)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


# ---------------------------------------------------------------- the language reference
@dataclass(frozen=True)
class Rule:
    """A grammar rule (or terminal) as written: name, alternatives, its comment lines."""

    name: str
    alternatives: tuple[str, ...]
    comment: str


@dataclass(frozen=True)
class Section:
    """A ``// ---- title`` part of the grammar: its leading comment and its rules."""

    title: str
    intro: str
    rules: tuple[Rule, ...]


_RULE_START = re.compile(r"^([?!]?)([A-Za-z_][A-Za-z_0-9]*)\s*:\s*(.*)$")
_SECTION = re.compile(r"^//\s*-{3,}\s*(.+)$")
_ALIAS = re.compile(r"\s*->\s*\w+\s*$")


def _alternative(text: str) -> str:
    """One alternative without its tree alias (``-> add``) and with single spaces."""
    return " ".join(_ALIAS.sub("", text).split())


def grammar_sections(grammar: str) -> list[Section]:
    """The grammar's rules grouped by its ``// ---- title`` comments, in file order."""
    sections: list[Section] = []
    title, intro, rules = "Files", [], []  # before the first section line
    comment: list[str] = []
    current: tuple[str, list[str], str] | None = None

    def close_rule() -> None:
        nonlocal current
        if current is not None:
            name, alts, text = current
            rules.append(Rule(name, tuple(a for a in map(_alternative, alts) if a), text))
            current = None

    for line in grammar.splitlines():
        stripped = line.strip()
        if m := _SECTION.match(stripped):
            close_rule()
            if rules or intro:
                sections.append(Section(title, " ".join(intro), tuple(rules)))
            title, intro, rules, comment = m[1].strip().capitalize(), [], [], []
        elif stripped.startswith("//"):
            close_rule()
            comment.append(stripped[2:].strip())
        elif not stripped:
            close_rule()
            if comment and not rules:  # a comment paragraph before any rule: the section's
                intro += comment
            comment = []
        elif stripped.startswith("%"):
            close_rule()
        elif (m := _RULE_START.match(line)) and not line[0].isspace():
            close_rule()
            current = (m[2], [m[3].lstrip("|")], " ".join(comment))
            comment = []
        elif current is not None:
            alts = current[1]
            if stripped.startswith("|"):
                alts.append(stripped[1:])
            else:
                alts[-1] += " " + stripped
    close_rule()
    sections.append(Section(title, " ".join(intro), tuple(rules)))
    return [s for s in sections if s.rules]


def _rule_text(rule: Rule) -> str:
    pad = " " * len(rule.name)
    return "\n".join(f"{rule.name if i == 0 else pad}{' :' if i == 0 else ' |'} {alt}"
                     for i, alt in enumerate(rule.alternatives))  # fmt: skip


def keywords(grammar: str) -> list[str]:
    """Every word the grammar quotes as a literal (``"model"``, ``"respecting"``)."""
    return sorted({w for w in re.findall(r'"([A-Za-z_]+)"', grammar)})


def language_page(grammar: str, statements: dict[str, object]) -> str:
    """The language reference: the grammar rule by rule, its keywords, the run statements."""
    out = ["# Language reference", "",
           "Generated from `grammar/physml.lark` (the single source of the syntax) and the table of "
           "run statements (`physml_lang/check/tasks.py`). Names in rules are other rules; "
           "quoted words are literal; `[x]` is optional, `x*` repeated, `x+` at least once. "
           "Samplers, learners, lattices, observables and their options are names resolved "
           "through the [catalogue](catalogue.md), not grammar.", "",
           "**Keywords:** " + ", ".join(f"`{k}`" for k in keywords(grammar)), ""]  # fmt: skip
    for section in grammar_sections(grammar):
        out += [f"## {section.title}", ""]
        if section.intro:
            out += [md(section.intro), ""]
        for rule in section.rules:
            if rule.comment:
                out += [md(rule.comment), ""]
            out += ["```text", _rule_text(rule), "```", ""]
    out += ["## Run statements", "",
            "A run block is a list of statements `WORD item, item, ...`. The word decides the "
            "statement's meaning and, for some, the task the run does.", "",
            "| word | usage | task |", "|---|---|---|"]  # fmt: skip
    for word, st in statements.items():
        tasks = getattr(st, "task", None) or getattr(st, "default_task", None)
        methods = getattr(st, "methods", {}) or {}
        task = tasks or ", ".join(sorted(set(methods.values()))) or "—"
        out.append(f"| `{word}` | {code(getattr(st, 'usage', ''))} | {md(task)} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the catalogue
def _pattern_choices(pattern: str) -> str | None:
    m = re.fullmatch(r"\^\(([\w|]+)\)\$", pattern)
    return "one of " + ", ".join(m[1].split("|")) if m else None


def option_range(info: FieldInfo) -> str:
    """The constraints of an option: ``≥ 1``, ``0 < x ≤ 1``, ``at least 2 items``."""
    lower = upper = ""
    extra: list[str] = []
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lower = f"{m.ge!r} ≤"
        if getattr(m, "gt", None) is not None:
            lower = f"{m.gt!r} <"
        if getattr(m, "le", None) is not None:
            upper = f"≤ {m.le!r}"
        if getattr(m, "lt", None) is not None:
            upper = f"< {m.lt!r}"
        if getattr(m, "min_length", None) is not None:
            extra.append(f"at least {m.min_length} items")
        if getattr(m, "max_length", None) is not None:
            extra.append(f"at most {m.max_length} items")
        if getattr(m, "pattern", None):
            extra.append(_pattern_choices(m.pattern) or f"matches {m.pattern}")
    if lower and not upper:  # 1 ≤ x reads better as ≥ 1
        value, sign = lower.rsplit(" ", 1)
        lower, upper = "", f"{'≥' if sign == '≤' else '>'} {value}"
    bound = f"{lower} x {upper}" if lower and upper else upper
    return "; ".join(filter(None, [bound, *extra]))


def entry_id(kind: str, entry: Entry) -> str:
    """A unique anchor: an entry's name may repeat across families in one registry."""
    return anchor(f"{kind}-{entry.name}-{entry.family}" if entry.family else f"{kind}-{entry.name}")


def _entry(kind: str, entry: Entry) -> list[str]:
    family = f" <small>[{entry.family}]</small>" if entry.family else ""
    out = [f"### {md(entry.name)}{family} {{#{entry_id(kind, entry)}}}", ""]
    if entry.doc:
        out += [md(entry.doc), ""]
    facts = entry.facts
    known = [("model kinds", facts.kinds), ("field domains", facts.domains),
             ("symmetries", facts.symmetries)]  # fmt: skip
    if facts.task:
        known.append(("runs the task", (facts.task,)))
    if facts.columns is not None and getattr(facts.columns, "fixed", None):
        known.append(("writes columns", tuple(facts.columns.fixed)))
    shown = [f"{k}: {', '.join(f'`{v}`' for v in vs)}" for k, vs in known if vs]
    if shown:
        out += ["*" + "; ".join(shown) + "*", ""]
    fields = entry.schema.model_fields
    if not fields:
        return out + ["No options.", ""]
    out += ["| option | type | default | range | description |", "|---|---|---|---|---|"]
    for name, info in fields.items():
        out.append(f"| `{name}` | {code(type_text(info.annotation))} | "
                   f"{code(option_default(info))} | {md(option_range(info)) or '—'} | "
                   f"{md(info.description or '')} |")  # fmt: skip
    return out + [""]


def catalogue_page(catalogue: Catalogue) -> str:
    """Every registry, entry and option: what ``physml list`` prints, as a page."""
    out = ["# Catalogue", "",
           "Every name a `.phys` file resolves through a registry, generated from the catalogue "
           "(`physml_lang/catalogue`): each entry's family, documentation and static facts, and "
           "each option's type, default, range and meaning. `physml list KIND [NAME]` prints the "
           "same in a terminal. An entry marked `[family]` applies to models of that family; "
           "one name may have an entry per family.", "",
           "| registry | entries |", "|---|---|"]  # fmt: skip
    for registry in catalogue:
        names = ", ".join(f"[{e.name}](#{entry_id(registry.kind, e)})" for e in registry)
        out.append(f"| [{registry.kind}](#{anchor(registry.kind)}) | {names} |")
    out.append("")
    for registry in catalogue:
        out += [f"## {registry.kind}", "", f"{len(registry)} {md(registry.noun)} entries.", ""]
        for entry in registry:
            out += _entry(registry.kind, entry)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the examples' claims
NUMBER = r"[-+−]?(?:\d+\.?\d*|\.\d+)(?:e[-+−]?\d+)?"
CLAIM = re.compile(rf"^\s*(?P<name>\w+)\s*=\s*(?P<value>{NUMBER})(?:\s*±\s*(?P<err>{NUMBER}))?$")


class ClaimError(ValueError):
    """A ``# Claims`` line that does not read as ``column = value [± err]``."""


@dataclass(frozen=True)
class Claim:
    """``column`` of the row selected by ``where`` in run ``run`` equals ``value`` (± ``err``)."""

    line: int
    run: str | None
    where: dict[str, float | str]
    column: str
    value: str
    err: str | None


def to_float(text: str) -> float:
    return float(text.replace("−", "-"))


def last_digit_unit(text: str) -> float:
    """One unit of the last written digit: 0.0740 -> 1e-4, 1.8e-5 -> 1e-6, 12 -> 1."""
    mantissa, _, exponent = text.replace("−", "-").lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def claims(path: Path) -> list[Claim]:
    """The claims block of an example's header (empty when it claims nothing)."""
    out: list[Claim] = []
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("# Claims")]
    if not starts:
        return out
    for i in range(starts[0] + 1, len(lines)):
        line = lines[i]
        if not line.startswith("#   "):
            break
        head, sep, body = line[4:].partition(":")
        if not sep:  # a file with one run of one row: no row to select
            head, body = "", head
        run, where = None, {}
        for part in filter(None, (p.strip() for p in head.split(","))):
            if "=" in part:
                k, v = (s.strip() for s in part.split("="))
                where[k] = to_float(v) if re.fullmatch(NUMBER, v) else v
            else:
                run = part
        for item in body.split(","):
            m = CLAIM.match(item)
            if not m:
                raise ClaimError(f"{path.name}:{i + 1}: cannot read the claim '{item.strip()}'")
            out.append(Claim(i + 1, run, where, m["name"], m["value"], m["err"]))
    return out


# ---------------------------------------------------------------- the validation table
def header(path: Path) -> list[str]:
    """An example's leading comment, without the ``#`` marks (blank lines kept)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        out.append(line[1:].strip())
    return out


def _paragraphs(lines: Iterable[str]) -> list[str]:
    paras, current = [], []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paras.append(" ".join(current))
            current = []
    return paras + ([" ".join(current)] if current else [])


_REFERENCE_WORDS = re.compile(r"\b(exact|published|reproduces|onsager|kaufman|analytic)", re.I)


def reference_text(path: Path, limit: int = 400) -> str:
    """What an example is compared with, from its header: its ``Reproduces`` paragraph, else
    the sentences that name an exact or published value; empty when it names none."""
    lines = header(path)
    before = lines[:next((i for i, s in enumerate(lines) if s.startswith("Claims")), len(lines))]
    paras = _paragraphs(before)
    found = [p for p in paras if p.startswith("Reproduces")]
    if not found:
        sentences = [s for p in paras[1:] or paras for s in re.split(r"(?<=\.)\s+", p)]
        found = [s for s in sentences if _REFERENCE_WORDS.search(s)]
    return _shorten(" ".join(found), limit)


_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bPhys)\.\s+(?=[A-Z])")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def capability(path: Path, limit: int = 200) -> str:
    """The first sentence of an example's header (shortened past ``limit`` characters)."""
    paras = _paragraphs(header(path))
    first = paras[0] if paras else path.stem
    sentence = re.split(_SENTENCE_END, first)[0].rstrip(".")
    return _shorten(sentence, limit)


def claim_text(claim: Claim) -> str:
    where = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                      for k, v in claim.where.items())  # fmt: skip
    value = claim.value + (f" ± {claim.err}" if claim.err else "")
    return (f"{where}: " if where else "") + f"{claim.column} = {value}"


@dataclass(frozen=True)
class LongRun:
    test: str
    outcome: str
    wall_time: str
    figures: str


def long_runs(text: str) -> list[LongRun]:
    """The rows of the tables in ``docs/long_runs.md``; a later row of a test replaces an
    earlier one (the file appends reruns)."""
    rows: dict[str, LongRun] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = LongRun(cells[0].strip("`"), *cells[1:])
    return list(rows.values())


def validation_rows(examples: Path, long_text: str) -> list[dict[str, str]]:
    """One row per example with claims: capability, reference, what physml prints, where it
    is tested (the slow stage of CI, or the recorded long runs)."""
    recorded = {r.test.rpartition("[")[2].rstrip("]"): r for r in long_runs(long_text)}
    rows = []
    for path in sorted(examples.glob("*.phys")):
        found = claims(path)
        if not found:
            continue
        runs = sorted({c.run or "default" for c in found})
        long = [recorded[f"{path.stem}-{r}"] for r in runs if f"{path.stem}-{r}" in recorded]
        where = ("long runs (`scripts/long.sh`): " + ", ".join(r.outcome for r in long)
                 if long else "slow stage of CI")  # fmt: skip
        rows.append({"example": path.stem, "capability": capability(path),
                     "reference": reference_text(path),
                     "physml": "; ".join(claim_text(c) for c in found), "tested": where})  # fmt: skip
    return rows


def validation_page(examples: Path, long_text: str) -> str:
    """The validation table: every example's claims and the long validations' figures."""
    out = ["# Validation", "",
           "Generated from the `# Claims` block of every example (`examples/*.phys`) and from "
           "[the last recorded long runs](long_runs.md). Every claim is a number the example "
           "prints at seed 0 on the CPU, checked to the digits it is written with by "
           "`tests/spine/test_example_claims.py` (in CI's slow stage, or in `scripts/long.sh` "
           "for the examples that take minutes). The reference column quotes the example's "
           "header; the exact and published values themselves are in [References](references.md).",
           "", "| example | capability | exact or published value | physml (value ± stderr) | "
           "tested |", "|---|---|---|---|---|"]  # fmt: skip
    for row in validation_rows(examples, long_text):
        out.append(f"| `{row['example']}` | {md(row['capability'])} | "
                   f"{md(row['reference']) or '— (a regression value)'} | {md(row['physml'])} | "
                   f"{md(row['tested'])} |")  # fmt: skip
    others = [r for r in long_runs(long_text) if "test_example_claims" not in r.test]
    if others:
        out += ["", "## Long validations", "",
                "Accuracy targets too slow for CI, with the figures of their last recorded run.",
                "", "| test | outcome | wall time | figures |", "|---|---|---|---|"]  # fmt: skip
        out += [f"| {code(r.test)} | {md(r.outcome)} | {md(r.wall_time)} | {md(r.figures)} |"
                for r in others]
    return "\n".join(out) + "\n"


__all__ = ["Claim", "ClaimError", "catalogue_page", "claims", "language_page",
           "last_digit_unit", "long_runs", "to_float", "validation_page", "validation_rows"]
