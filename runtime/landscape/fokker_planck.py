"""Densities on a grid that evolve on a potential f(x): Fokker-Planck and the seed's eq. (16).

Fokker-Planck (:func:`fokker_planck`): dp/dtau = D lap(p) + div(grad f p) in d dimensions on the
cell-centred grid of a box, zero flux through the walls. The flux between neighbouring cells i,
i+1 of one axis is Scharfetter-Gummel's: with u = f/D, du = u_{i+1} - u_i and B(z) = z/(e^z - 1),

    J_{i+1/2} = -(D/h) [B(-du) p_{i+1} - B(du) p_i],

the exact flux of the 1D problem with u linear between the two centres. It vanishes for
p = exp(-u) at every face, so the discrete stationary state IS exp(-f/D)/Z on the grid points
(exact at the grid level, not O(h^2)); the divergence of face fluxes telescopes, so the mass
sum p h^d is conserved to round-off. Explicit Euler steps, checked before running against
dtau <= 1 / max_i (sum of the outflow rates of cell i): the bound that keeps p >= 0 and every
mode stable (Gershgorin on the generator, whose spectrum is real by detailed balance).

The seed's eq. (16) (:func:`taylor_diffusion`; Acta Phys. Sin. 74, 060701 (2025), eqs. 12-16):

    psi_i^{n+1} = psi_i^n + D dtau (psi_{i+1} - 2 psi_i + psi_{i-1}) / dx^2
                  - dtau (f_{i+1} - f_i) / dx  psi_i^n,

a diffusion-reaction scheme whose reaction rate is the forward-difference slope of f (eq. 14;
at the last point the backward difference), with psi = 0 outside the box (Dirichlet: on the
cell-centred grid the zero ghost values sit h/2 outside the walls). Its
continuum limit is d psi/d tau = D psi'' - f'(x) psi, an imaginary-time Schrodinger equation in
the potential f'(x) (not Fokker-Planck, which has the drift term f' psi' + f'' psi): psi tends to
the ground state of -D d^2/dx^2 + f'(x), which sits where the slope f' is most negative (a wall
of the box for a convex f), not at the minimum of f; the peak passes the minimum on its way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import LandscapeError
from .grid import GridSpec

Tensor = torch.Tensor
GridLike = GridSpec | tuple[Sequence[float], Sequence[float], Sequence[int]]
_CHECK_EVERY = 64  # steps between finiteness checks (one host sync each)


def as_grid(grid: GridLike) -> GridSpec:
    """A GridSpec from a GridSpec or a (lower, upper, points) triple of per-axis sequences."""
    if isinstance(grid, GridSpec):
        return grid
    try:
        lower, upper, points = grid
        spec = GridSpec(tuple(float(v) for v in lower), tuple(float(v) for v in upper),
                        tuple(int(n) for n in points))  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise LandscapeError(f"the grid must be (lower, upper, points) per axis, got {grid!r}",
                             "give one lower, upper and points entry per axis") from exc  # fmt: skip
    return spec


def _check_grid(grid: GridSpec) -> None:
    for a, (lo, up, n) in enumerate(zip(grid.lower, grid.upper, grid.points, strict=True)):
        if not (math.isfinite(lo) and math.isfinite(up) and up > lo):
            raise LandscapeError(f"axis {a} of the box is [{lo}, {up}]: it needs lower < upper",
                                 "give a box with lower < upper on every axis")  # fmt: skip
        if n < 2:
            raise LandscapeError(f"axis {a} has {n} grid point(s)", "take at least 2 points")


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise LandscapeError(f"{name} = {value} must be positive and finite",
                             f"give a positive {name}")  # fmt: skip
    return value


def _batched_potential(potential: Tensor, grid: GridSpec, dtype: torch.dtype) -> Tensor:
    """(B, *points) or (*points) -> (B, *points) in ``dtype``; a non-finite value is an error
    naming the batch member and the coordinates of the point."""
    f = torch.as_tensor(potential, device=getattr(potential, "device", "cpu")).detach()
    if tuple(f.shape) == grid.points:
        f = f.unsqueeze(0)
    if tuple(f.shape[1:]) != grid.points:
        raise LandscapeError(f"the potential has shape {tuple(f.shape)}, the grid needs "
                             f"(batch, {', '.join(map(str, grid.points))})",
                             "evaluate the potential on the grid's points")  # fmt: skip
    f = f.to(dtype)
    bad = ~torch.isfinite(f)
    if bool(bad.any()):
        index = [int(i) for i in torch.nonzero(bad)[0]]
        x = [lo + (j + 0.5) * h for lo, j, h in zip(grid.lower, index[1:], grid.spacing,
                                                     strict=True)]  # fmt: skip
        where = ", ".join(f"{v:.6g}" for v in x)
        raise LandscapeError(f"the potential is {float(f[tuple(index)])} at x = ({where}) "
                             f"(batch member {index[0]}, grid index {tuple(index[1:])})",
                             "make f finite on the whole box, or shrink the box")  # fmt: skip
    return f


def _bernoulli(z: Tensor) -> Tensor:
    """B(z) = z / (e^z - 1), with B(0) = 1 (its series 1 - z/2 below |z| = 1e-6)."""
    small = z.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(z), z)
    return torch.where(small, 1 - z / 2, safe / torch.expm1(safe))


@dataclass(frozen=True)
class _AxisRates:
    """Per face of one axis (tensor dim ``dim``): p_{i+1} -> p_i rate ``back`` = D B(-du)/h^2
    and p_i -> p_{i+1} rate ``forth`` = D B(du)/h^2; shapes (B, ..., n_a - 1, ...)."""

    dim: int
    back: Tensor
    forth: Tensor


def _rates(f: Tensor, grid: GridSpec, D: float) -> list[_AxisRates]:
    u = f / D
    rates = []
    for a, h in enumerate(grid.spacing):
        du = torch.diff(u, dim=a + 1)
        forth = _bernoulli(du)
        rates.append(_AxisRates(a + 1, (D / h**2) * (forth + du), (D / h**2) * forth))
    return rates


def _outflow(rates: list[_AxisRates], like: Tensor) -> Tensor:
    """The total outflow rate of every cell (B, *points): minus the generator's diagonal."""
    out = torch.zeros_like(like)
    for r in rates:
        n = like.shape[r.dim]
        out.narrow(r.dim, 0, n - 1).add_(r.forth)
        out.narrow(r.dim, 1, n - 1).add_(r.back)
    return out


def _apply(rates: list[_AxisRates], p: Tensor) -> Tensor:
    """The generator on p: the net inflow (B, *points) = -div J, zero flux at the walls."""
    dp = torch.zeros_like(p)
    for r in rates:
        n = p.shape[r.dim]
        net = r.back * p.narrow(r.dim, 1, n - 1) - r.forth * p.narrow(r.dim, 0, n - 1)
        dp.narrow(r.dim, 0, n - 1).add_(net)
        dp.narrow(r.dim, 1, n - 1).sub_(net)
    return dp


def fokker_planck_generator(potential: Tensor, grid: GridLike, D: float,
                            dtype: torch.dtype = torch.float64) -> Callable[[Tensor], Tensor]:  # fmt: skip
    """The Scharfetter-Gummel generator L: p (B, *points) or (*points) -> dp/dtau, same
    shape (a batch of densities against one potential broadcasts)."""
    spec = as_grid(grid)
    _check_grid(spec)
    rates = _rates(_batched_potential(potential, spec, dtype), spec, _positive("D", D))

    def generator(p: Tensor) -> Tensor:
        return _apply(rates, p) if p.dim() > spec.dim else _apply(rates, p[None])[0]

    return generator


def fokker_planck_max_dtau(potential: Tensor, grid: GridLike, D: float) -> float:
    """The explicit limit 1 / max(outflow rate): dtau above it may go negative or unstable
    (flat f: h^2 / (2 d D))."""
    spec = as_grid(grid)
    _check_grid(spec)
    f = _batched_potential(potential, spec, torch.float64)
    return 1.0 / float(_outflow(_rates(f, spec, _positive("D", D)), f).max())


@dataclass(frozen=True)
class FokkerPlanckResult:
    """``density`` (B, *points), normalised to sum p h^d = 1; ``times`` (T,) of the traces;
    ``snapshots`` (T, B, *points) when saved, else None; ``stationary`` exp(-f/D)/Z on the grid
    (B, *points); ``l1_distance_trace`` (B, T) = sum |p - stationary| h^d; ``mass_trace``
    (B, T) = sum p h^d."""

    density: Tensor
    times: Tensor
    snapshots: Tensor | None
    stationary: Tensor
    l1_distance_trace: Tensor
    mass_trace: Tensor


def _record_steps(steps: int, save_every: int) -> list[int]:
    """Steps at which traces are taken: every ``save_every`` (else ~100 over the run), the
    first and the last."""
    every = save_every if save_every > 0 else max(1, steps // 100)
    marks = list(range(0, steps + 1, every))
    return marks if marks[-1] == steps else [*marks, steps]


def _initial_density(p0: Tensor | None, f: Tensor, cell: float) -> Tensor:
    if p0 is None:
        p = torch.ones_like(f)
    else:
        p = torch.as_tensor(p0, device=f.device).to(f.dtype)
        if p.shape == f.shape[1:]:
            p = p.unsqueeze(0).expand_as(f)
        if p.shape != f.shape:
            raise LandscapeError(f"p0 has shape {tuple(p.shape)}, the potential "
                                 f"{tuple(f.shape)}", "give p0 on the same grid")  # fmt: skip
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            raise LandscapeError("p0 has negative or non-finite values",
                                 "a density must be finite and >= 0")  # fmt: skip
    mass = p.flatten(1).sum(1) * cell
    if bool((mass <= 0).any()):
        raise LandscapeError("p0 has zero total mass", "give a density with positive mass")
    return p / mass.reshape(-1, *[1] * (f.dim() - 1))


def fokker_planck(potential: Tensor, grid: GridLike, D: float, dtau: float, steps: int,
                  p0: Tensor | None = None, save_every: int = 0,
                  dtype: torch.dtype = torch.float64) -> FokkerPlanckResult:  # fmt: skip
    """Evolve densities (B, *points) by explicit Scharfetter-Gummel steps (module docstring);
    p0 defaults to the uniform density and is normalised. Raises LandscapeError for a dtau
    above the explicit limit, a non-finite potential or a bad p0."""
    spec = as_grid(grid)
    _check_grid(spec)
    D, dtau = _positive("D", D), _positive("dtau", dtau)
    steps = int(steps)
    if steps < 0:
        raise LandscapeError(f"steps = {steps} is negative", "give steps >= 0")
    f = _batched_potential(potential, spec, dtype)
    rates = _rates(f, spec, D)
    limit = 1.0 / float(_outflow(rates, f).max())
    if dtau > limit:
        raise LandscapeError(f"dtau = {dtau:.4g} exceeds the explicit Fokker-Planck limit "
                             f"{limit:.4g} (1 / the largest outflow rate of a cell)",
                             f"take dtau <= {limit:.4g}, or a coarser grid")  # fmt: skip
    cell = spec.cell_volume
    sum_dims = tuple(range(1, f.dim()))
    stationary = torch.exp(-(f - f.amin(dim=sum_dims, keepdim=True)) / D)
    stationary = stationary / (stationary.sum(dim=sum_dims, keepdim=True) * cell)
    scaled = [_AxisRates(r.dim, dtau * r.back, dtau * r.forth) for r in rates]
    p = _initial_density(p0, f, cell)
    marks = _record_steps(steps, save_every)
    l1, mass, snaps = [], [], []
    k = 0
    for mark in marks:
        for _ in range(mark - k):
            p = p + _apply(scaled, p)
        k = mark
        l1.append((p - stationary).abs().sum(dim=sum_dims) * cell)
        mass.append(p.sum(dim=sum_dims) * cell)
        if save_every > 0:
            snaps.append(p.clone())
    times = torch.tensor(marks, dtype=dtype, device=f.device) * dtau
    return FokkerPlanckResult(p, times, torch.stack(snaps) if snaps else None, stationary,
                              torch.stack(l1, dim=1), torch.stack(mass, dim=1))  # fmt: skip


def taylor_stability(D: float, dtau: float, dx: float) -> float:
    """r = D dtau / dx^2 of eq. (16); raises LandscapeError above 1/2, where the highest grid
    mode (amplification 1 - 4r) grows every step."""
    D, dtau, dx = _positive("D", D), _positive("dtau", dtau), _positive("dx", dx)
    r = D * dtau / dx**2
    if r > 0.5:
        raise LandscapeError(f"D dtau / dx^2 = {r:.3g} > 1/2: the explicit scheme is unstable "
                             f"(D = {D:g}, dtau = {dtau:g}, dx = {dx:g})",
                             f"take dtau <= {dx**2 / (2 * D):.4g}")  # fmt: skip
    return r


@dataclass(frozen=True)
class TaylorDiffusionResult:
    """``psi`` (B, points) at the end (unit l1 norm if renormalised, else as eq. (16) gives
    it); ``times`` (T,); ``snapshots`` (T, B, points) with unit l1 norm, or None;
    ``argmax_trace`` (B, T) the x of the peak; ``log_norm_trace`` (B, T) log sum |psi| dx of
    the unrenormalised solution (``norm_trace`` its exponential)."""

    psi: Tensor
    times: Tensor
    snapshots: Tensor | None
    argmax_trace: Tensor
    log_norm_trace: Tensor

    @property
    def norm_trace(self) -> Tensor:
        return torch.exp(self.log_norm_trace)


def forward_slope(potential: Tensor, dx: float) -> Tensor:
    """Delta f / Delta x of eq. (14): (f_{i+1} - f_i)/dx, the backward difference at the last
    point; shape (B, points)."""
    slope = torch.diff(potential, dim=-1) / dx
    return torch.cat([slope, slope[..., -1:]], dim=-1)


def taylor_diffusion(potential: Tensor, box: GridLike | tuple[float, float], D: float,
                     dtau: float, steps: int, psi0: Tensor | None = None, save_every: int = 0,
                     check_stability: bool = True, renormalise: bool = False,
                     dtype: torch.dtype = torch.float64) -> TaylorDiffusionResult:  # fmt: skip
    """Iterate the seed's eq. (16) on the cell-centred 1D grid of ``box`` (a GridSpec, or
    (lower, upper) with the points of ``potential`` (B, points)); psi0 defaults to uniform.

    The scheme is linear, so the solution is rescaled to unit l1 norm every 64 steps and the
    scale accumulated in log_norm_trace: the same iterates without overflow. Checks (unless
    ``check_stability=False``): D dtau/dx^2 <= 1/2 and 4 D dtau/dx^2 + dtau max(slope) <= 2
    (the reaction's share of the frozen-coefficient limit)."""
    if isinstance(box, GridSpec):
        spec = box
    elif len(box) == 2 and not isinstance(box[0], Sequence):
        spec = GridSpec((float(box[0]),), (float(box[1]),), (int(potential.shape[-1]),))
    else:
        spec = as_grid(box)  # type: ignore[arg-type]
    if spec.dim != 1:
        raise LandscapeError(f"eq. (16) is one-dimensional; the box has {spec.dim} axes",
                             "use a 1D box, or fokker_planck in several dimensions")  # fmt: skip
    _check_grid(spec)
    D, dtau = _positive("D", D), _positive("dtau", dtau)
    dx = spec.spacing[0]
    f = _batched_potential(potential, spec, dtype)
    slope = forward_slope(f, dx)
    r = D * dtau / dx**2
    if check_stability:
        taylor_stability(D, dtau, dx)
        worst = 4 * r + dtau * float(slope.max())
        if worst > 2 + 1e-12:
            raise LandscapeError(f"4 D dtau/dx^2 + dtau max(Delta f/Delta x) = {worst:.3g} > 2: "
                                 "the reaction term makes eq. (16) unstable",
                                 f"take dtau <= {2 / (4 * D / dx**2 + float(slope.max())):.4g}")
    steps = int(steps)
    if steps < 0:
        raise LandscapeError(f"steps = {steps} is negative", "give steps >= 0")
    keep = 1 - 2 * r - dtau * slope  # psi_i's own weight in eq. (16)
    psi = _initial_density(psi0, f, dx) if psi0 is not None else torch.ones_like(f) / (
        f.shape[-1] * dx)  # fmt: skip
    log_scale = torch.zeros(f.shape[0], 1, dtype=dtype, device=f.device)
    x = spec.axes(f.device, dtype)[0]
    marks = _record_steps(steps, save_every)
    argmax, log_norm, snaps = [], [], []

    def rescale(psi: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
        norm = (psi.abs().sum(-1, keepdim=True) * dx).clamp_min(torch.finfo(dtype).tiny)
        return psi / norm, log_scale + torch.log(norm)

    k = 0
    for mark in marks:
        while k < mark:
            nxt = keep * psi
            nxt[..., 1:] += r * psi[..., :-1]
            nxt[..., :-1] += r * psi[..., 1:]
            psi = nxt
            k += 1
            if k % _CHECK_EVERY == 0:
                psi, log_scale = rescale(psi, log_scale)
                if not bool(torch.isfinite(psi).all()):
                    raise LandscapeError(f"eq. (16) overflowed by step {k} (tau = {k * dtau:.4g}) "
                                         f"at D dtau/dx^2 = {r:.3g}",
                                         f"take dtau <= {dx**2 / (2 * D):.4g}")  # fmt: skip
        psi, log_scale = rescale(psi, log_scale)
        argmax.append(x[psi.argmax(dim=-1)])
        log_norm.append(log_scale[:, 0].clone())
        if save_every > 0:
            snaps.append(psi.clone())
    if not renormalise:
        psi = psi * torch.exp(log_scale)
        if not bool(torch.isfinite(psi).all()):
            raise LandscapeError(f"psi overflows at tau = {steps * dtau:.4g} (log norm up to "
                                 f"{float(log_scale.max()):.4g})",
                                 "pass renormalise=True, or a shorter tau")  # fmt: skip
    times = torch.tensor(marks, dtype=dtype, device=f.device) * dtau
    return TaylorDiffusionResult(psi, times, torch.stack(snaps) if snaps else None,
                                 torch.stack(argmax, dim=1), torch.stack(log_norm, dim=1))  # fmt: skip
