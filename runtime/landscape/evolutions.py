"""One unit of each evolution of a landscape task: the engine run on the model's potential and
the rows it writes; the extrapolations over units (the plots: ``plots.py``).

Every function ``METHOD(plan, cms, sub, streams, device, seed)`` returns (rows, artefacts): the
grid evolutions (``BATCHED``) take the compiled models of every scan point and run their
potentials as one batch (rows name their member ``_b``), the walkers one model; ``sub`` is the
unit's value of a list-valued option (``points``, ``dtau`` or ``walkers``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physml_lang.diagnostics import Diagnostic, PhysmlError

from ..plans.landscape import LandscapePlan
from ..random import RandomStreams
from .dmc import diffusion_monte_carlo
from .dmc_analysis import extrapolate_population, extrapolate_timestep
from .errors import LandscapeError
from .fokker_planck import fokker_planck as fokker_planck_engine
from .fokker_planck import fokker_planck_max_dtau, taylor_stability
from .fokker_planck import taylor_diffusion as taylor_engine
from .grid import GridSpec
from .grid_operators import grid_hamiltonian_spectrum, overlaps
from .langevin import histogram_chi2, langevin_walkers
from .schrodinger import imaginary_time as imaginary_time_engine
from .schrodinger import real_time as real_time_engine
from .schrodinger import richardson

F64 = torch.float64
EXACT_POINTS = 2048  # grids up to this many points also diagonalise H exactly (the exact column)


BATCHED = ("imaginary_time", "real_time", "fokker_planck", "taylor_diffusion")


@dataclass
class Artefact:
    """Plot data of one unit: ``kind`` (densities, softmax, walkers, dmc, trace), a label,
    the data, the grid of densities and which batch ``member`` they show (the task sets the
    scan ``point`` it belongs to)."""

    kind: str
    label: str
    data: Any
    grid: GridSpec | None = None
    member: int = 0
    point: int = 0


def _grid(cm, n: int) -> GridSpec:
    d = max(cm.n, 1)
    return GridSpec((cm.lower,) * d, (cm.upper,) * d, (n,) * d)


def _on_grid(cms: list, grid: GridSpec, device) -> torch.Tensor:
    """The potentials of a batch of models on the grid's points: (B, *points)."""
    x = grid.coordinates(device, F64).reshape(-1, grid.dim)
    return torch.stack([cm.potential(x).reshape(grid.points) for cm in cms])


def _sub(plan: LandscapePlan, sub: dict, name: str):
    return sub.get(name, getattr(plan.options, name))


def _batch_grid(plan: LandscapePlan, cms: list, sub: dict, device
                ) -> tuple[int, GridSpec, torch.Tensor]:  # fmt: skip
    """The grid size of the unit, the grid (every model of a batch has the same box: the scan
    changes couplings, not the box) and the potentials (B, *points)."""
    n = _sub(plan, sub, "points")
    grid = _grid(cms[0], n)
    for cm in cms[1:]:
        if (cm.lower, cm.upper, cm.n) != (cms[0].lower, cms[0].upper, cms[0].n):
            raise LandscapeError("the scan changes the box or the number of coordinates; a "
                                 "grid run scans potentials on one grid",
                                 "scan parameters of the potential, not of the box")  # fmt: skip
    return n, grid, _on_grid(cms, grid, device)


def _densities(res_snapshots, grid: GridSpec, n: int, B: int) -> list[Artefact]:
    return [Artefact("densities", f"{n} points", res_snapshots, grid, member=b)
            for b in range(B)] if res_snapshots else []  # fmt: skip


# ---------------------------------------------------------------- Schrodinger


def imaginary_time(plan: LandscapePlan, cms: list, sub: dict, streams: RandomStreams, device,
                   seed: int) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """The lowest ``states`` levels of every potential of the batch on one grid, in one batched
    evolution (and the exact levels of the same grid H where it is small enough to
    diagonalise); with ``levels``, the seed's softmax of eq. (23)."""
    o = plan.options
    n, grid, V = _batch_grid(plan, cms, sub, device)
    B = V.shape[0]
    states = max(o.states, o.levels)
    res = imaginary_time_engine(V, grid, o.D, o.dtau, o.steps, states=states, tol=o.tol or None,
                                snapshots=o.snapshots, seed=seed, refine=o.refine)  # fmt: skip
    exact = None
    if math.prod(grid.points) <= EXACT_POINTS:
        exact = grid_hamiltonian_spectrum(V, grid, o.D, states).tolist()
    rows = []
    for b in range(B):
        for k in range(o.states):
            residual = float(res.residuals[b, k])
            row = {"_b": b, "method": "imaginary_time", "points": n, "spacing": grid.spacing[0],
                   "state": k, "energy": float(res.energies[b, k]),
                   # a final eigensolver converges what the time evolution left (its residual)
                   "converged": bool(res.converged[b]) or residual < 1e-8,
                   "steps_run": int(res.steps), "edge_density": float(res.edge_density[b]),
                   "residual": residual}  # fmt: skip
            if exact is not None:
                row["exact"] = exact[b][k]
            rows.append(row)
    arts = _densities(res.snapshots, grid, n, B)
    if o.levels:
        for b in range(B):
            softmax = level_weights(res, V, grid, o, seed, b)
            rows[b * o.states]["softmax_deviation"] = softmax["max_deviation"]
            arts.append(Artefact("softmax", f"{n} points", softmax, grid, member=b))
    return rows, arts


def level_weights(res, V: torch.Tensor, grid: GridSpec, o, seed: int, b: int = 0) -> dict:
    """The seed's eqs. (21)-(23) for batch member ``b``: the equal superposition
    psi(0) = sum_k phi_k of the lowest ``levels`` eigenstates evolved by the split-operator
    propagator; the weight of level k, P_k(tau) = c_k(tau) / sum_j c_j(tau),
    c_k = <phi_k|psi(tau)>, against the time-dependent softmax exp(-E_k tau) / sum_j
    exp(-E_j tau)."""
    L = o.levels
    phi = res.wavefunctions[b, :L]  # (L, *points), orthonormal
    E = res.energies[b, :L].double()
    psi0 = phi.sum(0, keepdim=True)
    Vb = V[b:b + 1]
    gap = float(E[-1] - E[0])
    taus = np.linspace(0.0, 4.0 / max(gap, 1e-12), 9)[1:]
    weights, softmax, tau_run = [], [], []
    for tau in taus:
        steps = max(1, round(tau / o.dtau))
        out = imaginary_time_engine(Vb, grid, o.D, o.dtau, steps, states=1, tol=None, psi0=psi0,
                                    seed=seed)  # fmt: skip
        psi = out.wavefunctions[0, 0]
        c = overlaps(phi.unsqueeze(0), psi.reshape(1, 1, *grid.points), grid).reshape(-1)
        t = steps * o.dtau
        weights.append((c / c.sum()).tolist())
        softmax.append(torch.softmax(-E * t, 0).tolist())
        tau_run.append(t)
    dev = float(np.max(np.abs(np.array(weights) - np.array(softmax))))
    return {"tau": tau_run, "energies": E.tolist(), "weights": weights, "softmax": softmax,
            "max_deviation": dev}  # fmt: skip


def _packet(grid: GridSpec, o, device) -> torch.Tensor:
    """A normalised Gaussian packet (*points) of width ``o.width`` at ``o.center`` with mean
    momentum ``o.momentum``."""
    x = grid.coordinates(device, F64)  # (*points, d)
    d = grid.dim
    c = torch.tensor(o.center if isinstance(o.center, list) else [o.center] * d, dtype=F64,
                     device=device)  # fmt: skip
    k = torch.tensor(o.momentum if isinstance(o.momentum, list) else [o.momentum] * d,
                     dtype=F64, device=device)  # fmt: skip
    psi = torch.polar(torch.exp(-((x - c) ** 2).sum(-1) / (4 * o.width**2)), (x * k).sum(-1))
    return psi / torch.sqrt((psi.abs() ** 2).sum() * grid.cell_volume)


def real_time(plan: LandscapePlan, cms: list, sub: dict, streams: RandomStreams, device,
              seed: int) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """A Gaussian packet in real time in every potential of the batch: its energy, and the
    drifts of norm and energy."""
    o = plan.options
    n, grid, V = _batch_grid(plan, cms, sub, device)
    B = V.shape[0]
    psi0 = _packet(grid, o, device).expand(B, *grid.points).clone()
    res = real_time_engine(psi0, V, grid, o.D, o.dt, o.steps, save_every=max(1, o.steps // 200),
                           snapshots=o.snapshots)  # fmt: skip
    rows = []
    for b in range(B):
        norms, energies = res.norms[b].double(), res.energies[b].double()
        e0 = float(energies[0])
        rows.append({"_b": b, "method": "real_time", "points": n, "spacing": grid.spacing[0],
                     "energy": e0, "steps_run": o.steps,
                     "norm_drift": float((norms - norms[0]).abs().max()),
                     "energy_drift": float((energies - e0).abs().max() / max(abs(e0), 1e-300))
                     })  # fmt: skip
    return rows, _densities(res.snapshots, grid, n, B)


# ---------------------------------------------------------------- Fokker-Planck and seed scheme


def fokker_planck(plan: LandscapePlan, cms: list, sub: dict, streams: RandomStreams, device,
                  seed: int) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """Relaxation of a uniform density to exp(-f/D)/Z on one grid, every potential of the
    batch at once."""
    o = plan.options
    n, grid, V = _batch_grid(plan, cms, sub, device)
    limit = fokker_planck_max_dtau(V, grid, o.D)
    if o.dtau > limit:
        raise PhysmlError(Diagnostic(
            "P426", f"dtau = {o.dtau:g} is above the explicit Fokker-Planck limit {limit:.3g} "
            f"of this grid ({n} points per axis, D = {o.D:g})", plan.span_of("dtau"),
            f"take dtau <= {limit:.3g}, or fewer points"))  # fmt: skip
    save = max(1, o.steps // max(o.snapshots, 1)) if o.snapshots else 0
    res = fokker_planck_engine(V, grid, o.D, o.dtau, o.steps, save_every=save)
    rows = []
    for b in range(V.shape[0]):
        mass = res.mass_trace[b].double()
        rows.append({"_b": b, "method": "fokker_planck", "points": n,
                     "spacing": grid.spacing[0], "steps_run": o.steps, "tau": o.steps * o.dtau,
                     "l1_to_stationary": float(res.l1_distance_trace[b, -1]),
                     "mass_drift": float((mass - 1).abs().max()),
                     "peak": _peak(res.density[b], grid)})  # fmt: skip
    return rows, _densities(_snapshots(res.times, res.snapshots), grid, n, V.shape[0])


def _snapshots(times: torch.Tensor, snaps: torch.Tensor | None) -> list:
    if snaps is None:
        return []
    return [(float(t), s) for t, s in zip(times.tolist(), snaps.unbind(0), strict=False)]


def _peak(density: torch.Tensor, grid: GridSpec) -> list[float] | float:
    """The grid point where ``density`` (*points) is largest."""
    k = int(torch.argmax(density))
    idx = np.unravel_index(k, grid.points)
    x = [grid.lower[a] + (int(i) + 0.5) * grid.spacing[a] for a, i in enumerate(idx)]
    return x[0] if len(x) == 1 else x


def taylor_diffusion(plan: LandscapePlan, cms: list, sub: dict, streams: RandomStreams, device,
                     seed: int) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """The seed's eq. (16) on one grid: where its peak goes, and how fast its norm grows."""
    o = plan.options
    n, grid, V = _batch_grid(plan, cms, sub, device)
    save = max(1, o.steps // max(o.snapshots, 1)) if o.snapshots else 0
    res = taylor_engine(V, grid, o.D, o.dtau, o.steps, save_every=save, renormalise=True)
    times = res.times.double()
    rows = []
    for b in range(V.shape[0]):
        log_norm = res.log_norm_trace[b].double()
        rate = float((log_norm[-1] - log_norm[0]) / max(float(times[-1] - times[0]), 1e-300))
        rows.append({"_b": b, "method": "taylor_diffusion", "points": n,
                     "spacing": grid.spacing[0], "steps_run": o.steps, "tau": o.steps * o.dtau,
                     "peak": float(res.argmax_trace[b, -1]),
                     "stability": taylor_stability(o.D, o.dtau, grid.spacing[0]),
                     "growth_rate": rate})  # fmt: skip
    return rows, _densities(_snapshots(res.times, res.snapshots), grid, n, V.shape[0])


# ---------------------------------------------------------------- walkers


def _start(cm, walkers: int, streams: RandomStreams, device) -> torch.Tensor:
    """Walkers uniform in the box, or N(0, 1) per coordinate without one."""
    if cm.lower is None:
        return streams.normal((walkers, cm.n), F64)
    u = streams.uniform((walkers, cm.n), F64)
    return cm.lower + (cm.upper - cm.lower) * u


def langevin(plan: LandscapePlan, cm, sub: dict, streams: RandomStreams, device, seed: int
             ) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """Overdamped Langevin walkers: <f> over the final walkers (independent), and for one or
    two bounded coordinates the chi^2 of their histogram against exp(-f/D)/Z."""
    o = plan.options
    x0 = _start(cm, o.walkers, streams.fork(0), device)
    lower = upper = None
    if cm.lower is not None:
        lower = torch.full((cm.n,), cm.lower, dtype=F64, device=device)
        upper = torch.full((cm.n,), cm.upper, dtype=F64, device=device)
    steps = o.burn_in + o.steps
    t0 = time.perf_counter()
    res = langevin_walkers(cm.force, x0, o.D, o.dtau, steps, streams.fork(1), lower, upper,
                           record_every=o.record_every, f=cm.potential, adjust=o.adjust)  # fmt: skip
    wall = time.perf_counter() - t0
    f_end = cm.potential(res.positions).double()
    W = f_end.numel()
    row = {"walkers": o.walkers, "dtau": o.dtau,
           "mean_f": {"mean": float(f_end.mean()),
                      "stderr": float(f_end.std() / math.sqrt(W)) if W > 1 else None},
           "acceptance": res.acceptance, "walker_steps_per_s": W * steps / max(wall, 1e-9),
           "chi2": None, "dof": None, "p_value": None}  # fmt: skip
    if cm.n <= 2 and cm.lower is not None:
        chi2, dof, p = histogram_chi2(res.positions, cm.potential, o.D, o.bins, cm.lower,
                                      cm.upper)  # fmt: skip
        row.update({"chi2": chi2, "dof": dof, "p_value": p,
                    "exact_mean_f": boltzmann_mean(cm, o.D, device)})
    arts = []
    if cm.n == 1 and cm.lower is not None:
        grid = GridSpec((cm.lower,), (cm.upper,), (400,))
        x = grid.coordinates(device, F64).reshape(-1, 1)
        f = cm.potential(x).double()
        density = torch.exp(-(f - f.min()) / o.D)
        density /= density.sum() * grid.cell_volume
        arts.append(Artefact("walkers", f"D = {o.D:g}", {
            "positions": res.positions.detach().reshape(-1).cpu().numpy(),
            "x": x.reshape(-1).cpu().numpy(), "density": density.cpu().numpy()}))
    return [row], arts


def boltzmann_mean(cm, D: float, device, points: int = 2001) -> float:
    """<f> under exp(-f/D)/Z on the box (1 or 2 coordinates): the trapezoid rule on a fine
    grid, the minimum of f subtracted before exponentiating."""
    axis = torch.linspace(cm.lower, cm.upper, points if cm.n == 1 else 401, dtype=F64,
                          device=device)  # fmt: skip
    x = torch.stack(torch.meshgrid(*[axis] * cm.n, indexing="ij"), -1).reshape(-1, cm.n)
    f = cm.potential(x).double()
    w = torch.exp(-(f - f.min()) / D).reshape([axis.numel()] * cm.n)
    fw = (f.reshape(w.shape) * w)
    for _ in range(cm.n):
        w, fw = torch.trapezoid(w, axis, dim=0), torch.trapezoid(fw, axis, dim=0)
    return float(fw / w)


def dmc(plan: LandscapePlan, cm, sub: dict, streams: RandomStreams, device, seed: int
        ) -> tuple[list[dict], list[Artefact]]:  # fmt: skip
    """Diffusion Monte Carlo at one dtau: the mixed and growth estimates of E0."""
    o = plan.options
    dtau, walkers = _sub(plan, sub, "dtau"), _sub(plan, sub, "walkers")
    trial = cm.trial if o.trial else None
    res = diffusion_monte_carlo(cm.potential, cm.n, walkers, dtau, o.steps, o.burn_in,
                                streams, trial=trial, D=o.D, feedback=o.feedback,
                                max_factor=o.max_factor,
                                energy_cutoff=o.energy_cutoff or None)  # fmt: skip
    row = {"dtau": dtau, "walkers": walkers, "energy": res.energy.as_dict(),
           "growth_energy": res.growth_energy.as_dict(),
           "population": float(np.mean(res.population)),
           "acceptance": res.acceptance if trial is not None else None,
           "walker_steps_per_s": res.walker_steps / max(res.walltime, 1e-9),
           "extrapolated": False}  # fmt: skip
    trace = {"population": np.asarray(res.population), "e_ref": np.asarray(res.e_ref),
             "energy": np.asarray(res.energy_trace), "dtau": dtau}  # fmt: skip
    return [row], [Artefact("dmc", f"dtau = {dtau:g}, {walkers} walkers", trace)]


# ---------------------------------------------------------------- extrapolations


def _groups(plan: LandscapePlan, rows: list[dict]) -> list[tuple[dict, list[dict]]]:
    """Rows grouped by scan point (the scan's values), in order."""
    names = [k for k in (plan.points[0].values if plan.points else {})]
    out: dict[tuple, tuple[dict, list[dict]]] = {}
    for r in rows:
        key = tuple(repr(r.get(k)) for k in names)
        out.setdefault(key, ({k: r.get(k) for k in names}, []))[1].append(r)
    return list(out.values())


def richardson_rows(plan: LandscapePlan, rows: list[dict], summary: dict) -> list[dict]:
    """Richardson extrapolation h -> 0 of every state's energy over the grids of each scan
    point: a row with ``extrapolated`` true, ``spacing`` 0 and the estimate's error."""
    o = plan.options
    out, tables = [], []
    for values, rs in _groups(plan, rows):
        for k in range(o.states):
            pts = sorted((r["spacing"], r["energy"]) for r in rs if r.get("state") == k
                         and not r.get("extrapolated"))  # fmt: skip
            if len(pts) < 3:
                continue  # Richardson needs three grids: one to test the fitted order
            hs, es = [p[0] for p in pts], [p[1] for p in pts]
            spread = max(abs(e - es[0]) for e in es)
            if spread <= 1e-9 * max(1.0, abs(es[0])):
                # converged to round-off on every grid (spectral accuracy): nothing to remove
                value, err, order, table = es[0], spread, None, [list(p) for p in pts]
            else:
                order = o.extrapolate
                value, err, table = richardson(hs, es, order=order, step=1)
            out.append({**values, "method": "imaginary_time", "points": None, "spacing": 0.0,
                        "state": k, "energy": value, "energy_error": err, "order": order,
                        "extrapolated": True})  # fmt: skip
            tables.append({**values, "state": k, "order": order, "table": table})
    summary["extrapolation"] = {"kind": "richardson", "tables": tables}
    return out


def timestep_rows(plan: LandscapePlan, rows: list[dict], summary: dict) -> list[dict]:
    """The dtau -> 0 extrapolation of the DMC energy of each scan point."""
    o = plan.options
    out, fits = [], []
    for values, rs in _groups(plan, rows):
        rs = [r for r in rs if not r.get("extrapolated")]
        dts = [r["dtau"] for r in rs]
        means = [r["energy"]["mean"] for r in rs]
        errs = [r["energy"]["stderr"] for r in rs]
        fit = extrapolate_timestep(dts, means, errs, order=o.extrapolate)
        out.append({**values, "dtau": 0.0, "walkers": o.walkers,
                    "energy": {"mean": fit.value, "stderr": fit.stderr},
                    "extrapolated": True, "bias": "time step", "order": o.extrapolate})  # fmt: skip
        fits.append({**values, "coefficients": list(fit.coefficients),
                     "chi2_per_dof": fit.chi2_per_dof, "rows": fit.rows})  # fmt: skip
    summary["extrapolation"] = {"kind": "dtau", "fits": fits}
    return out


def population_rows(plan: LandscapePlan, rows: list[dict], summary: dict) -> list[dict]:
    """The 1/N -> 0 extrapolation of the population-control bias of each scan point."""
    out, fits = [], []
    for values, rs in _groups(plan, rows):
        rs = [r for r in rs if not r.get("extrapolated")]
        fit = extrapolate_population([r["walkers"] for r in rs],
                                     [r["energy"]["mean"] for r in rs],
                                     [r["energy"]["stderr"] for r in rs])  # fmt: skip
        out.append({**values, "dtau": plan.options.dtau, "walkers": None,
                    "energy": {"mean": fit.value, "stderr": fit.stderr},
                    "extrapolated": True, "bias": "population", "order": 1})  # fmt: skip
        fits.append({**values, "coefficients": list(fit.coefficients),
                     "chi2_per_dof": fit.chi2_per_dof, "rows": fit.rows})  # fmt: skip
    summary["extrapolation"] = {"kind": "walkers", "fits": fits}
    return out


__all__ = ["BATCHED", "Artefact", "dmc", "fokker_planck", "imaginary_time", "langevin",
           "population_rows", "real_time", "richardson_rows", "taylor_diffusion",
           "timestep_rows"]
