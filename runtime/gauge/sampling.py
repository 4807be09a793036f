"""Markov-chain samplers for the Wilson gauge action, batched over chains.

S(U) = -beta sum_{x, mu<nu} Re tr P_{mu nu}(x) / N. The part of S that depends on one link is
S_loc(U_mu(x)) = -(beta/N) Re tr(U_mu(x) A_mu(x)) with A the staple sum (``lattice.staples``).

Colouring for parallel local updates (``link_colouring``). A_mu(x) contains the links
U_nu(x), U_nu(x+mu), U_nu(x-nu), U_nu(x+mu-nu) (nu != mu) and U_mu(x +- nu) (nu != mu) -- never
U_mu(x) itself and never U_mu(x +- mu). Two links can be updated simultaneously iff neither
appears in the other's staple. Hence: (i) links of different directions are never updated
together (U_nu(x) is in A_mu(x)); (ii) for fixed mu, U_mu(x) and U_mu(y) are coupled iff
y = x +- e_nu for some nu != mu. Colouring the mu-links by the parity of sum_{nu != mu} x_nu
separates every coupled pair (the parity flips under x -> x +- e_nu, nu != mu, also across the
periodic boundary when every L_nu, nu != mu, is even). So 2d colours (mu, parity) suffice; within
a colour every link's conditional distribution is independent of the others being updated, so a
parallel update equals a sequential one and detailed balance holds link by
link. (Caveat found in testing: for z2 the deterministic-flip proposal with this fixed schedule
is not ergodic and gave a biased <P>; z2 Metropolis therefore proposes a random sign.)

Samplers: Metropolis (z2 Haar proposal, u1 angle shift, su2 multiplication by a random element
near 1, several hits per link), heat-bath (z2 exact, u1 exact von Mises sampling (Best-Fisher), su2
Kennedy-Pendleton), HMC (u1, su2) with forces derived from the staples:

- U(1): dS/d theta_mu(x) = beta Im(e^{i theta} A), force F = -beta Im(e^{i theta_mu(x)} A_mu(x)).
- SU(2): U -> exp(i w_a sigma_a / 2) U; dS/dw_a = -(beta/2) Re tr(i sigma_a/2 U A)
  = (beta/4) Im tr(sigma_a U A), so F_a = -(beta/2) q_a(U A) with q the quaternion part
  (``groups.su2_to_quaternion``; Im tr(sigma_a M) = 2 q_a(M)). Kinetic term sum p_a^2 / 2.

Random numbers come from counter-based streams (``runtime/random.py``), the chain on the leading
axis of every draw, so chain b evolves identically in any batch and on any device. A sweep
draws a fixed number of times: Metropolis draws the numbers of one direction once on the whole
lattice, shared by its two parity classes (each link is in one, so each number is used once);
heat-bath draws for the links of the colour it updates; the rounds of a rejection sampler (von
Mises, Kennedy-Pendleton), whose number is the slowest element's, draw from a family of their
own that moves the chain's counter by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.gauge import HeatbathOptions, HMCOptions, MetropolisOptions
from physml_lang.compiler import geometry
from physml_lang.compiler.lower.groups import (
    GaugeGroup,
    get_group,
    random_normal,
    random_uniform,
    random_unit3,
    su2_from_quaternion,
    su2_to_quaternion,
    wrap_angle,
)
from physml_lang.compiler.lower.links import (
    lattice_dim,
    planes,
    shift,
    staples,
    staples_lin,
    u1_plaquette_angles,
    wilson_action,
)
from physml_lang.diagnostics import Diagnostic, warn

from ..divergences import Divergences
from ..random import RandomStreams

Tensor = torch.Tensor

# fork index of the families the rounds of rejection samplers draw from
_ROUNDS = 0x52454A  # "REJ"


# ----------------------------------------------------------------------------------------------
# colouring


def _expand_mask(mask: Tensor, like: Tensor, group: GaugeGroup) -> Tensor:
    """(L...) mask -> broadcastable against (B, L..., *group_shape)."""
    m = mask.to(like.device)[None]
    return m.reshape(*m.shape, *([1] * len(group.group_shape)))


def link_colouring(lattice_shape: tuple[int, ...]) -> list[tuple[int, Tensor]]:
    """The geometry's 2d link colours (mu, mask (L_1..L_d) bool) as tensors."""
    return [(mu, torch.as_tensor(m, device="cpu"))  # host masks, moved where used
            for mu, m in geometry.link_colouring(lattice_shape)]


def _parity_masks(lattice_shape: tuple[int, ...]) -> list[list[Tensor]]:
    """The two parity masks of the links of each direction mu (``link_colouring``)."""
    masks: list[list[Tensor]] = [[] for _ in lattice_shape]
    for mu, mask in link_colouring(lattice_shape):
        masks[mu].append(mask)
    return masks


def _split(U: Tensor, group: GaugeGroup) -> list[Tensor]:
    d = lattice_dim(U, group)
    return [U.select(1 + d, mu) for mu in range(d)]


def _join(links: list[Tensor], group: GaugeGroup) -> Tensor:
    d = len(links)
    return torch.stack(links, dim=1 + d)


def _real(like: Tensor) -> torch.dtype:
    return like.real.dtype if like.is_complex() else like.dtype


def _uniform(shape: tuple[int, ...], like: Tensor, streams: RandomStreams) -> Tensor:
    """Uniform on (0, 1] (shape, chain first) in the real dtype of ``like``, on its device."""
    return 1 - random_uniform(tuple(shape), streams, like.device, _real(like))


# ----------------------------------------------------------------------------------------------
# local kernels


def von_mises(kappa: Tensor, rounds: RandomStreams) -> Tensor:
    """Samples of the von Mises density ~ exp(kappa cos t) on (-pi, pi] (Best & Fisher 1979).

    Batched rejection: every round draws for all elements, an element keeps its first accepted
    value. kappa: (B, ...) >= 0, the chain first; ``rounds``: a family of the rounds alone
    (``rejection_rounds``).
    """
    k = kappa.to(torch.float64)
    small = k < 1e-6
    ks = torch.where(small, torch.ones_like(k), k)
    tau = 1 + torch.sqrt(1 + 4 * ks**2)
    rho = (tau - torch.sqrt(2 * tau)) / (2 * ks)
    r = (1 + rho**2) / (2 * rho)
    out = torch.zeros_like(k)
    todo = torch.ones_like(k, dtype=torch.bool)
    while bool(todo.any()):
        u1, u2, u3 = (random_uniform(tuple(k.shape), rounds, k.device) for _ in range(3))
        z = torch.cos(math.pi * u1)
        f = (1 + r * z) / (r + z)
        c = ks * (r - f)
        ok = (c * (2 - c) - u2 > 0) | (torch.log(c / u2) + 1 - c >= 0)
        t = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1, 1))
        t = torch.where(small, math.pi * (2 * u1 - 1), t)
        ok = ok | small
        new = todo & ok
        out = torch.where(new, t, out)
        todo = todo & ~ok
    return out.to(kappa.dtype)


SMALL_ALPHA = 0.05  # below this the Kennedy-Pendleton proposal is almost never accepted


def kennedy_pendleton(alpha: Tensor, rounds: RandomStreams) -> Tensor:
    """a0 in [-1, 1] with density ~ sqrt(1 - a0^2) exp(alpha a0) (Kennedy & Pendleton 1985).

    Batched rejection (redraw where rejected). The Kennedy-Pendleton proposal serves
    |alpha| >= SMALL_ALPHA; below it (where its acceptance vanishes as alpha -> 0) a uniform
    proposal accepted with sqrt(1 - a0^2) exp(|alpha| (a0 - 1)); a negative alpha (a negative
    coupling) draws -a0 of |alpha|. alpha: (B, ...), the chain first; ``rounds``: a family of
    the rounds alone (``rejection_rounds``).
    """
    a = alpha.abs()
    small = a < SMALL_ALPHA
    a_kp = torch.where(small, torch.ones_like(a), a)
    out = torch.zeros_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        r1, r2, r3, r4 = (_uniform(tuple(a.shape), a, rounds) for _ in range(4))
        lam2 = -(torch.log(r1) + torch.cos(2 * math.pi * r2) ** 2 * torch.log(r3)) / (2 * a_kp)
        flat = 2 * r2 - 1
        ok = torch.where(small, r4 <= torch.sqrt((1 - flat**2).clamp_min(0)) * torch.exp(
            a * (flat - 1)), r4**2 <= 1 - lam2)  # fmt: skip
        out = torch.where(todo & ok, torch.where(small, flat, 1 - 2 * lam2), out)
        todo = todo & ~ok
    return torch.where(alpha < 0, -out, out)


def _local_retr(group: GaugeGroup, u: Tensor, A: Tensor) -> Tensor:
    """Re tr(u A) / N for storage-form u and linear-form staple A."""
    return group.lin_retr(group.lin_mul(group.to_lin(u), A))


class LinkDomain:
    """A gauge group as a field domain on links: its Metropolis moves and heat-bath draws
    (bound to the group's catalogue entry; the lattice gauge samplers take them from there)."""

    name = ""

    def __init__(self, group: GaugeGroup):
        self.group = group

    def moves(self, shape: tuple[int, ...], step: float, streams: RandomStreams,
              like: Tensor) -> Tensor:  # fmt: skip
        """Metropolis moves for links of batch shape ``shape`` (chain first), one draw, in the
        storage dtype and device of ``like``."""
        raise NotImplementedError

    def propose(self, u: Tensor, move: Tensor) -> Tensor:
        """The proposed link: ``move`` applied to ``u``; symmetric (the move's distribution is
        invariant under inversion), as Metropolis needs."""
        raise NotImplementedError

    def heatbath(self, A: Tensor, beta: float, streams: RandomStreams) -> Tensor:
        """New links drawn from exp((beta/N) Re tr(U A)) given their staple sums A (linear
        form, (B, n, *lin_shape): the chain first, n links each)."""
        raise NotImplementedError


class Z2Links(LinkDomain):
    """Z2 links: a Haar proposal (flip with probability 1/2), not a deterministic flip: with
    flips and the parallel colour schedule the chain is not ergodic and <P> came out biased
    (0.4528(4) vs exact 0.4621 at beta = 0.5, L = 4); the Haar proposal gives 0.4621(4)."""

    name = "z2"

    def moves(self, shape, step, streams, like):
        return self.group.random(shape, streams, device=like.device, dtype=like.dtype)

    def propose(self, u, move):
        return u * move

    def heatbath(self, A, beta, streams):
        p_up = torch.sigmoid(2 * beta * A)
        up = _uniform(tuple(A.shape), A, streams) <= p_up
        return torch.where(up, torch.ones_like(A), -torch.ones_like(A))


class U1Links(LinkDomain):
    """U(1) links as angles: an angle shift uniform in (-step, step); heat-bath von Mises."""

    name = "u1"

    def moves(self, shape, step, streams, like):
        return step * (2 * _uniform(shape, like, streams) - 1)

    def propose(self, u, move):
        return wrap_angle(u + move)

    def heatbath(self, A, beta, streams):
        # exp(beta |A| cos(theta + arg A)): von Mises centred at -arg A.
        t = von_mises(beta * A.abs(), rejection_rounds(streams))
        return wrap_angle(t - torch.angle(A))


class SU2Links(LinkDomain):
    """SU(2) links: left multiplication by an element near 1 (``random_near_identity``);
    heat-bath Kennedy-Pendleton."""

    name = "su2"

    def moves(self, shape, step, streams, like):
        return self.group.random_near_identity(shape, step, streams, device=like.device,
                                               dtype=like.dtype)  # fmt: skip

    def propose(self, u, move):
        return move @ u

    def heatbath(self, A, beta, streams):
        q = su2_to_quaternion(A)  # A = k V, V in SU(2) (a sum of SU(2) matrices)
        k = q.norm(dim=-1)
        a0 = kennedy_pendleton(beta * k, rejection_rounds(streams))
        n = random_unit3(tuple(a0.shape), streams, a0.device, a0.dtype)
        x = torch.cat([a0[..., None], torch.sqrt((1 - a0**2).clamp_min(0))[..., None] * n], -1)
        X = su2_from_quaternion(x)
        v_dag = su2_from_quaternion(q / k.clamp_min(1e-300)[..., None]).conj().transpose(-1, -2)
        return X @ v_dag  # U A = X V^dag k V = k X, so U is distributed as required


LINK_DOMAINS: dict[str, type[LinkDomain]] = {"z2": Z2Links, "u1": U1Links, "su2": SU2Links}


def link_domain(group: GaugeGroup) -> LinkDomain:
    """The link behaviour of a gauge group."""
    return LINK_DOMAINS[group.name](group)


def rejection_rounds(streams: RandomStreams) -> RandomStreams:
    """The family the rounds of one rejection sampler draw from, named by the chains' draw
    counter, which moves by one: however many rounds the slowest element of the batch needs,
    chain b's later numbers stay the same (and its rounds' numbers are its own)."""
    rounds = streams.fork(_ROUNDS, streams.draws, first=streams.first)
    streams.draws += 1
    return rounds


# ----------------------------------------------------------------------------------------------
# sweeps


def metropolis_sweep(U: Tensor, group: str | GaugeGroup, beta: float, streams: RandomStreams,
                     step: float = 1.0, hits: int = 4) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One checkerboard Metropolis sweep over all links; ``hits`` proposals per link.

    U (B, L..., d, *group_shape); returns (new U, acceptance rate per chain (B,)).
    """
    group = get_group(group)
    if group.name == "u1":
        return _u1_metropolis_sweep(U, beta, streams, step, hits)
    links = _split(U, group)
    domain = link_domain(group)
    lin = [group.to_lin(u) for u in links]
    acc = torch.zeros(U.shape[0], device=U.device, dtype=torch.float64)
    lattice = tuple(U.shape[1 : 1 + len(links)])
    for mu, masks in enumerate(_parity_masks(lattice)):
        # a move and a uniform per link and hit (contiguous per hit: strided math is slower)
        sites = (U.shape[0], *lattice)
        moves = [domain.moves(sites, step, streams, U) for _ in range(hits)]
        uniforms = [_uniform(sites, U, streams) for _ in range(hits)]
        for mask in masks:
            A = staples_lin(lin, group, mu)
            m = _expand_mask(mask, links[mu], group)
            msite = mask.to(U.device)[None]
            u = links[mu]
            old = _local_retr(group, u, A)
            for h in range(hits):
                prop = domain.propose(u, moves[h])
                new = _local_retr(group, prop, A)
                dS = -beta * (new - old)  # _local_retr already carries the 1/N
                ok = (uniforms[h] <= torch.exp(-dS)) & msite
                okg = ok.reshape(*ok.shape, *([1] * len(group.group_shape)))
                u = torch.where(okg & m, prop, u)
                old = torch.where(ok, new, old)
                acc += ok.flatten(1).sum(1)
            links[mu] = u
            lin[mu] = group.to_lin(u)
    n_links = len(links) * math.prod(lattice)  # per chain
    return _join(links, group), acc / (hits * n_links)


def _u1_staple_angles(th: list[Tensor], mu: int) -> list[Tensor]:
    """The 2(d-1) staple angles a_k(x) of U_mu(x) (real, (B, L...)): every plaquette containing
    U_mu(x) has Re P = cos(theta_mu(x) + a_k(x)) (up to the sign of the angle, which cos ignores).

    up(x) = theta_nu(x+mu) - theta_mu(x+nu) - theta_nu(x)            (P_{mu nu}(x))
    dn(x) = theta_nu(x-nu) - theta_nu(x+mu-nu) - theta_mu(x-nu)      (P_{mu nu}(x-nu))
    """
    out = []
    for nu in range(len(th)):
        if nu == mu:
            continue
        t_nu_mu = shift(th[nu], mu)
        out.append(t_nu_mu - shift(th[mu], nu) - th[nu])
        out.append(shift(th[nu] - t_nu_mu - th[mu], nu, -1))
    return out


def _u1_local(t: Tensor, a: list[Tensor], cs: tuple[Tensor, Tensor] | None) -> Tensor:
    """sum_k cos(t + a_k), directly or as cos(t) C - sin(t) S with cs = (C, S)."""
    if cs is not None:
        return torch.cos(t) * cs[0] - torch.sin(t) * cs[1]
    return sum(torch.cos(t + x) for x in a)


def _u1_metropolis_sweep(U: Tensor, beta: float, streams: RandomStreams, step: float,
                         hits: int, force_angles: bool = False) -> tuple[Tensor, Tensor]:  # fmt: skip
    """U(1) checkerboard Metropolis in real angle arithmetic (no complex staples).

    S_loc(theta) = -beta sum_k cos(theta + a_k). Two equivalent evaluations, the cheaper chosen
    by trig-call count: per hit sum_k cos(theta' + a_k) (n_k cosines), or once per colour
    C = sum_k cos a_k, S = sum_k sin a_k and per hit cos(theta') C - sin(theta') S (2 calls).
    """
    d = U.dim() - 2  # u1 storage: (B, L..., d) angles
    th = [U.select(1 + d, mu) for mu in range(d)]
    acc = torch.zeros(U.shape[0], device=U.device, dtype=torch.float64)
    n_st = 2 * (d - 1)
    use_cs = 2 * n_st + 2 * (hits + 1) < n_st * (hits + 1) and not force_angles
    lattice = tuple(U.shape[1 : 1 + d])
    for mu, masks in enumerate(_parity_masks(lattice)):
        # per link and hit: the shift's uniform (h) and the acceptance's (hits + h)
        r = [_uniform((U.shape[0], *lattice), U, streams) for _ in range(2 * hits)]
        for mask in masks:
            msite = mask.to(U.device)[None]
            a = _u1_staple_angles(th, mu)
            u = th[mu]
            if use_cs:
                cs = (sum(torch.cos(x) for x in a), sum(torch.sin(x) for x in a))
            old = _u1_local(u, a, cs if use_cs else None)
            for h in range(hits):
                prop = wrap_angle(u + step * (2 * r[h] - 1))
                new = _u1_local(prop, a, cs if use_cs else None)
                ok = (r[hits + h] <= torch.exp(beta * (new - old))) & msite
                u = torch.where(ok, prop, u)
                old = torch.where(ok, new, old)
                acc += ok.flatten(1).sum(1)
            th[mu] = u
    n_links = d * math.prod(lattice)
    return torch.stack(th, dim=1 + d), acc / (hits * n_links)


def heatbath_sweep(U: Tensor, group: str | GaugeGroup, beta: float,
                   streams: RandomStreams) -> Tensor:  # fmt: skip
    """One checkerboard heat-bath sweep (exact conditional sampling of every link);
    U (B, L..., d, *group_shape)."""
    group = get_group(group)
    links = _split(U, group)
    lin = [group.to_lin(u) for u in links]
    d = len(links)
    for mu, mask in link_colouring(tuple(U.shape[1 : 1 + d])):
        # the colour's links only, gathered by fixed indices (no host sync): half the draws
        # and the rejection work of a masked update of every link
        sites = mask.flatten().nonzero()[:, 0].to(U.device)
        A = staples_lin(lin, group, mu).flatten(1, d).index_select(1, sites)
        new = link_domain(group).heatbath(A, beta, streams)
        links[mu] = links[mu].flatten(1, d).index_copy(1, sites, new).reshape(links[mu].shape)
        lin[mu] = group.to_lin(links[mu])
    return _join(links, group)


def gauge_force(U: Tensor, group: str | GaugeGroup, beta: float) -> Tensor:
    """Force -dS/dw on every link (algebra coordinates): u1 (B, L..., d), su2 (B, L..., d, 3).

    u1: w = theta. su2: U -> exp(i w_a sigma_a / 2) U.
    """
    group = get_group(group)
    if group.name == "u1":
        # Real arithmetic on plaquette angles (same as -beta Im(e^{i theta} A), ~2x faster
        # than complex staples on CPU): theta_mu enters P_{mu nu}(x) with +1 and
        # P_{mu nu}(x - nu) with -1; theta_nu enters P_{mu nu}(x) with -1, P_{mu nu}(x - mu) +1.
        d = lattice_dim(U, group)
        sinp = torch.sin(u1_plaquette_angles(U))
        dS = [torch.zeros_like(U.select(1 + d, 0)) for _ in range(d)]
        for k, (mu, nu) in enumerate(planes(d)):
            sp = sinp.select(1 + d, k)
            dS[mu] = dS[mu] + sp - shift(sp, nu, -1)
            dS[nu] = dS[nu] - sp + shift(sp, mu, -1)
        return -beta * torch.stack(dS, dim=1 + d)
    A = staples(U, group)
    if group.name == "su2":
        return -(beta / 2) * su2_to_quaternion(U @ A)[..., 1:]
    raise NotImplementedError(f"no HMC force for {group.name}")


def _su2_exp(p: Tensor, eps: float) -> Tensor:
    """exp(i eps p_a sigma_a / 2) for p (..., 3): cos(t) + i sin(t) n.sigma, t = eps |p| / 2."""
    norm = p.norm(dim=-1, keepdim=True)
    t = eps * norm / 2
    n = p / norm.clamp_min(1e-300)
    return su2_from_quaternion(torch.cat([torch.cos(t), torch.sin(t) * n], -1))


def _move(U: Tensor, p: Tensor, group: GaugeGroup, eps: float) -> Tensor:
    if group.name == "u1":
        return U + eps * p  # unwrapped during the trajectory; wrapped at the end
    return _su2_exp(p, eps) @ U


def hmc_trajectory(U: Tensor, group: str | GaugeGroup, beta: float, streams: RandomStreams,
                   step_size: float = 0.1, n_steps: int = 10,
                   reunitarize: bool = True) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One HMC trajectory (leapfrog) per chain with a Metropolis accept/reject per chain.

    U (B, L..., d, *group_shape); returns (new U, accepted (B,) bool, dH (B,)).
    """
    group = get_group(group)
    if group.name not in ("u1", "su2"):
        raise NotImplementedError(f"HMC is defined for u1 and su2, not {group.name}")
    real = U.real.dtype if U.is_complex() else U.dtype
    pshape = U.shape if group.name == "u1" else (*U.shape[:-2], 3)
    p = random_normal(tuple(pshape), streams, U.device, real)
    B = U.shape[0]
    h0 = 0.5 * (p**2).reshape(B, -1).sum(1) + wilson_action(U, group, beta)
    V = U
    p = p + 0.5 * step_size * gauge_force(V, group, beta)
    for i in range(n_steps):
        V = _move(V, p, group, step_size)
        if i < n_steps - 1:
            p = p + step_size * gauge_force(V, group, beta)
    p = p + 0.5 * step_size * gauge_force(V, group, beta)
    h1 = 0.5 * (p**2).reshape(B, -1).sum(1) + wilson_action(V, group, beta)
    dH = h1 - h0
    accept = _uniform(tuple(dH.shape), dH, streams) <= torch.exp(-dH)
    if group.name == "u1":
        V = wrap_angle(V)
    elif reunitarize:
        V = group.project(V)
    a = accept.reshape(B, *([1] * (U.dim() - 1)))
    return torch.where(a, V, U), accept, dH


# ----------------------------------------------------------------------------------------------
# samplers: implementations of the catalogue's gauge sampler entries


class GaugeSampler:
    """A sampler bound to (group, beta): ``step(U, streams) -> U`` does one sweep/trajectory
    for every chain (U (B, L..., d, *group_shape), chain b drawing from stream b);
    ``acceptance`` holds the last per-chain acceptance (B,) (ones for heat-bath). An HMC
    trajectory whose dH is not finite is rejected and recorded in ``diverged``
    (:class:`Divergences`); :meth:`divergence` names a chain stuck behind them."""

    def __init__(self, kind: str, group: str | GaugeGroup, beta: float, options: BaseModel):
        self.kind, self.group, self.beta, self.options = kind, get_group(group), beta, options
        if kind == "hmc" and self.group.name not in ("u1", "su2"):
            raise ValueError(f"hmc is not available for gauge group {self.group.name}")
        self.acceptance: Tensor | None = None
        self.diverged: Divergences | None = None

    def divergence(self) -> tuple[int, int, float] | None:
        """(first divergent trajectory, chain, fraction) of a chain whose HMC trajectories
        mostly had a non-finite dH, or None."""
        return None if self.diverged is None else self.diverged.stuck()

    def step(self, U: Tensor, streams: RandomStreams) -> Tensor:
        o = self.options
        if self.kind == "metropolis":
            U, self.acceptance = metropolis_sweep(U, self.group, self.beta, streams,
                                                  o.step_size, o.hits)  # fmt: skip
        elif self.kind == "heatbath":
            U = heatbath_sweep(U, self.group, self.beta, streams)
            self.acceptance = torch.ones(U.shape[0], dtype=torch.float64, device=U.device)
        else:
            U, acc, dH = hmc_trajectory(U, self.group, self.beta, streams, o.step_size,
                                        o.n_steps, o.reunitarize)  # fmt: skip
            self.acceptance = acc.to(torch.float64)
            if self.diverged is None or self.diverged.count.shape != dH.shape:  # (new) chains
                self.diverged = Divergences(dH.shape[0], dH.device)
            self.diverged.record(torch.isfinite(dH))
        return U


@dataclass(frozen=True)
class LinkSampler:
    """The implementation of a gauge sampler entry: ``(group, beta, options) -> GaugeSampler``.

    ``options`` is the sampler's own schema; the entry's schema (what a ``sampler`` statement
    is validated against) adds the run's controls to it."""

    kind: str
    options: type[BaseModel]

    def __call__(self, group: str | GaugeGroup, beta: float, options: BaseModel) -> GaugeSampler:
        return GaugeSampler(self.kind, group, beta, options)


# one instance each: binding twice must bind the same object
METROPOLIS = LinkSampler("metropolis", MetropolisOptions)
HEATBATH = LinkSampler("heatbath", HeatbathOptions)
HMC = LinkSampler("hmc", HMCOptions)


def make_sampler(name: str, group: str | GaugeGroup, beta: float, **options) -> GaugeSampler:
    """A gauge sampler of the catalogue by name, ``options`` validated with its own schema (an
    old option name is accepted with a P403 warning)."""
    if CATALOGUE.samplers.get(name, "gauge") is None:
        known = sorted(CATALOGUE.samplers.names("gauge"))
        raise KeyError(f"unknown gauge sampler {name!r}; known: {known}")
    factory: LinkSampler = CATALOGUE.samplers.implementation(name, "gauge")
    for old, new in getattr(factory.options, "renamed", {}).items():
        if old in options and new not in options:
            warn(Diagnostic("P403", f"option '{old}' of sampler {name} is now called '{new}'",
                            None, f"write {new} = ... (the old name will be removed)"))  # fmt: skip
            options[new] = options.pop(old)
    return factory(group, beta, factory.options(**options))


def bind(catalogue: Catalogue) -> None:
    """Attach the link samplers to their catalogue entries, and the link behaviour of the
    continuous gauge groups to their domain entries (z2's entry holds its site behaviour, a
    +-1 spin; its links are :class:`Z2Links`). Called by the gauge tasks' bind."""
    for sampler in (METROPOLIS, HEATBATH, HMC):
        catalogue.samplers.bind(sampler.kind, sampler, family="gauge")
    for name in ("u1", "su2"):
        catalogue.domains.bind(name, LINK_DOMAINS[name])


def cold_start(group: str | GaugeGroup, batch: int, lattice_shape: tuple[int, ...],
               device=None, dtype=None) -> Tensor:  # fmt: skip
    """All links = identity: (B, L..., d, *group_shape)."""
    group = get_group(group)
    return group.identity((batch, *lattice_shape, len(lattice_shape)), device=device, dtype=dtype)


def hot_start(group: str | GaugeGroup, batch: int, lattice_shape: tuple[int, ...],
              streams: RandomStreams, device=None, dtype=None) -> Tensor:  # fmt: skip
    """Haar-random links: (B, L..., d, *group_shape), chain b from stream b."""
    group = get_group(group)
    return group.random((batch, *lattice_shape, len(lattice_shape)), streams, device=device,
                        dtype=dtype)  # fmt: skip


def run_chains(sampler: GaugeSampler, U: Tensor, streams: RandomStreams, n_measure: int,
               observables: Mapping[str, Callable[[Tensor], Tensor]], burn_in: int = 0,
               every: int = 1) -> tuple[Tensor, dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Burn in, then take ``n_measure`` measurements ``every`` steps.

    observables: name -> f(U) returning (B,). Returns (final U, {name: (T, B) array},
    acceptance (T, B) array) -- feed the series to ``runtime.statistics.binning_analysis``.
    """
    for _ in range(burn_in):
        U = sampler.step(U, streams)
    series: dict[str, list[np.ndarray]] = {k: [] for k in observables}
    acc = []
    for _ in range(n_measure):
        for _ in range(every):
            U = sampler.step(U, streams)
        acc.append(sampler.acceptance.cpu().numpy())
        for k, f in observables.items():
            series[k].append(f(U).detach().double().cpu().numpy())
    return U, {k: np.stack(v) for k, v in series.items()}, np.stack(acc)
