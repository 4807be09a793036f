"""Variational Monte Carlo: samplers over |psi|^2, energy gradients, stochastic reconfiguration.

Shapes: configurations s (B, N) of +-1; Monte Carlo samples come as (T, C, N) (T samples per
chain, C chains; exact samplers return C = n independent draws with T = 1) so that every error
bar is a binning analysis over the time axis (runtime.statistics).

Gradients (real parameters theta_k, possibly complex log psi): with O_k(s) = d log psi(s)/d theta_k,
centred Obar = O - <O>, ebar = E_loc - <E_loc> (the baseline),

    F_k = Re <Obar_k^* ebar>,   dE/dtheta_k = 2 F_k,   S_kl = Re <Obar_k^* Obar_l>.

Stochastic reconfiguration solves (S + shift * 1) x = F and uses x as the update direction. With
Or = [Re Obar; Im Obar] / sqrt(B) of shape (2B, P), S = Or^T Or and F = Or^T e with
e = [Re ebar; Im ebar] / sqrt(B): the dense path forms S (P, P); the kernel path (P > 2B) solves
the (2B, 2B) system x = Or^T (Or Or^T + shift)^-1 e (push-through identity); the matrix-free path
runs conjugate gradient with S v = Or^T (Or v), never forming S.

Real RBM learners (``learners.rbm_form``) take closed-form paths: cached-theta Metropolis,
local energies from theta, analytic O (``rbm_kernels``); every other learner uses autograd.

Random numbers come from a :class:`RandomStreams` family with the chain (Metropolis) or the
sample (exact draws) on the leading axis of every draw, so chain c makes the same moves in a
batch of 8 chains or of 800, on the CPU or a GPU. The numbers of a block of Markov steps are
drawn at once, per chain, in blocks of a fixed number of steps (``CHUNK_STEPS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.func import functional_call, jacrev, vmap

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.quantum import (
    QUANTUM,
    AdamSpec,
    AutoregressiveSpec,
    MetropolisSpec,
    SGDSpec,
    SRSpec,
)
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel

from ..distributed import SINGLE, World
from ..plans.quantum import VMCPlan, vmc_sector
from ..random import RandomStreams
from ..statistics import Estimate, binning_analysis, split_rhat
from . import rbm_chains_cpu
from .learners import rbm_form, rbm_weights
from .operator import LocalOperator
from .rbm_kernels import PhasedRBMChains, RBMChains, local_energy_rbm, rbm_jacobian

# ----------------------------------------------------------------------------- options
# The runtime's configuration, resolved from a program's options (the catalogue's schemas:
# ``MetropolisSpec``, ``SRSpec``, ...) by the tasks, or given directly from Python: a resolved
# move and sector, and solver and kernel settings the language does not expose.


class MetropolisOptions(BaseModel):
    """Metropolis over |psi|^2, batched over chains. One sweep = N proposals per chain."""

    model_config = ConfigDict(extra="forbid")
    n_chains: int = Field(16, ge=1)
    sweeps_per_sample: float = Field(1.0, gt=0)
    burn_in_sweeps: int = Field(2, ge=0, description="discarded at every VMC iteration")
    initial_burn_in_sweeps: int = Field(50, ge=0, description="before the first iteration")
    move: Literal["flip", "exchange"] = "flip"
    magnetization: int | None = Field(None, description="initial sector; exchange keeps it")
    fast: bool = Field(True, description="cached-theta kernels for RBM learners (real or complex)")
    compile: bool = Field(
        False, description="torch.compile the RBM kernel (GPUs; the CPU default is numba)"
    )


class AutoregressiveOptions(BaseModel):
    """Exact, independent samples from a normalised (autoregressive) learner."""

    model_config = ConfigDict(extra="forbid")


class SROptions(BaseModel):
    """Stochastic reconfiguration (natural gradient)."""

    model_config = ConfigDict(extra="forbid")
    diag_shift: float = Field(0.01, ge=0)
    solver: Literal["auto", "dense", "kernel", "cg"] = "auto"
    dense_max_params: int = Field(
        2000, ge=1, description="auto: a direct solve (dense or kernel) up to this size"
    )
    cg_tol: float = Field(1e-8, gt=0)
    cg_maxiter: int = Field(500, ge=1)


class OptimizerOptions(BaseModel):
    """Parameter update: SGD or Adam on the gradient, or on the SR direction when sr is set."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    sr: SROptions | None = Field(default_factory=SROptions)
    lr_decay: float = Field(1.0, gt=0, le=1, description="lr multiplied by this every iteration")
    min_lr: float = Field(0.0, ge=0)


# The implementations of the optimiser entries of vmc runs: their options as run_vmc's
# configuration (SR is SGD along the natural-gradient direction).


def sr_optimizer(spec: SRSpec) -> OptimizerOptions:
    """``sr(...)``: SGD steps along the SR direction."""
    d = spec.model_dump()
    sr = SROptions(diag_shift=d.pop("diag_shift"), solver=d.pop("solver"))
    return OptimizerOptions(name="sgd", sr=sr, **d)


def sgd_optimizer(spec: SGDSpec) -> OptimizerOptions:
    """``sgd(...)``: SGD steps along the energy gradient."""
    return OptimizerOptions(name="sgd", sr=None, **spec.model_dump())


def adam_optimizer(spec: AdamSpec) -> OptimizerOptions:
    """``adam(...)``: Adam steps along the energy gradient."""
    return OptimizerOptions(name="adam", sr=None, **spec.model_dump())


def optimizer_options(name: str, spec: BaseModel) -> OptimizerOptions:
    """The configuration of a validated ``optimize ... via NAME(...)`` (or ``pretrain``)."""
    return CATALOGUE.optimisers.implementation(name, QUANTUM)(spec)


def torch_optimizer(params: list[torch.Tensor], o: OptimizerOptions) -> torch.optim.Optimizer:
    """The torch optimiser that takes the steps of ``o``."""
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum)


# ----------------------------------------------------------------------------- samplers


CHUNK_STEPS = 1 << 10  # Markov steps per chain whose random numbers are drawn at once


def default_streams(device: torch.device | str = "cpu") -> RandomStreams:
    """Streams seeded from torch's global generator (what an unseeded call draws from)."""
    return RandomStreams(int(torch.randint(0, 2**62, (1,), device="cpu")), device)


def random_configs(
    n: int,
    n_sites: int,
    streams: RandomStreams,
    magnetization: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(n, N) uniform random +-1 configurations (in a magnetisation sector if given); row b
    from stream b."""
    if magnetization is None:
        bits = streams.integers(0, 2, (n, n_sites)).to(device)
        return (1 - 2 * bits).to(dtype)
    if (n_sites + magnetization) % 2 or abs(magnetization) > n_sites:
        raise ValueError(f"no states with magnetization {magnetization} on {n_sites} sites")
    n_up = (n_sites + magnetization) // 2
    keys = streams.uniform((n, n_sites), torch.float64).to(device)
    ranks = torch.argsort(torch.argsort(keys, dim=1), dim=1)  # a random permutation per row
    return torch.where(ranks < n_up, 1.0, -1.0).to(dtype)


def flip_site(s: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """Chains s (C, N) with site i[c] (C,) of chain c flipped."""
    rows = torch.arange(s.shape[0], device=s.device)
    sp = s.clone()
    sp[rows, i] = -sp[rows, i]
    return sp


def exchange_sites(s: torch.Tensor, i: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Chains s (C, N) with site i[c] swapped with the opposite-spin site of rank
    floor(u[c] * n_opposite) (u (C,) uniform on [0, 1): a uniform choice among them; no change
    where chain c has none). sum(Z) is kept."""
    rows = torch.arange(s.shape[0], device=s.device)
    opposite = s != s[rows, i].unsqueeze(1)
    n_opposite = opposite.sum(1)
    rank = torch.minimum((u * n_opposite).long(), (n_opposite - 1).clamp(min=0))
    j = torch.argmax((torch.cumsum(opposite, 1) > rank.unsqueeze(1)).to(torch.uint8), dim=1)
    j = torch.where(n_opposite > 0, j, i)
    sp = s.clone()
    sp[rows, i], sp[rows, j] = s[rows, j], s[rows, i]
    return sp


def propose_flip(s: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
    """The ``flip`` move: each chain of s (C, N) flips one random site (chain c: stream c)."""
    c, n = s.shape
    return flip_site(s, streams.integers(0, n, (c,)).to(s.device))


def propose_exchange(s: torch.Tensor, streams: RandomStreams) -> torch.Tensor:
    """The ``exchange`` move: each chain of s (C, N) swaps a random site with a random site of
    opposite spin (sum(Z) is kept; symmetric, see :class:`MetropolisSampler`)."""
    c, n = s.shape
    i = streams.integers(0, n, (c,)).to(s.device)
    return exchange_sites(s, i, streams.uniform((c,), torch.float64).to(s.device))


class MetropolisSampler:
    """Persistent Metropolis chains over |psi(s)|^2 = exp(2 Re log psi).

    Moves: "flip" (one random site) or "exchange" (a random site and a random site of opposite
    spin swap values; conserves magnetisation; the proposal is symmetric because the number of
    opposite-spin partners is the same before and after the swap).

    Real RBM learners (``learners.rbm_form``) run the cached-theta kernel of ``rbm_kernels``
    (``fast=True``, the default): O(M) per proposal instead of a forward pass; its exchange move
    draws a uniform (up site, down site) pair, also symmetric. On the CPU the whole chain runs
    as one compiled loop (numba), also for complex RBM learners (``PhasedRBMChains``);
    ``compile=True`` compiles blocks of steps with torch.compile instead (for other devices;
    the first call compiles for tens of seconds).

    On several processes (``world``) each rank runs its block ``world.shard(n_chains)`` of the
    chains (chain c draws from stream c whichever rank runs it): ``sample`` returns that block
    (T, C_local, N) (:meth:`local_chains` says which), the acceptance is the whole run's (counts
    gathered) and ``state_tensors`` gathers every rank's chains (a collective). With fewer
    chains than processes every rank runs all of them.
    """

    def __init__(
        self,
        n_sites: int,
        options: MetropolisOptions | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        world: World = SINGLE,
    ) -> None:
        self.n_sites, self.options = n_sites, options or MetropolisOptions()
        self.device, self.dtype = torch.device(device), dtype
        self.world = world
        self.chains: torch.Tensor | None = None
        self.acceptance: float = float("nan")

    def local_chains(self) -> slice | None:
        """The block of chains this rank runs (of ``n_chains``), or None where it runs all."""
        n, world = self.options.n_chains, self.world
        return world.shard(n) if world.size > 1 and n >= world.size else None

    def whole(self, local: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """A per-chain tensor of this rank's chains (chains on ``dim``) joined with the other
        ranks' in chain order: the tensor one process would hold (a collective)."""
        if self.local_chains() is None:
            return local
        return gather_chains(self.world, local, self.options.n_chains, dim)

    @torch.no_grad()
    def _sweeps(self, model: nn.Module, s, lp, n_steps: int, streams: RandomStreams):
        """``n_steps`` Metropolis steps of the chains s (C, N) with log psi lp (C,); the site,
        partner and acceptance numbers of up to CHUNK_STEPS steps per chain drawn at once.
        Returns (s, lp, accepted (n_steps, C) bool: the decisions, step by step)."""
        c, n = s.shape
        dev, exchange = s.device, self.options.move == "exchange"
        accepted = torch.zeros((n_steps, c), dtype=torch.bool, device=dev)
        for first in range(0, n_steps, CHUNK_STEPS):
            k = min(CHUNK_STEPS, n_steps - first)
            sites = streams.integers(0, n, (c, k)).to(dev)
            partners = streams.uniform((c, k), torch.float64).to(dev) if exchange else None
            log_u = torch.log(streams.uniform((c, k), torch.float64)).to(dev)
            for t in range(k):  # Markov-chain steps are sequential; chains are batched
                sp = (exchange_sites(s, sites[:, t], partners[:, t]) if exchange
                      else flip_site(s, sites[:, t]))  # fmt: skip
                lpp = model(sp)
                log_ratio = 2.0 * (lpp.real - lp.real)
                acc = log_u[:, t].to(log_ratio.dtype) < log_ratio
                s = torch.where(acc.unsqueeze(1), sp, s)
                lp = torch.where(acc, lpp, lp)
                accepted[first + t] = acc  # no host sync inside the loop
        return s, lp, accepted

    def _phased_chains(self, model: nn.Module, s: torch.Tensor) -> PhasedRBMChains | None:
        """Compiled chains for complex RBM-like learners (CPU with numba), else None."""
        o = self.options
        if not (o.fast and s.device.type == "cpu" and rbm_chains_cpu.AVAILABLE):
            return None
        weights = rbm_weights(model)
        if weights is None or not weights[0].is_complex():
            return None
        return PhasedRBMChains(weights, s, o.move) if self._kernel_moves_apply(s) else None

    def _kernel_moves_apply(self, s: torch.Tensor) -> bool:
        """The kernels' exchange move pairs an up with a down site: chains of equal magnetisation
        (the generic sampler handles anything else). Decided over every rank's chains."""
        if self.options.move != "exchange":
            return True
        ups = (s > 0).sum(1)
        if self.local_chains() is None:
            return bool((ups == ups[0]).all())
        ups = self.whole(ups, 0)
        return bool((ups == ups[0]).all())

    @torch.no_grad()
    def sample(self, model: nn.Module, n_samples: int, streams: RandomStreams) -> torch.Tensor:
        """(T, C, N) samples, T = ceil(n_samples / C), after burn-in from the persistent chains
        (chain c draws from stream c); on several processes this rank's chains only
        (:meth:`local_chains`)."""
        local = self.local_chains()
        if local is None:
            return self._sample(model, n_samples, streams)
        first = streams.first
        streams.first = first + local.start  # chain c of this rank is global chain start + c
        try:
            return self._sample(model, n_samples, streams)
        finally:
            streams.first = first

    def _sample(self, model: nn.Module, n_samples: int, streams: RandomStreams) -> torch.Tensor:
        o, n = self.options, self.n_sites
        local = self.local_chains()
        first = self.chains is None
        if first:
            count = o.n_chains if local is None else local.stop - local.start
            self.chains = random_configs(
                count, n, streams, o.magnetization, self.dtype, self.device
            )
        s = self.chains
        burn = (o.initial_burn_in_sweeps if first else 0) + o.burn_in_sweeps
        t = math.ceil(n_samples / o.n_chains)
        steps = max(1, int(round(o.sweeps_per_sample * n)))
        form = rbm_form(model) if o.fast else None
        if form is not None and self._kernel_moves_apply(s):
            chains = RBMChains(form, s, o.move, compile=o.compile)
        else:
            chains = self._phased_chains(model, s)
        if chains is not None:
            samples, self.acceptance = chains.run(burn * n, t, steps, streams)
            if local is not None:  # accepted moves are whole numbers: their sum is exact
                counts = torch.tensor([chains.accepted], dtype=torch.float64, device=self.device)
                total = float(gather_chains(self.world, counts, self.world.size, 0).sum())
                self.acceptance = total / max(1, t * steps * o.n_chains)
            self.chains = chains.chains().to(self.dtype)
            return samples.to(self.dtype)
        lp = model(s)
        s, lp, _ = self._sweeps(model, s, lp, burn * n, streams)
        out, flags = [], []
        for _ in range(t):
            s, lp, accepted = self._sweeps(model, s, lp, steps, streams)
            out.append(s)
            flags.append(accepted)
        self.chains = s
        self.acceptance = _mean_acceptance(self.whole(torch.stack(flags), 2), steps) / t
        return torch.stack(out)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The chains, every rank's (a collective on several processes)."""
        return {} if self.chains is None else {"chains": self.whole(self.chains, 0)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Chains of :meth:`state_tensors` (whole): this rank takes its block."""
        if "chains" in tensors:
            chains = tensors["chains"]
            local = self.local_chains()
            if chains.shape[0] != self.options.n_chains:
                raise ValueError(f"{chains.shape[0]} chains saved, {self.options.n_chains} run")
            self.chains = (chains if local is None else chains[local]).to(self.device, self.dtype)


def _mean_acceptance(flags: torch.Tensor, steps: int) -> float:
    """Sum over records of each record's acceptance rate, from the decisions flags (T, steps,
    C) of every chain: per step the mean over the chains, summed step by step (one process's
    arithmetic, on whichever ranks the chains ran)."""
    flags, acc = flags.contiguous(), 0.0
    for record in flags:  # steps are sequential sums, as the chains ran them
        accepted = torch.zeros((), dtype=torch.float64, device=flags.device)
        for row in record:
            accepted = accepted + row.double().mean()
        acc += float(accepted) / max(steps, 1)
    return acc


def gather_chains(world: World, local: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """``world.all_gather`` of a per-chain tensor (``n`` chains on ``dim``) of any dtype: complex
    tensors travel as their real and imaginary parts, booleans as bytes."""
    if local.is_complex():
        parts = world.all_gather(torch.view_as_real(local.contiguous()), n, dim)
        return torch.view_as_complex(parts.contiguous())
    if local.dtype == torch.bool:
        return world.all_gather(local.to(torch.uint8), n, dim).bool()
    return world.all_gather(local, n, dim)


class AutoregressiveSampler:
    """Exact independent samples from a model with ``sample(n, streams)`` (sample b from stream
    b); returns (1, n, N)."""

    def __init__(
        self,
        n_sites: int,
        options: AutoregressiveOptions | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        world: World = SINGLE,
    ) -> None:
        self.n_sites, self.options = n_sites, options or AutoregressiveOptions()
        self.acceptance = 1.0
        self.world, self.drawn = world, 0

    def local_chains(self) -> slice | None:
        """The block of the last draw's samples this rank drew (``world.shard``), or None
        where it drew all of them."""
        n, world = self.drawn, self.world
        return world.shard(n) if world.size > 1 and n >= world.size else None

    def whole(self, local: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """A per-sample tensor of this rank's samples of the last draw (samples on ``dim``)
        joined with the other ranks' in sample order (a collective)."""
        if self.local_chains() is None:
            return local
        return gather_chains(self.world, local, self.drawn, dim)

    @torch.no_grad()
    def sample(self, model: nn.Module, n_samples: int, streams: RandomStreams) -> torch.Tensor:
        """(1, n, N) exact draws, sample b from stream b; on several processes this rank's
        block ``world.shard(n)`` of them (:meth:`local_chains`)."""
        if not getattr(model, "is_normalized", False):
            raise ValueError("exact sampling needs a normalised (autoregressive) learner")
        self.drawn = n_samples
        local = self.local_chains()
        if local is None:
            return model.sample(n_samples, streams).unsqueeze(0)
        first = streams.first
        streams.first = first + local.start  # sample b of this rank is global sample start + b
        try:
            return model.sample(local.stop - local.start, streams).unsqueeze(0)
        finally:
            streams.first = first

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class IndependentDraws:
    """Autoregressive draws (1, n, N) presented as a series (n, 1, N) for binning and R-hat.
    With a ``world`` of several processes each rank draws its block of the samples."""

    def __init__(self, n_sites: int, world: World = SINGLE):
        self.inner = AutoregressiveSampler(n_sites, world=world)
        self.acceptance = 1.0

    @property
    def world(self) -> World:
        return self.inner.world

    @world.setter
    def world(self, world: World) -> None:
        self.inner.world = world

    def local_chains(self) -> slice | None:
        return self.inner.local_chains()

    def whole(self, local: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Every rank's samples (on ``dim``: the series axis) in sample order."""
        return self.inner.whole(local, dim)

    def sample(self, model: nn.Module, n_samples: int, streams: RandomStreams) -> torch.Tensor:
        return self.inner.sample(model, n_samples, streams).transpose(0, 1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


# The implementations of the sampler entries of vmc runs: a validated ``sampler NAME(...)`` of
# a model as a runtime sampler.


def autoregressive_sampler(spec: AutoregressiveSpec, qm: QuantumModel,
                           device) -> IndependentDraws:  # fmt: skip
    """``sampler autoregressive``: independent draws from the (normalised) learner."""
    return IndependentDraws(qm.n_sites)


def metropolis_sampler(spec: MetropolisSpec, qm: QuantumModel, device) -> MetropolisSampler:
    """``sampler metropolis(...)``: chains over |psi|^2, with exchange moves in the sector of a
    model that conserves sum(Z) (move = auto), else flips."""
    sector = vmc_sector(qm, spec)
    opts = MetropolisOptions(
        n_chains=spec.chains, sweeps_per_sample=spec.sweeps, burn_in_sweeps=spec.burn_in,
        initial_burn_in_sweeps=spec.initial_burn_in,
        move="exchange" if sector is not None else "flip",
        magnetization=sector if sector is not None else spec.magnetization,
        compile=spec.compile,
    )  # fmt: skip
    return MetropolisSampler(qm.n_sites, opts, device=device)


def make_sampler(setup: VMCPlan, qm: QuantumModel, device, world: World = SINGLE):
    """The planned sampler of a vmc run for the model ``qm``, sharded over the processes of
    ``world``: Metropolis by chain, exact (autoregressive) draws by sample."""
    factory = CATALOGUE.samplers.implementation(setup.sampler_name, QUANTUM)
    sampler = factory(setup.sampler_spec, qm, device)
    if isinstance(sampler, (MetropolisSampler, AutoregressiveSampler, IndependentDraws)):
        sampler.world = world
    return sampler


# ----------------------------------------------------------------------------- gradients


def log_psi_jacobian(
    model: nn.Module, s: torch.Tensor, chunk_size: int | None = 1024
) -> torch.Tensor:
    """O[b, k] = d log psi(s_b) / d theta_k for real parameters: (B, P), complex if psi is."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    complex_out = bool(getattr(model, "is_complex", False))

    def single(p, x):
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)
        if complex_out:
            return torch.stack([out.real, out.imag])
        return out

    jac = vmap(jacrev(single), in_dims=(None, 0), chunk_size=chunk_size)(params, s)
    b = s.shape[0]
    if complex_out:
        flat = torch.cat([jac[k].reshape(b, 2, -1) for k in params], dim=2)
        return torch.complex(flat[:, 0], flat[:, 1])
    return torch.cat([jac[k].reshape(b, -1) for k in params], dim=1)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    tol: float = 1e-8,
    maxiter: int = 500,
) -> tuple[torch.Tensor, int]:
    """Solve A x = b for symmetric positive-definite A given only A v. Returns (x, iterations)."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x)
    p = r.clone()
    rs = r @ r
    bnorm = torch.linalg.vector_norm(b).clamp_min(1e-300)
    for it in range(maxiter):  # Krylov iterations are sequential
        if torch.sqrt(rs) <= tol * bnorm:
            return x, it
        ap = matvec(p)
        alpha = rs / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x, maxiter


def gram_solve(
    a: torch.Tensor, rhs: torch.Tensor, shift: float, parameters: bool, scale: float = 1.0
) -> torch.Tensor:
    """Solve (c A^T A + shift) x = rhs (``parameters``: P x P) or (c A A^T + shift) x = rhs
    (rows), c = ``scale``.

    On the CPU the Gram matrix comes from BLAS syrk (half the flops of a matmul) and the solve
    from a Cholesky factorisation (both via scipy, on views of the same memory); elsewhere, or if
    the matrix is not numerically positive definite, from torch (matmul + LU solve).
    """
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64) and shift > 0:
        an = a.detach().contiguous().numpy().T  # Fortran view of A: (P, B)
        syrk = scipy.linalg.blas.get_blas_funcs("syrk", (an,))
        g = syrk(scale, an, trans=0 if parameters else 1)  # upper triangle of c A^T A or c A A^T
        g[np.diag_indices_from(g)] += shift
        try:
            factor = scipy.linalg.cho_factor(g, lower=False, check_finite=False)
            x = scipy.linalg.cho_solve(factor, rhs.detach().numpy(), check_finite=False)
            return torch.from_numpy(np.ascontiguousarray(x)).to(rhs.dtype)
        except np.linalg.LinAlgError:
            pass
    g = a.T @ a if parameters else a @ a.T
    if scale != 1.0:
        g.mul_(scale)
    g.diagonal().add_(shift)
    return torch.linalg.solve(g, rhs)


def sr_direction(
    jacobian: torch.Tensor, e_loc: torch.Tensor, options: SROptions, x0: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Solve (S + diag_shift) x = F from O (B, P) and E_loc (B,). Returns (x (P,), info)."""
    b, p = jacobian.shape
    obar = jacobian - jacobian.mean(0)
    ebar = e_loc - e_loc.mean()
    # Re <O^* E>: a real O only meets Re E
    eb = ebar.real if ebar.is_complex() and not obar.is_complex() else ebar
    force = (obar.conj().T @ eb.to(obar.dtype)).real / b
    rows = 2 * b if obar.is_complex() else b  # real rows of the stacked (Re O; Im O)
    solver = options.solver
    if solver == "auto":
        direct = min(p, rows) <= options.dense_max_params and options.diag_shift > 0
        solver = ("kernel" if p > rows else "dense") if direct else "cg"
    info = {"sr_iterations": 0.0, "force_norm": float(force.norm())}
    if solver == "dense" and not obar.is_complex():  # S = O^T O / B without a scaled copy of O
        return gram_solve(obar, force, options.diag_shift, parameters=True, scale=1.0 / b), info
    if obar.is_complex():
        orr = torch.cat([obar.real, obar.imag], dim=0) / math.sqrt(b)
        ec = ebar if ebar.is_complex() else ebar.to(obar.dtype)
        evec = torch.cat([ec.real, ec.imag]) / math.sqrt(b)
    else:
        orr = obar / math.sqrt(b)
        evec = (ebar.real if ebar.is_complex() else ebar) / math.sqrt(b)
    if solver == "dense":
        return gram_solve(orr, force.to(orr.dtype), options.diag_shift, parameters=True), info
    if solver == "kernel":
        y = gram_solve(orr, evec.to(orr.dtype), options.diag_shift, parameters=False)
        return orr.T @ y, info

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return orr.T @ (orr @ v) + options.diag_shift * v

    x, its = conjugate_gradient(matvec, force, x0, options.cg_tol, options.cg_maxiter)
    return x, {"sr_iterations": float(its), "force_norm": float(force.norm())}


def energy_force(model: nn.Module, s: torch.Tensor, e_loc: torch.Tensor) -> torch.Tensor:
    """F = Re <(O - <O>)^* (E_loc - <E_loc>)> (P,) by one backward pass (no Jacobian)."""
    model.zero_grad(set_to_none=True)
    lp = model(s)
    ebar = (e_loc - e_loc.mean()).detach()
    loss = (
        (lp.conj() * ebar).real.mean()
        if lp.is_complex() or ebar.is_complex()
        else (lp * ebar).mean()
    )
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, model.parameters())
        ]
    )


def _assign_grad(model: nn.Module, vec: torch.Tensor) -> None:
    i = 0
    for p in model.parameters():
        n = p.numel()
        p.grad = vec[i : i + n].reshape(p.shape).to(p.dtype).clone()
        i += n


# ----------------------------------------------------------------------------- statistics


def energy_statistics(e_loc_tc: torch.Tensor) -> dict[str, float]:
    """Mean, stderr, variance, tau_int and split R-hat of local energies of shape (T, C).

    Non-finite energies give non-finite statistics silently: the caller reports them (P700)."""
    e = (
        e_loc_tc.real.detach().cpu().numpy()
        if e_loc_tc.is_complex()
        else e_loc_tc.detach().cpu().numpy()
    )
    with np.errstate(all="ignore"):
        est = binning_analysis(e)
        return {
            "energy": est.mean,
            "energy_stderr": est.stderr,
            "variance": float(e.var()),
            "tau_int": est.tau_int,
            "r_hat": split_rhat(e) if e.shape[0] >= 4 else float("nan"),
            "energy_imag": float(e_loc_tc.imag.mean()) if e_loc_tc.is_complex() else 0.0,
        }


# ----------------------------------------------------------------------------- observables


@torch.no_grad()
def local_energies(op: LocalOperator, model: nn.Module, s: torch.Tensor) -> torch.Tensor:
    """O_loc(s) (B,) of ``op``: closed form for real RBM learners, else the generic path."""
    form = rbm_form(model)
    return local_energy_rbm(op, form, s) if form is not None else op.local_energy(model, s)


def expectation(op: LocalOperator, model: nn.Module, samples: torch.Tensor) -> Estimate:
    """<O> from samples (T, C, N) with the local estimator O_loc = sum_s' O_ss' psi(s')/psi(s)."""
    t, c, n = samples.shape
    o = local_energies(op, model, samples.reshape(-1, n)).reshape(t, c)
    return binning_analysis((o.real if o.is_complex() else o).cpu().numpy())


def diagonal_observables(
    samples: torch.Tensor,
    positions: np.ndarray | None = None,
    qs: np.ndarray | None = None,
    sublattice: torch.Tensor | None = None,
) -> dict[str, object]:
    """Z-basis observables from samples (T, C, N).

    Returns Estimates of ``magnetization`` (<sum_i Z_i>/N), ``abs_magnetization``, optionally
    ``staggered_magnetization`` (<|sum_i (+-1)_i Z_i|>/N), ``structure_factor`` per q
    (S(q) = <|sum_i e^{i q.r_i} Z_i|^2>/N for qs (Q, d), positions (N, d)), and the ZZ correlation
    matrix ``zz`` (N, N) = <Z_i Z_j> (means only).
    """
    t, c, n = samples.shape
    x = samples.to(torch.float64)
    m = x.mean(-1)
    out: dict[str, object] = {
        "magnetization": binning_analysis(m.cpu().numpy()),
        "abs_magnetization": binning_analysis(m.abs().cpu().numpy()),
        "zz": torch.einsum("tci,tcj->ij", x, x) / (t * c),
    }
    if sublattice is not None:
        signs = torch.where(sublattice.to(x.device), 1.0, -1.0).to(x.dtype)
        out["staggered_magnetization"] = binning_analysis((x * signs).mean(-1).abs().cpu().numpy())
    if positions is not None and qs is not None:
        phases = torch.exp(1j * torch.as_tensor(np.asarray(qs) @ np.asarray(positions).T,
                                                 device=x.device))  # (Q, N)  # fmt: skip
        amp = torch.einsum("qn,tcn->tcq", phases, x.to(phases.dtype))
        sq = (amp.abs() ** 2 / n).cpu().numpy()
        out["structure_factor"] = [binning_analysis(sq[..., k]) for k in range(sq.shape[-1])]
    return out


# ----------------------------------------------------------------------------- driver
# The state of an optimisation as named tensors (the checkpoint of a vmc scan point, in the one
# format of runtime/checkpoint.py): "model/<name>" (state_dict), "opt/<i>/<name>" (optimiser
# state of parameter i), "sampler/<name>" (chains), "sr/x_prev" (the warm start of conjugate
# gradient), "history/<key>" (one value per iteration done, float64 bits as int64). The random
# streams' draw counter is the caller's to keep (the run driver saves it as "random/draws").


@dataclass
class VMCResult:
    """History (one entry per iteration) and the final energy with its binning error."""

    history: dict[str, list[float]]
    energy: Estimate
    variance: float
    samples: torch.Tensor
    iterations: int
    extra: dict[str, object] = field(default_factory=dict)


class VMC:
    """A resumable VMC optimisation: ``step`` takes one iteration, ``tensors``/``restore`` are
    its state (with the draw counter of ``streams``: a bit-identical continuation on the CPU),
    ``result`` the final estimate. Every sample is drawn from ``streams``.

    Data-parallel on several processes when the sampler is sharded (its ``world``; Metropolis
    by chain, exact draws by sample): each rank computes the local energies and log-derivatives
    O of its own samples, these are gathered in global sample order, and every reduction
    (statistics, force, S or O O^T, the solve, the optimiser's step) runs on the whole arrays on
    every rank, so the parameters are one process's bit for bit on every rank. (Per-sample
    quantities do not depend on the batch they are computed in: the RBM closed forms, log psi
    and vmap'd per-sample Jacobians are row by row.) The force of sgd/adam, one backward pass
    over the batch, runs on the gathered samples on every rank."""

    def __init__(self, op: LocalOperator, model: nn.Module, sampler, opts: OptimizerOptions,
                 streams: RandomStreams | None, n_samples: int,
                 history: dict[str, list[float]] | None = None,
                 chunk_size: int | None = 1024) -> None:  # fmt: skip
        self.op, self.model, self.sampler, self.opts = op, model, sampler, opts
        device = next(model.parameters()).device
        self.streams = streams if streams is not None else default_streams(device)
        self.n_samples, self.chunk_size = n_samples, chunk_size
        self.opt = torch_optimizer(list(model.parameters()), opts)
        self.history = {} if history is None else history
        self.x_prev: torch.Tensor | None = None
        self.iteration = 0

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its statistics (also appended to the history)."""
        opts, model, n = self.opts, self.model, self.op.n_sites
        lr = max(opts.lr * opts.lr_decay**self.iteration, opts.min_lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        samples = self.sampler.sample(model, self.n_samples, self.streams)  # (T, C, N)
        t, c, _ = samples.shape  # (on several processes: this rank's chains)
        s = samples.reshape(-1, n)
        form = rbm_form(model)
        e_tc = self._whole(local_energies(self.op, model, s), t, c)  # (T, C): every rank's
        e_loc = e_tc.reshape(-1)
        stats = energy_statistics(e_tc)
        stats["acceptance"] = float(self.sampler.acceptance)
        if opts.sr is not None:
            jac = rbm_jacobian(form, s) if form is not None else log_psi_jacobian(
                model, s, self.chunk_size)  # fmt: skip
            jac = self._whole(jac, t, c).reshape(e_loc.shape[0], -1)
            direction, info = sr_direction(jac, e_loc, opts.sr, self.x_prev)
            self.x_prev = direction if opts.sr.solver != "dense" else None
            stats.update(info)
        else:
            direction = 2.0 * energy_force(model, self._whole(s, t, c).reshape(-1, n), e_loc)
        _assign_grad(model, direction)
        self.opt.step()
        stats["lr"] = lr
        for k, v in stats.items():
            self.history.setdefault(k, []).append(float(v))
        self.iteration += 1
        return stats

    def _whole(self, local: torch.Tensor, t: int, c: int) -> torch.Tensor:
        """Per-sample rows (t * c, ...) of this rank's samples (t, c, N) as the (T, C, ...)
        tensor of every rank's samples in global order (one process: the rows as (t, c, ...))."""
        rest = local.shape[1:]
        local = local.reshape(t, c, *rest)
        shard = getattr(self.sampler, "local_chains", None)
        if shard is None or shard() is None:
            return local
        return self.sampler.whole(local).contiguous()

    def result(self, eval_samples: int) -> VMCResult:
        """The final estimate from ``eval_samples`` samples of the trained state (on several
        processes, every rank's samples, gathered)."""
        n = self.op.n_sites
        final = self.sampler.sample(self.model, eval_samples, self.streams)
        t, c, _ = final.shape
        e = self._whole(local_energies(self.op, self.model, final.reshape(-1, n)), t, c)
        final = self._whole(final.reshape(-1, n), t, c)
        stats = energy_statistics(e)
        est = Estimate(stats["energy"], stats["energy_stderr"], stats["tau_int"])
        return VMCResult(self.history, est, stats["variance"], final, self.iteration,
                         {"r_hat": stats["r_hat"], "energy_imag": stats["energy_imag"]})  # fmt: skip

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state after ``iteration`` steps (copies: later steps do not alter it)."""
        out = {f"model/{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        for idx, st in self.opt.state_dict()["state"].items():
            for k, v in st.items():
                if v is not None:
                    out[f"opt/{idx}/{k}"] = (v.detach().clone() if torch.is_tensor(v)
                                             else torch.tensor(v, device="cpu"))  # fmt: skip
        out.update({f"sampler/{k}": v.detach().clone()
                    for k, v in self.sampler.state_tensors().items()})  # fmt: skip
        if self.x_prev is not None:
            out["sr/x_prev"] = self.x_prev.detach().clone()
        out.update({f"history/{k}": torch.tensor(v, dtype=torch.float64, device="cpu").view(torch.int64)
                    for k, v in self.history.items()})  # bit patterns: NaN is a valid entry
        return out

    def restore(self, t: dict[str, torch.Tensor], iteration: int) -> None:
        """Continue after ``iteration`` steps from :meth:`tensors` of the same optimisation
        (a tensor that does not fit raises RuntimeError, KeyError or ValueError)."""
        self.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model/")})
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in t.items():
            if k.startswith("opt/"):
                _, idx, name = k.split("/", 2)
                opt_state.setdefault(int(idx), {})[name] = v
        groups = self.opt.state_dict()["param_groups"]  # lr is set anew at every step
        self.opt.load_state_dict({"state": opt_state, "param_groups": groups})
        self.sampler.load_state_tensors({k[8:]: v for k, v in t.items()
                                         if k.startswith("sampler/")})  # fmt: skip
        x = t.get("sr/x_prev")
        self.x_prev = None if x is None else x.to(next(self.model.parameters()).device)
        self.history.clear()
        self.history.update({k[8:]: v.view(torch.float64).tolist() for k, v in t.items()
                             if k.startswith("history/")})  # fmt: skip
        if any(len(v) != iteration for v in self.history.values()):
            raise ValueError(f"history does not have {iteration} iterations")
        self.iteration = iteration


def run_vmc(
    hamiltonian: PauliSum | LocalOperator,
    model: nn.Module,
    sampler: object | None = None,
    sampler_options: MetropolisOptions | dict | None = None,
    optimizer: OptimizerOptions | dict | None = None,
    iterations: int = 300,
    streams: RandomStreams | None = None,
    n_samples: int = 1008,
    eval_samples: int | None = None,
    history: dict[str, list[float]] | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    chunk_size: int | None = 1024,
) -> VMCResult:
    """Minimise <H> over the learner's parameters by VMC; returns history and final estimate.

    ``sampler``: a sampler object (``sample(model, n, streams)`` -> (T, C, N), ``acceptance``,
    ``state_tensors``); None: Metropolis chains with ``sampler_options`` (MetropolisOptions).
    ``streams``: the random streams of every draw (None: seeded from torch's global generator).
    ``optimizer``: OptimizerOptions (SGD/Adam, SR on by default). ``eval_samples``: samples for the
    final energy estimate (default 4 * n_samples), drawn after training with the trained state.
    ``history``: filled in place (kept if a callback raises). Resumable runs: :class:`VMC`.
    """
    device = next(model.parameters()).device
    op = (hamiltonian if isinstance(hamiltonian, LocalOperator)
          else LocalOperator(hamiltonian, device=device))  # fmt: skip
    if sampler is None:
        opts_s = (sampler_options if isinstance(sampler_options, MetropolisOptions)
                  else MetropolisOptions(**(sampler_options or {})))  # fmt: skip
        sampler = MetropolisSampler(op.n_sites, opts_s, device=device)
    opts = (optimizer if isinstance(optimizer, OptimizerOptions)
            else OptimizerOptions(**(optimizer or {})))  # fmt: skip
    state = VMC(op, model, sampler, opts, streams, n_samples, history, chunk_size)
    while state.iteration < iterations:  # optimisation steps are sequential
        stats = state.step()
        if callback is not None:
            callback(state.iteration - 1, stats)
    return state.result(eval_samples or 4 * n_samples)


def bind(catalogue: Catalogue) -> None:
    """Attach the samplers, Metropolis moves and optimisers of vmc runs to their catalogue
    entries."""
    catalogue.samplers.bind("metropolis", metropolis_sampler, family=QUANTUM)
    catalogue.samplers.bind("autoregressive", autoregressive_sampler, family=QUANTUM)
    catalogue.updates.bind("flip", propose_flip, family=QUANTUM)
    catalogue.updates.bind("exchange", propose_exchange, family=QUANTUM)
    for name, configure in (("sr", sr_optimizer), ("sgd", sgd_optimizer),
                            ("adam", adam_optimizer)):  # fmt: skip
        catalogue.optimisers.bind(name, configure, family=QUANTUM)
