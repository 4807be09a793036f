"""Name -> (pydantic options schema, factory) registries for quantum learners.

A factory takes ``(options, context)`` where :class:`QuantumContext` carries what the compiler
knows about the lattice: number of sites, shape, translation table, bipartite sublattice, and the
declared symmetries the learner must respect. Asking for a symmetry a learner cannot respect is
an error (:class:`SymmetryError`). Samplers and optimisers are registered in ``vmc.SAMPLERS`` and
``vmc.OPTIMIZERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

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
    shape: tuple[int, ...] | None = None
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


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RBMOptions(_Opts):
    alpha: float = Field(
        1.0, gt=0, description="hidden units per site (features per site if symmetric)"
    )
    complex: bool = False
    init_std: float = Field(0.01, ge=0)
    sign_rule: Literal["none", "marshall"] = "none"


class ConvNetOptions(_Opts):
    channels: list[int] = Field(default_factory=lambda: [8, 8])
    kernel_size: int = Field(3, ge=1)
    phase: bool = False
    sign_rule: Literal["none", "marshall"] = "none"


class RNNOptions(_Opts):
    hidden: int = Field(32, ge=1)
    cell_size: int = Field(1, ge=1)
    magnetization: int | None = None
    phase: Literal["none", "head", "marshall"] = "none"


def _sign(model: nn.Module, opts, ctx: QuantumContext) -> nn.Module:
    if (
        getattr(opts, "sign_rule", "none") == "marshall"
        or getattr(opts, "phase", None) == "marshall"
    ):
        if ctx.sublattice is None:
            raise SymmetryError(
                "the Marshall sign rule needs a bipartite lattice (sublattice mask)"
            )
        return MarshallSign(model, ctx.sublattice)
    return model


def _check(ctx: QuantumContext, supported: set[str], name: str) -> None:
    extra = set(ctx.symmetries) - supported
    if extra:
        raise SymmetryError(f"learner {name} cannot respect {sorted(extra)}")


def make_rbm(opts: RBMOptions, ctx: QuantumContext) -> nn.Module:
    _check(ctx, {"translation", "spin_flip"}, "rbm")
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
    _check(ctx, {"translation", "spin_flip"}, "cnn")
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
    )
    return _sign(model, opts, ctx)


def make_rnn(opts: RNNOptions, ctx: QuantumContext) -> nn.Module:
    _check(ctx, {"translation", "spin_flip"}, "rnn")
    flip = "spin_flip" in ctx.symmetries
    if flip and opts.magnetization not in (None, 0):
        raise SymmetryError("spin flip maps magnetization m to -m: use magnetization 0 or none")
    model: nn.Module = AutoregressiveGRU(
        ctx.n_sites,
        opts.hidden,
        opts.cell_size,
        magnetization=opts.magnetization,
        phase="head" if opts.phase == "head" else "none",
        generator=ctx.generator,
        dtype=ctx.dtype,
    )
    if "translation" in ctx.symmetries:
        model = SymmetrizedAutoregressive(model, ctx.table(), spin_flip=flip)
    elif flip:
        model = SymmetrizedAutoregressive(
            model, torch.arange(ctx.n_sites).unsqueeze(0), spin_flip=True
        )
    return _sign(model, opts, ctx)


LEARNERS: dict[str, tuple[type[BaseModel], Callable[[BaseModel, QuantumContext], nn.Module]]] = {
    "rbm": (RBMOptions, make_rbm),
    "cnn": (ConvNetOptions, make_convnet),
    "rnn": (RNNOptions, make_rnn),
}


def make_learner(name: str, options: dict | BaseModel | None, ctx: QuantumContext) -> nn.Module:
    """Build a registered learner (KeyError: unknown name; pydantic error: bad options)."""
    schema, factory = LEARNERS[name]
    opts = options if isinstance(options, schema) else schema(**(options or {}))
    return factory(opts, ctx)


__all__ = ["LEARNERS", "QuantumContext", "SymmetryError", "make_learner", "SpinFlipSymmetric"]
