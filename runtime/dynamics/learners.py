"""Learned dynamics: Hamiltonian neural networks, an MLP vector-field baseline, SympNets.

- :class:`HNN` (Greydanus et al. 2019): a scalar network H_theta(q, p); the vector field is
  J grad H_theta = (dH/dp, -dH/dq) by autograd (create_graph during training), so the learned
  flow conserves H_theta exactly and a symplectic integrator keeps it bounded in rollouts.
  ``separable=True`` uses H_theta = T_theta(p) + V_theta(q) (then leapfrog/Yoshida apply).
- :class:`MLPVectorField`: a network (q, p) -> (qdot, pdot) with no structure (the baseline).
- :class:`SympNet` (Jin et al. 2020, G/LA-SympNet): a one-step map built from alternating
  "up"/"down" shears p += grad_q phi(q), q += grad_p psi(p) -- gradient modules
  K^T (a * sigma(K x + b)) and symmetric linear modules S x -- each exactly symplectic, so the
  whole map is.

All modules take q, p of shape (..., n). Training: :class:`VectorFieldFit` (derivative MSE) and
:class:`MapFit` (one-step MSE), stepped one optimisation step at a time by the task (resumable),
or run to the end by :func:`train_vector_field`, :func:`train_map`. Rollouts: :func:`rollout`.
Network weights are initialised from a host ``torch.Generator`` (one-off draws:
``RandomStreams.host_generator()`` in the task).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel
from safetensors.torch import save_file
from torch import nn

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import (
    LEARNER_OBJECTIVES,
    HNNOptions,
    InteractionOptions,
    MLPOptions,
    SympNetOptions,
)
from physml_lang.diagnostics import Diagnostic, PhysmlError

from ..checkpoint import Checkpoint
from ..device import HOST
from ..driver import ScanPoint
from ..random import RandomStreams
from .data import TrainingData
from .integrators import Trajectory, evolve
from .system import HamiltonianSystem, PhaseFn, _grads, autograd_system

Tensor = torch.Tensor

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
}  # fmt: skip


def mlp(sizes: list[int], activation: str = "tanh", dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None) -> nn.Sequential:  # fmt: skip
    """Fully connected network with orthogonal-ish init drawn from ``generator`` (reproducible)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(a, b, dtype=dtype, device=HOST)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=generator, dtype=dtype,
                                        device=HOST) / math.sqrt(a))
            lin.bias.zero_()
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class HNN(nn.Module):
    """Hamiltonian neural network H_theta(q, p) -> (...) for n canonical pairs."""

    def __init__(self, n: int, hidden: list[int], activation: str = "tanh",
                 separable: bool = False, dtype: torch.dtype = torch.float64,
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.n, self.separable = n, separable
        if separable:
            self.T = mlp([n, *hidden, 1], activation, dtype, generator)
            self.V = mlp([n, *hidden, 1], activation, dtype, generator)
        else:
            self.H = mlp([2 * n, *hidden, 1], activation, dtype, generator)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        if self.separable:
            return self.T(p)[..., 0] + self.V(q)[..., 0]
        return self.H(torch.cat([q, p], dim=-1))[..., 0]

    def vector_field(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """(qdot, pdot) = (dH_theta/dp, -dH_theta/dq); differentiable in grad mode."""
        if not self.separable:
            return self.vector_field_x(torch.cat([q, p], dim=-1))
        gq, gp = _grads(self.hamiltonian, q, p)
        return gp, -gq

    def vector_field_x(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The vector field of a non-separable H_theta at x = cat(q, p) of shape (..., 2n): one
        leaf, one gradient (no cat in the graph and no split in its double backward), as in a
        hand-written HNN. Differentiable (create_graph) iff grad mode is on at the call."""
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            # a fresh node: the partial derivative even when x was computed from parameters
            xx = x.clone() if (differentiable and x.requires_grad) else (
                x.detach().requires_grad_(True))  # fmt: skip
            (g,) = torch.autograd.grad(self.H(xx).sum(), xx, create_graph=differentiable)
        return g[..., self.n :], -g[..., : self.n]

    def system(self) -> HamiltonianSystem:
        """The learned Hamiltonian as a system for the integrators."""
        return autograd_system(self.hamiltonian, self.separable, "H_theta")


class MLPVectorField(nn.Module):
    """Unstructured baseline: (q, p) -> (qdot, pdot) with a plain MLP."""

    def __init__(self, n: int, hidden: list[int], activation: str = "tanh",
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.n = n
        self.net = mlp([2 * n, *hidden, 2 * n], activation, dtype, generator)

    def vector_field(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(torch.cat([q, p], dim=-1))
        return out[..., : self.n], out[..., self.n :]

    def system(self, energy: PhaseFn | None = None) -> HamiltonianSystem:
        """A pseudo-system whose vector field is the network (for rk4/euler rollouts only);
        ``energy`` is what rollouts record (e.g. the true H), NaN if None."""

        def nan_energy(q: Tensor, p: Tensor) -> Tensor:
            return torch.full(q.shape[:-1], float("nan"), dtype=q.dtype, device=q.device)

        def gradients(q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
            fq, fp = self.vector_field(q, p)
            return -fp, fq

        return HamiltonianSystem(
            energy or nan_energy,
            lambda q, p: gradients(q, p)[0],
            lambda q, p: gradients(q, p)[1],
            False,
            "mlp_vector_field",
            gradients,
        )


class InteractionNetwork(nn.Module):
    """Interaction network of N bodies in D dimensions (Battaglia et al. 2016), q and p of shape
    (..., n) with n = N D (particle i, axis a at i D + a).

    qdot_i = psi(p_i) (one network for every particle); pdot_i = sum_(j != i) F_ij with
    F_ij = phi(d_ij, |d_ij|) - phi(-d_ij, |d_ij|), d_ij = q_i - q_j. Each pair's force is
    computed once and added to i and subtracted from j, so F_ji = -F_ij exactly (Newton's
    third law) and sum_i pdot_i = 0 to round-off: total momentum is conserved by the learned
    flow and by any Runge-Kutta rollout of it (a sum of such stages). The forces depend on
    differences only (translation invariance, the symmetry Noether ties to momentum).
    """

    def __init__(self, n: int, dims: int, hidden: list[int], activation: str = "tanh",
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.n, self.D, self.N = n, dims, n // dims
        self.phi = mlp([dims + 1, *hidden, dims], activation, dtype, generator)
        self.psi = mlp([dims, *hidden, dims], activation, dtype, generator)
        i, j = torch.triu_indices(self.N, self.N, 1, device=HOST)
        self.register_buffer("i", i, persistent=False)
        self.register_buffer("j", j, persistent=False)

    def forces(self, q: Tensor) -> Tensor:
        """The pairwise forces F_ij of the pairs i < j: (..., N (N - 1) / 2, D)."""
        x = q.reshape(*q.shape[:-1], self.N, self.D)
        d = x[..., self.i, :] - x[..., self.j, :]
        r = torch.sqrt((d * d).sum(-1, keepdim=True))
        return self.phi(torch.cat([d, r], -1)) - self.phi(torch.cat([-d, r], -1))

    def vector_field(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        f = self.forces(q)
        pdot = torch.zeros(*q.shape[:-1], self.N, self.D, dtype=q.dtype, device=q.device)
        pdot = pdot.index_add(-2, self.i, f).index_add(-2, self.j, -f)
        qdot = self.psi(p.reshape(*p.shape[:-1], self.N, self.D))
        return qdot.reshape(q.shape), pdot.reshape(p.shape)

    system = MLPVectorField.system  # rollouts by rk4/euler of the learned vector field


def total_momentum(p: Tensor, dims: int) -> Tensor:
    """Total momentum sum_i p_i of states p (..., n = N D): (..., D)."""
    return p.reshape(*p.shape[:-1], -1, dims).sum(-2)


def momentum_drift(p: Tensor, dims: int) -> Tensor:
    """Relative drift of the total momentum along trajectories p (T, B, n): per trajectory,
    max_t |P(t) - P(0)| / sum_i |p_i(0)| (the scale of the momenta: P(0) may vanish), (B,)."""
    P = total_momentum(p, dims)
    scale = p[0].reshape(p.shape[1], -1, dims).norm(dim=-1).sum(-1).clamp_min(1e-300)
    return (P - P[0]).norm(dim=-1).amax(0) / scale


class _GradientModule(nn.Module):
    """Up: p += K^T (a * tanh(K q + b)); down: q += K^T (a * tanh(K p + b)).
    The Jacobian block K^T diag(a tanh') K is symmetric, so the shear is symplectic."""

    def __init__(self, n: int, width: int, up: bool, dtype: torch.dtype,
                 generator: torch.Generator | None):  # fmt: skip
        super().__init__()
        self.up = up
        K = torch.randn(width, n, generator=generator, dtype=dtype, device=HOST) / math.sqrt(n)
        self.K = nn.Parameter(K)
        self.a = nn.Parameter(0.1 * torch.randn(width, generator=generator, dtype=dtype,
                                                device=HOST))
        self.b = nn.Parameter(torch.zeros(width, dtype=dtype, device=HOST))

    def forward(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        x = q if self.up else p
        delta = (self.a * torch.tanh(x @ self.K.T + self.b)) @ self.K
        return (q, p + delta) if self.up else (q + delta, p)


class _LinearModule(nn.Module):
    """Up: p += S q; down: q += S p, with S = A + A^T symmetric (a symplectic shear)."""

    def __init__(self, n: int, up: bool, dtype: torch.dtype, generator: torch.Generator | None):
        super().__init__()
        self.up = up
        self.A = nn.Parameter(0.01 * torch.randn(n, n, generator=generator, dtype=dtype,
                                                 device=HOST))

    def forward(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        S = self.A + self.A.T
        return (q, p + q @ S) if self.up else (q + p @ S, p)


class SympNet(nn.Module):
    """Exactly symplectic one-step map (q, p) -> (q', p') of a fixed time step.

    ``layers`` blocks of [linear up, gradient up, linear down, gradient down], then a
    translation (q, p) + (c_q, c_p).
    """

    def __init__(self, n: int, layers: int = 4, width: int = 32,
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.n = n
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [_LinearModule(n, True, dtype, generator),
                     _GradientModule(n, width, True, dtype, generator),
                     _LinearModule(n, False, dtype, generator),
                     _GradientModule(n, width, False, dtype, generator)]  # fmt: skip
        self.blocks = nn.ModuleList(mods)
        self.shift = nn.Parameter(torch.zeros(2 * n, dtype=dtype, device=HOST))

    def forward(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        for m in self.blocks:
            q, p = m(q, p)
        return q + self.shift[: self.n], p + self.shift[self.n :]


# --------------------------------------------------------------------------------------------
# Training and rollouts
# --------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """Loss per optimisation step (and the final full-data loss)."""

    losses: list[float]
    final_loss: float


class Fit:
    """Adam on a mean squared error over N data, one optimisation step per :meth:`step`: the
    whole data (``batch_size`` None or >= N) or a minibatch of ``batch_size`` indices drawn
    with replacement from ``streams`` (batch slot on the leading axis). :meth:`tensors` /
    :meth:`restore` are the state a resumed fit continues from (parameters and Adam's
    moments; the minibatch draws are the streams' counter, kept by their owner)."""

    def __init__(self, model: nn.Module, n_data: int, streams: RandomStreams, lr: float,
                 batch_size: int | None, weight_decay: float = 0.0):  # fmt: skip
        self.model, self.n_data, self.streams, self.batch_size = model, n_data, streams, batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def batch(self) -> Tensor | slice:
        if self.batch_size is None or self.batch_size >= self.n_data:
            return slice(None)
        return self.streams.integers(0, self.n_data, (self.batch_size,))

    def loss(self, idx: Tensor | slice) -> Tensor:
        """The mean squared error on the data ``idx`` (differentiable)."""
        raise NotImplementedError

    def step(self) -> Tensor:
        """One Adam step; its loss (a detached 0-d tensor: no host sync)."""
        loss = self.loss(self.batch())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def final_loss(self) -> float:
        """The loss on the whole data after training."""
        raise NotImplementedError

    def tensors(self) -> dict[str, Tensor]:
        """``model/<parameter>`` and ``adam/<index>/<moment>`` (exp_avg, exp_avg_sq, step)."""
        out = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        for i, state in self.optimizer.state_dict()["state"].items():
            out.update({f"adam/{i}/{k}": v if torch.is_tensor(v) else torch.tensor(v, device="cpu")
                        for k, v in state.items()})  # fmt: skip
        return out

    def restore(self, tensors: dict[str, Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items()
                                    if k.startswith("model/")})  # fmt: skip
        state: dict[int, dict[str, Tensor]] = {}
        for name, v in tensors.items():
            if name.startswith("adam/"):
                _, i, k = name.split("/")
                state.setdefault(int(i), {})[k] = v
        saved = self.optimizer.state_dict()
        saved["state"] = state
        self.optimizer.load_state_dict(saved)


class FittedPoint(ScanPoint):
    """A learner fitted one optimisation step per :meth:`step` as a point of the driver's
    scan: its losses per step (checked finite every ``CHECK_EVERY`` steps: one host sync per
    check, not per step), the training time, and the checkpoint (the fit's parameters and
    moments, the losses, the time)."""

    CHECK_EVERY = 100
    fit: Fit
    losses: torch.Tensor
    train_s: float

    def step(self) -> None:
        """One optimisation step (at :meth:`learning_rate`, where a schedule sets one); the
        losses are checked finite every CHECK_EVERY steps and at the end."""
        started = time.perf_counter()
        lr = self.learning_rate()
        if lr is not None:
            for group in self.fit.optimizer.param_groups:
                group["lr"] = lr
        self.losses[self.done] = self.fit.step()
        self.done += 1
        self.train_s += time.perf_counter() - started
        if self.done % self.CHECK_EVERY == 0 or self.done == self.total:
            self.check_finite()

    def learning_rate(self) -> float | None:
        """The learning rate of the next step (None: the optimiser's own)."""
        return None

    def check_finite(self) -> None:
        """Raise a located error when :meth:`first_non_finite` finds a step."""
        raise NotImplementedError

    def first_non_finite(self) -> int | None:
        """The first step since the last check whose loss is not finite, or None."""
        start = (self.done - 1) // self.CHECK_EVERY * self.CHECK_EVERY
        finite = torch.isfinite(self.losses[start : self.done])
        if bool(finite.all()):
            return None
        return start + int((~finite).nonzero()[0, 0])

    def tensors(self) -> dict[str, torch.Tensor]:
        t = self.fit.tensors()
        t["losses"] = self.losses[: self.done]
        t["train_s"] = torch.tensor([self.train_s], dtype=torch.float64, device="cpu")
        return t

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        self.done = int(saved.state["done"])
        self.fit.restore(t)
        self.losses[: self.done] = t["losses"].to(self.losses.device)
        self.train_s = float(t["train_s"][0])


class VectorFieldFit(Fit):
    """MSE of the model's vector field against (dq/dt, dp/dt) over (N, n) states."""

    def __init__(self, model: HNN | MLPVectorField, q: Tensor, p: Tensor, dq: Tensor,
                 dp: Tensor, streams: RandomStreams, lr: float = 1e-3,
                 batch_size: int | None = None, weight_decay: float = 0.0):  # fmt: skip
        super().__init__(model, q.shape[0], streams, lr, batch_size, weight_decay)
        self.q, self.p, self.dq, self.dp = q, p, dq, dp
        # A non-separable HNN sees x = cat(q, p) built once (not a cat per step in its graph).
        joint = isinstance(model, HNN) and not model.separable
        self.x = torch.cat([q, p], dim=-1) if joint else None

    def _field(self, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        full, model, x = isinstance(idx, slice), self.model, self.x
        if x is not None:
            return model.vector_field_x(x if full else x[idx])
        return model.vector_field(self.q[idx], self.p[idx])

    def loss(self, idx: Tensor | slice) -> Tensor:
        fq, fp = self._field(idx)
        return ((fq - self.dq[idx]) ** 2).mean() + ((fp - self.dp[idx]) ** 2).mean()

    def final_loss(self) -> float:
        with torch.no_grad():  # the HNN still differentiates H_theta, without a double backward
            return float(self.loss(slice(None)))


class MapFit(Fit):
    """MSE of the model's one-step map against the next state, over pairs (N, 2n)."""

    def __init__(self, model: SympNet, z0: Tensor, z1: Tensor, streams: RandomStreams,
                 lr: float = 1e-3, batch_size: int | None = None):  # fmt: skip
        super().__init__(model, z0.shape[0], streams, lr, batch_size)
        self.z0, self.z1 = z0, z1

    def loss(self, idx: Tensor | slice) -> Tensor:
        n, z0 = self.model.n, self.z0[idx]
        q, p = self.model(z0[:, :n], z0[:, n:])
        return ((torch.cat([q, p], -1) - self.z1[idx]) ** 2).mean()

    def final_loss(self) -> float:
        with torch.no_grad():
            return float(self.loss(slice(None)))


def _fitted(fit: Fit, steps: int) -> TrainResult:
    losses = [fit.step() for _ in range(steps)]
    history = torch.stack(losses).tolist() if losses else []
    return TrainResult(history, fit.final_loss())


def train_vector_field(
    model: HNN | MLPVectorField,
    q: Tensor, p: Tensor, dq: Tensor, dp: Tensor,
    streams: RandomStreams,
    steps: int = 2000, lr: float = 1e-3, batch_size: int | None = None,
    weight_decay: float = 0.0,
) -> TrainResult:  # fmt: skip
    """Minimise MSE(model vector field, (dq, dp)) over (N, n) data with Adam."""
    return _fitted(VectorFieldFit(model, q, p, dq, dp, streams, lr, batch_size, weight_decay),
                   steps)  # fmt: skip


def train_map(
    model: SympNet, z0: Tensor, z1: Tensor, streams: RandomStreams,
    steps: int = 2000, lr: float = 1e-3, batch_size: int | None = None,
) -> TrainResult:  # fmt: skip
    """Minimise MSE(model(z0), z1) over pairs of consecutive states (N, 2n)."""
    return _fitted(MapFit(model, z0, z1, streams, lr, batch_size), steps)


def save_parameters(model: nn.Module, path: Path) -> Path:
    """The model's parameters as safetensors at ``path``, written atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# The training objectives (the implementations of the catalogue's objective entries):
# (model, data, streams, training options) -> the Fit that a task steps.


def derivative_mse(model: HNN | MLPVectorField, data: TrainingData, streams: RandomStreams,
                   o: BaseModel) -> VectorFieldFit:  # fmt: skip
    """MSE of the learned vector field against (dq/dt, dp/dt) (hnn, mlp)."""
    return VectorFieldFit(model, *data.states, streams, o.lr, o.batch_size)


def step_mse(model: SympNet, data: TrainingData, streams: RandomStreams,
             o: BaseModel) -> MapFit:  # fmt: skip
    """MSE of the learned one-step map against the next state (sympnet)."""
    return MapFit(model, data.z0, data.z1, streams, o.lr, o.batch_size)


def rollout(
    model: HNN | MLPVectorField | SympNet,
    q0: Tensor, p0: Tensor, dt: float, steps: int,
    energy: PhaseFn | None = None,
    integrator: str | None = None,
    save_every: int = 1,
) -> Trajectory:  # fmt: skip
    """Integrate the learned dynamics from (B, n) initial states.

    HNN: ``yoshida4`` if separable else ``implicit_midpoint`` (symplectic); MLP: ``rk4``;
    SympNet: iterate the map (``dt`` is then only the time label of a step). ``energy``
    (default: H_theta for an HNN, NaN otherwise) is recorded along the way.
    """
    if isinstance(model, SympNet):
        return _map_rollout(model, q0, p0, dt, steps, energy, save_every)
    if isinstance(model, HNN):
        system = model.system()
        if energy is not None:
            system = HamiltonianSystem(energy, system.dH_dq, system.dH_dp, system.separable,
                                       system.name, system.gradients_fn)  # fmt: skip
        name = integrator or ("yoshida4" if model.separable else "implicit_midpoint")
    else:
        system = model.system(energy)
        name = integrator or "rk4"
    return evolve(system, q0, p0, dt, steps, name, save_every=save_every, blowup_threshold=None,
                  stop_nonfinite=False)  # a diverging rollout is a result: its caller counts it


def _map_rollout(model: SympNet, q0: Tensor, p0: Tensor, dt: float, steps: int,
                 energy: PhaseFn | None, save_every: int) -> Trajectory:  # fmt: skip
    def E(q: Tensor, p: Tensor) -> Tensor:
        if energy is None:
            return torch.full(q.shape[:-1], float("nan"), dtype=q.dtype, device=q.device)
        return energy(q, p)

    with torch.no_grad():
        q, p = q0, p0
        qs, ps, Es, ts = [q], [p], [E(q, p)], [0.0]
        for k in range(1, steps + 1):
            q, p = model(q, p)
            if k % save_every == 0:
                qs.append(q)
                ps.append(p)
                Es.append(E(q, p))
                ts.append(k * dt)
    return Trajectory(torch.tensor(ts, dtype=q0.dtype, device=q0.device), torch.stack(qs),
                      torch.stack(ps), torch.stack(Es), dt, "sympnet")  # fmt: skip


# --------------------------------------------------------------------------------------------
# Learner kinds (the implementations of the catalogue's learner entries)
# --------------------------------------------------------------------------------------------


def _hnn(o: HNNOptions, n: int, generator: torch.Generator | None = None,
         dtype: torch.dtype = torch.float64) -> HNN:  # fmt: skip
    return HNN(n, o.hidden, o.activation, o.separable, dtype, generator)


def _mlp(o: MLPOptions, n: int, generator: torch.Generator | None = None,
         dtype: torch.dtype = torch.float64) -> MLPVectorField:  # fmt: skip
    return MLPVectorField(n, o.hidden, o.activation, dtype, generator)


def _interaction(o: InteractionOptions, n: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> InteractionNetwork:  # fmt: skip
    if n % o.dims:
        raise PhysmlError(Diagnostic(
            "P431", f"interaction(dims = {o.dims}) needs N particles of {o.dims} coordinates; "
            f"the phase space has {n}", None,
            "declare phase_space (q, p): real[N, D] and give dims = D"))  # fmt: skip
    return InteractionNetwork(n, o.dims, o.hidden, o.activation, dtype, generator)


def _sympnet(o: SympNetOptions, n: int, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.float64) -> SympNet:  # fmt: skip
    return SympNet(n, o.layers, o.width, dtype, generator)


@dataclass(frozen=True)
class LearnerKind:
    """A learner entry's implementation: its canonical name (``mlp`` is ``mlp_vector_field``),
    the training objective that fits it, and ``build(options, n, generator, dtype) -> module``.
    The options' training fields (steps, lr, batch_size) are for the objective."""

    name: str
    objective: str
    build: Callable[..., nn.Module]


HNN_KIND = LearnerKind("hnn", LEARNER_OBJECTIVES["hnn"], _hnn)
MLP_KIND = LearnerKind("mlp_vector_field", LEARNER_OBJECTIVES["mlp_vector_field"], _mlp)
SYMPNET_KIND = LearnerKind("sympnet", LEARNER_OBJECTIVES["sympnet"], _sympnet)
INTERACTION_KIND = LearnerKind("interaction", LEARNER_OBJECTIVES["interaction"], _interaction)


def bind(catalogue: Catalogue) -> None:
    """Attach the learners of dynamics and their training objectives to their catalogue
    entries."""
    learners = catalogue.learners
    learners.bind("hnn", HNN_KIND, family="phase_space")
    learners.bind("mlp_vector_field", MLP_KIND, family="phase_space")
    learners.bind("mlp", MLP_KIND, family="phase_space")
    learners.bind("sympnet", SYMPNET_KIND, family="phase_space")
    learners.bind("interaction", INTERACTION_KIND, family="phase_space")
    catalogue.objectives.bind("derivative_mse", derivative_mse, family="phase_space")
    catalogue.objectives.bind("step_mse", step_mse, family="phase_space")


def make_learner(name: str, n: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64, **options: object
                 ) -> tuple[nn.Module, BaseModel]:  # fmt: skip
    """Build the learner ``name`` for n canonical pairs; returns (module, validated options)."""
    entry = CATALOGUE.learners.get(name, "phase_space")
    if entry is None:
        known = sorted(CATALOGUE.learners.names("phase_space"))
        raise KeyError(f"unknown learner '{name}'; known: {', '.join(known)}")
    opts = entry.schema(**options)
    kind: LearnerKind = CATALOGUE.learners.implementation(name, "phase_space")
    return kind.build(opts, n, generator, dtype), opts
