"""What the compiler hands the runtime, per kind of model: typed protocols, no string-keyed extras.

Every compiled model has its ``kind``, the frozen ``ir`` it came from, the realised ``model``
(geometry, coupling arrays, data) and readable derivations (``describe``, ``emit_sympy``,
``emit_torch``). Per kind it adds what the runtime's samplers, learners and integrators read:

- ``lattice`` (discrete fields on a lattice or graph): the energy module, per field the derived
  local energy, flip energy change and colouring, cluster couplings, magnetisation, lattice
  sums of user observables, and the symmetry actions (global spin flip, translations);
- ``boltzmann`` (Boltzmann machines, RBMs, Hopfield networks on dense graphs): energy, local
  energies, free energy with fields summed analytically, block structure, learnable parameters;
- ``quantum`` (qubit Hamiltonians): the canonical Pauli sum, verified symmetries and conserved
  quantities, translations and sublattices of the geometry, observables as Pauli sums;
- ``phase_space`` (Hamiltonian dynamics): Hamilton's equations as batched callables, separability
  and the structure-preserving default integrator;
- ``field`` (continuous lattice fields): the action and its derived gradient (forces);
- ``table`` (measured data): tables with units, the parameters' units;
- ``gauge`` (lattice gauge theory): the link group, the action of links and matter, the Wilson
  form when it matches, random configurations and gauge transformations of matter.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from physml_lang.compiler.instance import ModelInstance
from physml_lang.ir.model import ModelIR

Tensor = torch.Tensor


@runtime_checkable
class CompiledModel(Protocol):
    """Common to every kind."""

    kind: str
    ir: ModelIR
    model: ModelInstance

    def describe(self) -> str: ...

    def emit_sympy(self) -> str: ...

    def emit_torch(self) -> str: ...


@runtime_checkable
class LatticeModel(CompiledModel, Protocol):
    """Discrete fields on a lattice or graph; states are {field: (B, *lattice.shape)}."""

    lattice: Any
    dtype: torch.dtype
    energy: torch.nn.Module  # state -> (B,)
    fields: dict[str, Any]  # field -> FieldKernels(local_energy, flip_delta, colours, n_colours)

    def magnetization(self, state: dict[str, Tensor]) -> Tensor: ...

    def cluster_couplings(self, field: str) -> list: ...

    def lattice_sum_module(self, expr: Any, name: str) -> torch.nn.Module: ...

    @property
    def symmetries(self) -> tuple[str, ...]: ...  # declared and verified

    def spin_flip(self, state: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def translate(self, state: dict[str, Tensor], shift: tuple[int, ...]) -> dict[str, Tensor]: ...

    def to(self, device: Any) -> LatticeModel: ...


@runtime_checkable
class BoltzmannModel(CompiledModel, Protocol):
    """Energy-based models on dense graphs; states are {field: (B, n_set)}."""

    domains: dict[str, Any]
    sets: dict[str, int]
    field_sets: dict[str, str]
    blocks: list[str]

    def energy(self, state: dict[str, Tensor]) -> Tensor: ...

    def local_energies(self, field: str, state: dict[str, Tensor], sites: Any = None) -> Tensor: ...

    def free_energy(self, state: dict[str, Tensor], summed: Any = None, beta: Any = 1.0) -> Tensor: ...

    def random_state(self, batch: int, generator: torch.Generator, device: Any = None) -> dict: ...


@runtime_checkable
class QuantumModel(CompiledModel, Protocol):
    """Qubit Hamiltonians; configurations are (B, N) of +-1 in the Z basis."""

    hamiltonian: Any  # PauliSum
    geometry: Any
    symmetries: list[str]
    conserved: list
    conserves_magnetization: bool

    @property
    def n_sites(self) -> int: ...

    def translation_table(self) -> Tensor | None: ...

    def sublattice(self) -> Tensor | None: ...

    def operator(self, name: str) -> Any: ...

    def observables(self) -> list[str]: ...


@runtime_checkable
class PhaseSpaceModel(CompiledModel, Protocol):
    """Hamiltonian dynamics over q, p of shape (B, n), n = prod(shape)."""

    shape: tuple[int, ...]
    n: int
    system: Any  # hamiltonian(q, p) -> (B,), dH_dq / dH_dp -> (B, n)

    @property
    def separable(self) -> bool: ...

    @property
    def default_integrator(self) -> str: ...


@runtime_checkable
class FieldModel(CompiledModel, Protocol):
    """Continuous lattice fields x of shape (C, *lattice.shape)."""

    shape: tuple[int, ...]
    domain: str

    def action(self, x: Tensor) -> Tensor: ...

    def grad(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class GaugeModel(CompiledModel, Protocol):
    """Link fields U (B, L..., d, *group_shape) with matter {name: (B, L...)}."""

    group: Any
    d: int
    shape: tuple[int, ...]
    matter_domains: dict[str, str]

    def action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor: ...

    def random_configuration(self, batch: int, generator: torch.Generator,
                             shape: tuple[int, ...] | None = None) -> tuple: ...  # fmt: skip


@runtime_checkable
class LandscapeModel(CompiledModel, Protocol):
    """A potential f over continuous coordinates x of shape (B, n), n = prod(shape), in the box
    [lower, upper] (None: unbounded); ``trial``: a declared trial function's log-derivatives."""

    shape: tuple[int, ...]
    n: int
    lower: float | None
    upper: float | None

    def potential(self, x: Tensor) -> Tensor: ...

    def force(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class TableModel(CompiledModel, Protocol):
    """Parameters (with units) and measured tables: name -> (declaration with its columns and
    their units, the loaded rows x columns)."""

    @property
    def tables(self) -> dict[str, tuple[Any, Any]]: ...


PROTOCOLS: dict[str, type] = {
    "lattice": LatticeModel, "boltzmann": BoltzmannModel, "quantum": QuantumModel,
    "phase_space": PhaseSpaceModel, "field": FieldModel, "gauge": GaugeModel,
    "landscape": LandscapeModel, "table": TableModel,
}  # fmt: skip
