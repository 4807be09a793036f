"""Learner factories of the quantum capability, bound to the catalogue's learner entries
(``rbm``, ``cnn``, ``rnn`` of family ``quantum``, whose options schemas live in
``physml_lang.catalogue.quantum``).

A factory takes ``(options, context)`` where :class:`QuantumContext` carries what the compiler
knows about the lattice: number of sites, shape, translation table, bipartite sublattice, and the
declared symmetries the learner must respect. Asking for a symmetry a learner cannot respect (its
catalogue entry's ``symmetries``) is an error (:class:`SymmetryError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import BaseModel
from torch import nn

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.quantum import (
    QUANTUM,
    ConvNetOptions,
    RBMOptions,
    RNNOptions,
    learner_conflict,
    marshall_sign,
)
from physml_lang.compiler.models.quantum import QuantumModel
from physml_lang.diagnostics import Diagnostic, PhysmlError

from ..plans.quantum import VMCPlan
from .lattice import translation_table
from .learners import (
    RBM,
    AutoregressiveGRU,
    ConvNet,
    MarshallSign,
    SpinFlipSymmetric,
    SymmetricRBM,
    SymmetrizedAutoregressive,
)


class SymmetryError(ValueError):
    """A learner was asked to respect a symmetry it cannot."""


@dataclass
class QuantumContext:
    """Lattice facts for a learner; ``symmetries`` is a subset of {"translation", "spin_flip"}."""

    n_sites: int
    shape: tuple[int, ...] | None = None  # the unit cells of a lattice
    basis: int = 1  # sites per cell (site index = cell * basis + sublattice)
    translations: torch.Tensor | None = None
    sublattice: torch.Tensor | None = None
    symmetries: set[str] = field(default_factory=set)
    generator: torch.Generator | None = None
    dtype: torch.dtype = torch.float64

    def table(self) -> torch.Tensor:
        if self.translations is not None:
            return self.translations
        if self.shape is None:
            raise SymmetryError("translation symmetry needs a lattice (shape or translation table)")
        return translation_table(self.shape)


def _sign(model: nn.Module, opts, ctx: QuantumContext) -> nn.Module:
    """The learner times the Marshall sign when its options ask for it (checked by _check)."""
    return MarshallSign(model, ctx.sublattice) if marshall_sign(opts) else model


def _check(ctx: QuantumContext, name: str, opts: BaseModel) -> None:
    """The symmetries asked for are among those the learner's catalogue entry respects, and the
    options fit the lattice (the catalogue's static ``learner_conflict``)."""
    extra = set(ctx.symmetries) - set(CATALOGUE.learners.lookup(name, QUANTUM).facts.symmetries)
    if extra:
        raise SymmetryError(f"learner {name} cannot respect {sorted(extra)}")
    why = learner_conflict(opts, ctx.symmetries, ctx.sublattice is not None)
    if why is not None:
        raise SymmetryError(why)


def make_rbm(opts: RBMOptions, ctx: QuantumContext) -> nn.Module:
    """``rbm``: an RBM, weight-shared over translations when it respects translation."""
    _check(ctx, "rbm", opts)
    flip = "spin_flip" in ctx.symmetries
    if "translation" in ctx.symmetries:
        model: nn.Module = SymmetricRBM(
            ctx.table(),
            alpha=max(1, round(opts.alpha)),
            complex=opts.complex,
            spin_flip=flip,
            init_std=opts.init_std,
            generator=ctx.generator,
            dtype=ctx.dtype,
        )
    else:
        model = RBM(
            ctx.n_sites,
            opts.alpha,
            complex=opts.complex,
            spin_flip=flip,
            init_std=opts.init_std,
            generator=ctx.generator,
            dtype=ctx.dtype,
        )
    return _sign(model, opts, ctx)


def make_convnet(opts: ConvNetOptions, ctx: QuantumContext) -> nn.Module:
    """``cnn``: a CNN invariant under translations by whole cells, its input channels the
    sublattices."""
    _check(ctx, "cnn", opts)
    if ctx.shape is None:
        raise SymmetryError("cnn needs a lattice shape")
    model = ConvNet(
        ctx.shape,
        tuple(opts.channels),
        opts.kernel_size,
        opts.phase,
        spin_flip="spin_flip" in ctx.symmetries,
        generator=ctx.generator,
        dtype=ctx.dtype,
        basis=ctx.basis,
    )
    return _sign(model, opts, ctx)


def make_rnn(opts: RNNOptions, ctx: QuantumContext) -> nn.Module:
    """``rnn``: an autoregressive GRU, symmetrised over translations and spin flip if asked."""
    _check(ctx, "rnn", opts)
    flip = "spin_flip" in ctx.symmetries
    model: nn.Module = AutoregressiveGRU(
        ctx.n_sites,
        opts.hidden,
        opts.cell_size or ctx.basis,
        magnetization=opts.magnetization,
        phase="head" if opts.phase == "head" else "none",
        generator=ctx.generator,
        dtype=ctx.dtype,
    )
    if "translation" in ctx.symmetries:
        model = SymmetrizedAutoregressive(model, ctx.table(), spin_flip=flip)
    elif flip:
        model = SymmetrizedAutoregressive(
            model, torch.arange(ctx.n_sites, device="cpu").unsqueeze(0), spin_flip=True
        )
    return _sign(model, opts, ctx)


def make_learner(name: str, options: dict | BaseModel | None, ctx: QuantumContext) -> nn.Module:
    """Build a quantum learner of the catalogue (KeyError: unknown name; pydantic error: bad
    options)."""
    entry = CATALOGUE.learners.get(name, QUANTUM)
    if entry is None or entry.family != QUANTUM:  # another kind's shared learner is no NQS
        raise KeyError(name)
    schema = entry.schema
    opts = options if isinstance(options, schema) else schema(**(options or {}))
    return CATALOGUE.learners.implementation(name, QUANTUM)(opts, ctx)


def build_learner(setup: VMCPlan, qm: QuantumModel, generator: torch.Generator) -> nn.Module:
    """The planned learner (log psi(s) of configurations s (B, N) -> (B,)) on the model's
    lattice, its initial weights drawn on the host from ``generator``. What only building the
    network finds (an even CNN kernel, a GRU cell size that does not divide N, a magnetisation
    N cannot have) is a located P413 here; the plan has checked everything static."""
    decl = setup.learner_decl
    ctx = QuantumContext(
        qm.n_sites,
        shape=tuple(qm.lattice.cells),
        basis=qm.lattice.basis,
        translations=qm.translation_table(),
        sublattice=qm.sublattice(),
        symmetries=set(setup.respecting),
        generator=generator,
    )
    try:
        return make_learner(decl.call.name, setup.learner_options, ctx)
    except ValueError as exc:
        raise PhysmlError(Diagnostic(
            "P413", f"learner {decl.name} cannot be built for model {qm.ir.name}: {exc}",
            decl.call.span)) from None  # fmt: skip


def unsymmetrised(model: nn.Module) -> nn.Module:
    """The bare autoregressive model inside a translation-symmetrised one (shared parameters):
    what ``pretrain`` optimises."""
    if isinstance(model, MarshallSign) and isinstance(model.model, SymmetrizedAutoregressive):
        return MarshallSign(model.model.model, model.sublattice > 0.5)
    if isinstance(model, SymmetrizedAutoregressive):
        return model.model
    return model


def bind(catalogue: Catalogue) -> None:
    """Attach the learner factories to their catalogue entries."""
    for name, factory in (("rbm", make_rbm), ("cnn", make_convnet), ("rnn", make_rnn)):
        catalogue.learners.bind(name, factory, family=QUANTUM)


__all__ = ["QuantumContext", "SymmetryError", "bind", "build_learner", "make_learner",
           "unsymmetrised", "SpinFlipSymmetric"]  # fmt: skip
