"""The IR between the phases: ``physml compile FILE --emit ir`` pinned for every example, exact
round trips through its text form (``parse_ir(print_ir(ir)) == ir``) for the examples and for
generated models, and ``--emit ast``.

Regenerate the goldens deliberately with ``PHYSML_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import math

import pytest
from frontend_util import GOLDEN, REPO, TINY, compare_golden, physml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import physml_lang
from physml_lang.ir import expr as E
from physml_lang.ir import model as M
from physml_lang.ir import task as T
from physml_lang.ir.text import IRSyntaxError, parse_ir, print_ir

EXAMPLES = sorted((REPO / "examples").glob("*.phys"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_emit_ir_golden(path):
    code, out, err = physml("compile", str(path.relative_to(REPO)), "--emit", "ir", cwd=REPO)
    assert code == 0, err
    compare_golden(GOLDEN / "ir" / f"{path.stem}.ir.txt", out)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_ir_round_trips(path):
    ir = physml_lang.load(path).ir()
    text = print_ir(ir)
    assert parse_ir(text) == ir
    assert print_ir(parse_ir(text)) == text


def test_emit_ast_and_ir_of_one_model(tmp_path):
    (tmp_path / "m.phys").write_text(TINY)
    code, out, err = physml("compile", "m.phys", "--emit", "ast", cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("Program") and "Generator" in out and "Traceback" not in out
    code, out, err = physml("compile", "m.phys", "--emit", "ir", "--set", "L=6", cwd=tmp_path)
    assert code == 0, err
    ir = parse_ir(out)
    assert isinstance(ir, M.ModelIR) and ir.lattice.extent == (6, 6)
    assert ir.values == {"L": 6, "J": 1.0, "h": 0.0}


def test_ir_keeps_the_basis_and_the_boundary():
    ir = physml_lang.load(TINY.replace("periodic)", "open)")).instantiate("Ising")
    assert ir.lattice.basis == ((0.0, 0.0),) and ir.lattice.vectors == ((1.0, 0.0), (0.0, 1.0))
    assert ir.lattice.periodic == (False, False)
    tri = physml_lang.load("model T(L: int = 3) { lattice triangular(L, L)\n field s: spin on "
                           "sites\n energy E = -sum(s[i] * s[j] for (i, j) in bonds) }")
    vec = tri.instantiate("T").lattice.vectors
    assert vec[1] == (0.5, math.sqrt(3) / 2)


def test_not_ir_text_is_refused():
    for text in ["(model :name", "(nonsense)", "(model :nope 1)", "{(+ 1)}", "(field) extra"]:
        with pytest.raises(IRSyntaxError):
            parse_ir(text)


# -------------------------------------------------------------------- generated models

NAMES = st.sampled_from(["a", "b", "J", "h", "K2", "x_1"])
FLOATS = st.floats(allow_nan=False, width=64)


@st.composite
def exprs(draw, depth=3):
    """Random expressions of the IR, including odd numbers and strings."""
    leaves = st.one_of(
        st.integers(-10**30, 10**30).map(E.Num), FLOATS.map(E.Num), NAMES.map(E.Name),
        st.floats(allow_nan=False, allow_infinity=False).map(E.Imag),
        st.text(max_size=8).map(E.Str),
    )  # fmt: skip
    if depth == 0:
        return draw(leaves)
    sub = exprs(depth=depth - 1)
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(leaves)
    if kind == 1:
        return E.Binary(draw(st.sampled_from(E.BINARY_OPS)), draw(sub), draw(sub))
    if kind == 2:
        return E.Unary(draw(st.sampled_from(E.UNARY_OPS)), draw(sub))
    if kind == 3:
        return E.Index(E.Name(draw(NAMES)), tuple(draw(st.lists(sub, min_size=1, max_size=3))))
    if kind == 4:
        kws = tuple(E.Keyword(draw(NAMES), draw(sub)) for _ in range(draw(st.integers(0, 2))))
        return E.Call(draw(NAMES), tuple(draw(st.lists(sub, max_size=2))), kws)
    if kind == 5:
        loops = tuple(E.Loop(tuple(draw(st.lists(NAMES, min_size=1, max_size=3))),
                             draw(st.one_of(st.none(), sub))) for _ in range(draw(st.integers(1, 2))))  # fmt: skip
        return E.Reduce(draw(st.sampled_from(E.REDUCTIONS)), draw(sub), loops)
    if kind == 6:
        return E.ListExpr(tuple(draw(st.lists(sub, max_size=3))))
    return draw(leaves)


VALUES = st.recursive(
    st.one_of(st.integers(), FLOATS, st.booleans(), st.text(max_size=6),
              st.complex_numbers(allow_nan=False), NAMES.map(T.Word)),
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple),
                            st.builds(T.CallValue, NAMES, st.lists(inner, max_size=2).map(tuple))),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(exprs(), min_size=1, max_size=3), st.lists(VALUES, max_size=3))
def test_generated_ir_round_trips(expressions, values):
    model = M.ModelIR(
        "G", "lattice", (M.ParamIR("J", "real", 1.5), M.ParamIR("z", "complex", 1 - 2j)),
        M.LatticeIR("kagome", (3, 4), (True, False), ((1.0, 0.0), (0.5, 0.8660254037844386)),
                    ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5))),
        definitions=tuple(M.DefinitionIR("let", f"d{k}", ("i",), e)
                          for k, e in enumerate(expressions)),
    )  # fmt: skip
    task = T.TaskIR("t", "sample", statements=(T.StatementIR("w", tuple(
        T.ItemIR("named", v, name="o") for v in values)),))  # fmt: skip
    for ir in (model, task):
        assert parse_ir(print_ir(ir)) == ir


IDENT = st.sampled_from(["J", "h", "K", "g", "c"])


@st.composite
def energy(draw, depth=3):
    """A random energy over the declared parameters and the spin field s of a lattice model."""
    if depth == 0:
        return draw(st.sampled_from(["s[i] * s[j]", "s[i]", "J", "2.5", "1e-3"]))
    a, b = draw(energy(depth=depth - 1)), draw(energy(depth=depth - 1))
    op = draw(st.sampled_from(["+", "-", "*"]))
    return f"({a} {op} {b})"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["chain(L)", "square(L, L)", "triangular(L, 3)", "cubic(L, L, L)",
                        "square(L, L, boundary = open)"]),
       st.sampled_from(["spin", "binary", "potts(3)"]),
       energy(), st.integers(2, 9), st.floats(-3, 3),
       st.sampled_from(["", "symmetry translation", "symmetry spin_flip if J == 0"]))
def test_generated_models_check_and_round_trip(lattice, domain, body, L, J, symmetry):
    """Models generated as source text: checked into IR, which round-trips exactly."""
    source = (f"model G(L: int = {L}, J: real = {J!r}) {{\n lattice {lattice}\n"
              f" field s: {domain} on sites\n param K on sites = normal(0, 1, seed = {L})\n"
              f" energy E = sum({body} for (i, j) in bonds) + J * sum(K[i] * s[i] for i in sites)\n"
              f" {symmetry}\n}}\n"
              "run r { model G\n sampler metropolis(chains = 2)\n scan T in linspace(1, 2, 3)\n"
              " measure e = energy / sites, binder }\n")  # fmt: skip
    program = physml_lang.load(source.replace("(i, j) in bonds)", "(i, j) in bonds)", 1))
    ir = program.ir()
    assert parse_ir(print_ir(ir)) == ir
    assert ir.tasks[0].scans[0].values == (1.0, 1.5, 2.0)
