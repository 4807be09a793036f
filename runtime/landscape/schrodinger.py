"""Schrodinger evolution on a grid, batched over B potentials f(x) of shape (B, *points).

Imaginary time, d psi / d tau = D laplacian psi - f psi, relaxes S states (B, S, *points) to the
S lowest eigenstates of H = -D laplacian + f (subspace iteration: QR after every step). Real
time, i d psi / dt = H psi, is unitary. Both use the Strang split-operator step

    exp(-c f / 2) . IFFT exp(-c D k^2) FFT . exp(-c f / 2),   c = dtau (imaginary) or i dt (real),

on the periodic box of the GridSpec (cell-centred, so the -1/r of hydrogen at the origin is
never on a grid point). Consecutive half kicks are merged into one, except at the steps where
energies are measured. Energies are Rayleigh-Ritz values of the EXACT discrete H (spectral
kinetic energy): variational on the grid, their time-step bias comes only through the shape of
psi, O(dtau^4), while the energies of the split propagator itself (``splitting_energies``,
-log(eigenvalue)/dtau) carry the O(dtau^2) bias of Strang splitting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..random import RandomStreams
from .errors import LandscapeError
from .grid import GridSpec
from .grid_operators import (
    apply_kinetic_complex,
    apply_kinetic_real,
    check_potential,
    expectation_energy,
    grid_axes,
    kinetic_half_spectrum,
    orthonormalise,
    overlaps,
    rayleigh_ritz,
    refine_eigenstates,
)

DEFAULT_TOL = 1e-9  # energy change per check under which ``converged`` is set when tol is None
EDGE_WARNING = 1e-6  # ground-state density on the box faces, relative to its peak, worth a warning


@dataclass
class GroundStates:
    """The result of ``imaginary_time``; T is the number of checks."""

    energies: torch.Tensor  # (B, S) Rayleigh-Ritz energies with the exact grid H, ascending
    wavefunctions: torch.Tensor  # (B, S, *points) the Ritz vectors, sum psi_i psi_j h^d = delta
    densities: torch.Tensor  # (B, S, *points) psi^2
    trace_tau: torch.Tensor  # (T,)
    trace_energy: torch.Tensor  # (B, S, T)
    converged: torch.Tensor  # (B,) bool: every energy changed by < tol over the last check
    edge_density: torch.Tensor  # (B,) max ground-state density on the box faces / its peak
    splitting_energies: torch.Tensor  # (B, S) of the Strang propagator: O(dtau^2) biased
    residuals: torch.Tensor  # (B, S) ||H psi_i - E_i psi_i|| with the exact grid H
    steps: int  # steps taken (fewer than asked when tol stopped the run)
    snapshots: list[tuple[float, torch.Tensor]] = field(default_factory=list)  # (tau, (B, *pts))

    @property
    def edge_warning(self) -> torch.Tensor:
        """(B,) bool: the box cuts off a ground-state density above EDGE_WARNING of its peak."""
        return self.edge_density > EDGE_WARNING


@dataclass
class RealTimeResult:
    """The result of ``real_time``: T saves, every save_every steps, t = 0 and the end included."""

    times: torch.Tensor  # (T,)
    norms: torch.Tensor  # (B, T) sum |psi|^2 h^d
    energies: torch.Tensor  # (B, T) <psi|H|psi> / <psi|psi>
    wavefunction: torch.Tensor  # (B, *points) complex, at the end
    snapshots: list[tuple[float, torch.Tensor]] = field(default_factory=list)  # (t, (B, *pts))


def _check_step(name: str, value: float, steps: int) -> None:
    if not (math.isfinite(value) and value > 0):
        raise LandscapeError(f"the time step {name} = {value} is not positive",
                             f"give {name} > 0 (about 0.01 for potentials of order 1)")
    if steps < 1:
        raise LandscapeError(f"steps = {steps}: nothing to evolve", "give steps >= 1")


def _marks(steps: int, every: int, count: int) -> tuple[set[int], set[int]]:
    """The steps after which the evolution stops: the checks (every ``every`` steps and the
    last) and ``count`` snapshots evenly over the run."""
    checks = set(range(every, steps + 1, every)) | {steps}
    snaps = {round(i * steps / count) for i in range(1, count + 1)} if count else set()
    return checks, snaps - {0}


def _edge_density(density: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """max of density (B, *points) over the 2d faces of the box, over its max: shape (B,)."""
    faces = []
    for axis in grid_axes(grid):
        faces.append(density.select(axis, 0).reshape(density.shape[0], -1))
        faces.append(density.select(axis, -1).reshape(density.shape[0], -1))
    return torch.cat(faces, 1).amax(1) / density.flatten(1).amax(1)


def _initial_states(psi0: torch.Tensor | None, batch: int, states: int, grid: GridSpec,
                    seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    shape = (batch, states, *grid.points)
    if psi0 is None:
        # white noise overlaps every eigenstate; its high-k part dies within a few steps
        noise = RandomStreams(seed, device).normal((batch, states * math.prod(grid.points)), dtype)
        return noise.reshape(shape)
    if psi0.is_complex():
        raise LandscapeError("the initial wavefunction of imaginary time is complex",
                             "give a real psi0: the eigenstates of a real H are real")
    psi = psi0.to(device=device, dtype=dtype)
    if psi.dim() == grid.dim + 1 and states == 1:
        psi = psi.unsqueeze(1)
    if tuple(psi.shape) != shape:
        raise LandscapeError(f"psi0 has shape {tuple(psi0.shape)}, expected {shape}",
                             "give one initial wavefunction per potential and state")
    if not bool(torch.isfinite(psi).all()):
        raise LandscapeError("the initial wavefunction psi0 is not finite everywhere",
                             "give a finite psi0")
    if bool((psi.flatten(2).abs().amax(2) == 0).any()):
        raise LandscapeError("an initial wavefunction psi0 is zero everywhere",
                             "give each state a nonzero psi0")
    return psi


def _not_finite(what: str, step: int, hint: str) -> LandscapeError:
    return LandscapeError(f"the wavefunction became non-finite at step {step} of {what}", hint)


def imaginary_time(potential: torch.Tensor, grid: GridSpec, D: float, dtau: float, steps: int,
                   states: int = 1, tol: float | None = None, check_every: int = 50,
                   psi0: torch.Tensor | None = None, snapshots: int = 0, seed: int = 0,
                   refine: int = 0) -> GroundStates:  # fmt: skip
    """Relax ``states`` wavefunctions per potential (B, *points) to the lowest eigenstates of
    H = -D laplacian + f by Strang steps of dtau in imaginary time, orthonormalising after each
    step; every ``check_every`` steps the energies are Rayleigh-Ritz values of the exact grid H,
    and the run stops early once every energy of every potential moved by < ``tol`` over a
    check. ``psi0`` (B, S, *points) or (B, *points) for S = 1, real; default: white noise from
    RandomStreams(seed). ``snapshots`` ground-state densities are kept, evenly over the run.
    ``refine`` > 0: that many LOBPCG iterations on the exact grid H after the evolution, which
    remove the time-step distortion of psi (``energies`` are then the refined ones;
    ``residuals`` says how far they are from eigenpairs of the grid H; ~20 reach round-off).
    With tol None all steps run and ``converged`` uses DEFAULT_TOL."""
    check_potential(potential, grid)
    _check_step("dtau", dtau, steps)
    n_points = math.prod(grid.points)
    if not 1 <= states <= n_points:
        raise LandscapeError(f"states = {states} on a grid of {n_points} points",
                             f"ask for between 1 and {n_points} states")
    if check_every < 1:
        raise LandscapeError(f"check_every = {check_every}", "give check_every >= 1")
    device, dtype = potential.device, potential.dtype
    batch = potential.shape[0]
    # shifting f by its minimum only rescales psi (removed by the normalisation) and keeps every
    # factor <= 1, so nothing overflows
    # (points where dtau (f - min f) > ~1400 get a factor 0: psi vanishes there, as it should)
    lowest = potential.flatten(1).amin(1)
    shifted = (potential - lowest.view(-1, *[1] * grid.dim)).unsqueeze(1)
    kick_half = torch.exp(-0.5 * dtau * shifted)
    kick = kick_half * kick_half
    kinetic = kinetic_half_spectrum(grid, D, device, dtype)
    drift = torch.exp(-dtau * kinetic)

    psi = orthonormalise(_initial_states(psi0, batch, states, grid, seed, device, dtype), grid)
    energies, psi = rayleigh_ritz(psi, potential, kinetic, grid)
    taus, trace = [0.0], [energies]
    kept = [(0.0, (psi[:, 0] ** 2).clone())] if snapshots else []
    check_marks, snapshot_marks = _marks(steps, check_every, snapshots)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    done = 0
    threshold = DEFAULT_TOL if tol is None else tol
    for mark in sorted(check_marks | snapshot_marks):
        psi = psi * kick_half
        for i in range(done, mark):
            psi = apply_kinetic_real(psi, drift, grid) * (kick if i < mark - 1 else kick_half)
            psi = orthonormalise(psi, grid)
        done = mark
        if mark in snapshot_marks:
            kept.append((done * dtau, (psi[:, 0] ** 2).clone()))
        if mark not in check_marks:
            continue
        if not bool(torch.isfinite(psi).all()):
            raise _not_finite("imaginary time", done,
                              f"lower dtau (now {dtau}) or check the potential for huge values")
        new, psi = rayleigh_ritz(psi, potential, kinetic, grid)
        converged = (new - trace[-1]).abs().amax(1) < threshold
        taus.append(done * dtau)
        trace.append(new)
        if tol is not None and bool(converged.all()):
            break

    split = _splitting_energies(psi, kick_half, drift, dtau, grid) + lowest.unsqueeze(1)
    energies, psi, residuals = refine_eigenstates(psi, potential, kinetic, grid, refine)
    if not bool(torch.isfinite(energies).all()):
        raise _not_finite("the refinement", done, "lower refine, or check the potential")
    density = psi * psi
    return GroundStates(energies=energies, wavefunctions=psi, densities=density,
                        trace_tau=torch.tensor(taus, device=device, dtype=dtype),
                        trace_energy=torch.stack(trace, -1), converged=converged,
                        edge_density=_edge_density(density[:, 0], grid),
                        splitting_energies=split, residuals=residuals, steps=done,
                        snapshots=kept)  # fmt: skip


def _splitting_energies(psi: torch.Tensor, kick_half: torch.Tensor, drift: torch.Tensor,
                        dtau: float, grid: GridSpec) -> torch.Tensor:  # fmt: skip
    """-log(eigenvalues)/dtau of the Strang propagator U (symmetric, positive) in the span of
    psi, for f shifted to min f = 0: the energies that the split evolution itself converges to,
    O(dtau^2) away from those of H."""
    u_psi = kick_half * apply_kinetic_real(kick_half * psi, drift, grid)
    u_sub = overlaps(psi, u_psi, grid)
    values = torch.linalg.eigvalsh(0.5 * (u_sub + u_sub.transpose(1, 2)))
    return -torch.log(values.flip(-1)) / dtau


def real_time(psi0: torch.Tensor, potential: torch.Tensor, grid: GridSpec, D: float, dt: float,
              steps: int, save_every: int = 1, snapshots: int = 0) -> RealTimeResult:
    """Evolve complex psi0 (B, *points) under i d psi/dt = H psi by Strang steps of dt (each
    factor unitary: the norm is conserved to round-off; the energy of the exact grid H to
    O(dt^2)). Norm and energy are saved every ``save_every`` steps; ``snapshots`` densities
    (B, *points) are kept at evenly spaced saves."""
    check_potential(potential, grid)
    _check_step("dt", dt, steps)
    if save_every < 1:
        raise LandscapeError(f"save_every = {save_every}", "give save_every >= 1")
    device = potential.device
    cdtype = torch.complex128 if potential.dtype == torch.float64 else torch.complex64
    if tuple(psi0.shape) != tuple(potential.shape):
        raise LandscapeError(f"psi0 has shape {tuple(psi0.shape)}, the potential "
                             f"{tuple(potential.shape)}", "give one wavefunction per potential")
    psi = psi0.to(device=device, dtype=cdtype)
    if not bool(torch.isfinite(torch.view_as_real(psi)).all()):
        raise LandscapeError("the initial wavefunction is not finite everywhere",
                             "give a finite psi0")
    kinetic = grid.wavenumbers_squared(device, potential.dtype) * D
    kick_half = torch.polar(torch.ones_like(potential), -0.5 * dt * potential)
    kick = kick_half * kick_half
    drift = torch.polar(torch.ones_like(kinetic), -dt * kinetic)
    axes = grid_axes(grid)

    def measure() -> tuple[torch.Tensor, torch.Tensor]:
        norm = (psi.conj() * psi).real.sum(axes) * grid.cell_volume
        return norm, expectation_energy(psi, potential, kinetic, grid)

    saves = sorted(set(range(save_every, steps + 1, save_every)) | {steps})
    keep = ({saves[round(i * (len(saves) - 1) / max(snapshots - 1, 1))]
             for i in range(snapshots)} if snapshots and saves else set())  # fmt: skip
    times, norms, energies = [0.0], *[[v] for v in measure()]
    kept = [(0.0, (psi.conj() * psi).real)] if snapshots else []
    done = 0
    for mark in saves:
        psi = psi * kick_half
        for i in range(done, mark):
            psi = apply_kinetic_complex(psi, drift, grid) * (kick if i < mark - 1 else kick_half)
        done = mark
        norm, energy = measure()
        times.append(done * dt)
        norms.append(norm)
        energies.append(energy)
        if mark in keep:
            kept.append((done * dt, (psi.conj() * psi).real))
    # every factor has modulus 1, so only a non-finite input could get here
    if not bool(torch.isfinite(torch.stack(norms)).all()):
        raise _not_finite("real time", done, f"lower dt (now {dt})")
    return RealTimeResult(times=torch.tensor(times, device=device, dtype=potential.dtype),
                          norms=torch.stack(norms, 1), energies=torch.stack(energies, 1),
                          wavefunction=psi, snapshots=kept)  # fmt: skip


def richardson(spacings: Sequence[float], energies: Sequence[float], order: int = 2,
               step: int = 1) -> tuple[float, float, list[tuple[float, ...]]]:
    """Extrapolate E(h) to h = 0 assuming E(h) = E0 + c_0 h^p + c_1 h^(p+q) + c_2 h^(p+2q) + ...
    (p = ``order``, q = ``step``; q = p is the classic polynomial in h^p). Through j + 1
    consecutive grids the j leading terms are solved for exactly. Rows (coarse to fine) hold
    (h_i, E_i, then the extrapolations through grids i-1..i, i-2..i, ...). Returns the one
    through all grids, an error estimate (its distance to the one with a term fewer through the
    finest grids) and the rows. Needs >= 3 grids of different spacings.

    A Coulomb cusp sampled on the cell-centred grid (hydrogen) has E = E0 + c h^2 + c' h^3 +
    c'' h^4 + ...: order 2, step 1 (see tests/landscape/test_schrodinger_slow.py)."""
    if len(spacings) != len(energies) or len(spacings) < 3:
        raise LandscapeError(f"Richardson extrapolation got {len(spacings)} spacings and "
                             f"{len(energies)} energies", "give at least three grids")
    if order < 1 or step < 1:
        raise LandscapeError(f"Richardson order {order}, step {step}", "give order, step >= 1")
    pairs = sorted(zip(spacings, energies, strict=True), reverse=True)  # coarse to fine
    hs = torch.tensor([h for h, _ in pairs], dtype=torch.float64, device="cpu")
    es = torch.tensor([e for _, e in pairs], dtype=torch.float64, device="cpu")
    if len(set(hs.tolist())) != len(hs) or bool((hs <= 0).any()):
        raise LandscapeError(f"the spacings {list(spacings)} repeat or are not positive",
                             "give grids of different, positive spacings")
    rows = []
    for i in range(len(pairs)):
        row = [float(hs[i]), float(es[i])]
        for j in range(1, i + 1):
            h = hs[i - j:i + 1]
            powers = order + step * torch.arange(j, dtype=torch.float64, device="cpu")
            system = torch.cat([torch.ones(j + 1, 1, dtype=torch.float64, device="cpu"),
                                h[:, None] ** powers[None]], 1)  # fmt: skip
            row.append(float(torch.linalg.solve(system, es[i - j:i + 1])[0]))
        rows.append(tuple(row))
    best = rows[-1][-1]
    return best, abs(best - rows[-1][-2]), rows


def plot_densities(path: str | Path, grid: GridSpec,
                   snapshots: Sequence[tuple[float, torch.Tensor]], member: int = 0,
                   time_label: str = "tau") -> Path:
    """A PNG of the density snapshots (time, (B, *points)) of batch member ``member``: 1D curves
    against x coloured by time; 2D images; 3D images of the density integrated over the last
    axis. At most six panels in 2D/3D (evenly chosen). ``time_label``: "tau" or "t"."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if not snapshots:
        raise LandscapeError("no density snapshots to plot", "run with snapshots > 0")
    axes = [a.cpu().numpy() for a in grid.axes("cpu")]
    if grid.dim == 1:
        fig = Figure(figsize=(6.5, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        colours = matplotlib.colormaps["viridis"]
        for i, (tau, density) in enumerate(snapshots):
            ax.plot(axes[0], density[member].cpu().numpy(), lw=0.9,
                    color=colours(i / max(len(snapshots) - 1, 1)), label=f"{time_label} = {tau:.3g}")
        ax.set_xlabel("x")
        ax.set_ylabel("|psi|^2")
        ax.legend(fontsize=7)
    else:
        chosen = sorted({round(i * (len(snapshots) - 1) / 5) for i in range(6)})
        picks = [snapshots[i] for i in chosen]
        fig = Figure(figsize=(3 * len(picks), 3.2))
        FigureCanvasAgg(fig)
        extent = (grid.lower[1], grid.upper[1], grid.lower[0], grid.upper[0])
        for i, (tau, density) in enumerate(picks):
            image = density[member]
            if grid.dim == 3:
                image = image.sum(-1) * grid.spacing[2]
            ax = fig.add_subplot(1, len(picks), i + 1)
            ax.imshow(image.cpu().numpy(), origin="lower", extent=extent, aspect="auto")
            ax.set_title(f"{time_label} = {tau:.3g}", fontsize=9)
            ax.set_xlabel("x2")
            ax.set_ylabel("x1")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path
