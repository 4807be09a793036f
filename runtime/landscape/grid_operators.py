"""The Hamiltonian H = -D laplacian + f(x) on a GridSpec's periodic, cell-centred grid, with the
spectral (Fourier) kinetic energy D |k|^2, and the checks of its inputs.

Shapes: a potential is (B, *points) (B potentials at once); wavefunctions are (B, S, *points)
(S states per potential) or (B, *points); the FFTs run over the last ``d`` axes. The same
discrete operator is applied matrix-free (FFT) by the evolution and built densely by
``grid_hamiltonian_spectrum`` for validation, so the two agree to round-off.
"""

from __future__ import annotations

import math

import torch

from .errors import LandscapeError
from .grid import GridSpec

MIN_POINTS = 8  # per axis: fewer cannot hold a wavefunction and its decay
DENSE_LIMIT = 4096  # grid points of the dense Hamiltonian (a 4096^2 float64 matrix: 134 MB)


def grid_axes(grid: GridSpec) -> tuple[int, ...]:
    """The tensor axes of the grid: the last ``d``."""
    return tuple(range(-grid.dim, 0))


def check_grid(grid: GridSpec) -> None:
    """A box with upper > lower and at least MIN_POINTS points on every axis."""
    for a, (lo, up, n) in enumerate(zip(grid.lower, grid.upper, grid.points, strict=True)):
        if not up > lo:
            raise LandscapeError(f"axis {a} of the box has upper {up} <= lower {lo}",
                                 "give each axis a lower bound below its upper bound")
        if n < MIN_POINTS:
            raise LandscapeError(f"axis {a} of the grid has {n} points, fewer than {MIN_POINTS}",
                                 "use at least 8 points per axis (a power of two, 64 or more, "
                                 "resolves most wavefunctions)")


def check_potential(potential: torch.Tensor, grid: GridSpec) -> None:
    """A potential of shape (B, *points), finite at every grid point: otherwise the error names
    the coordinates of the first bad point."""
    check_grid(grid)
    if potential.dim() != grid.dim + 1 or tuple(potential.shape[1:]) != tuple(grid.points):
        raise LandscapeError(f"the potential has shape {tuple(potential.shape)}, the grid needs "
                             f"(B, {', '.join(map(str, grid.points))})",
                             "evaluate the potential on the grid's coordinates, batch axis first")
    bad = ~torch.isfinite(potential)
    if bool(bad.any()):
        first = [int(i) for i in torch.nonzero(bad)[0].tolist()]
        b, index = first[0], first[1:]
        x = [lo + (j + 0.5) * h for lo, j, h in zip(grid.lower, index, grid.spacing, strict=True)]
        where = ", ".join(f"{c:.6g}" for c in x)
        value = float(potential[tuple(first)])
        raise LandscapeError(f"the potential is {value} at x = ({where}) (grid index {index}, "
                             f"potential {b} of the batch)",
                             "a potential must be finite on every grid point: move or soften "
                             "the singularity, or shift the box so that no cell centre "
                             "x_j = lower + (j + 1/2) h falls on it")


def kinetic_half_spectrum(grid: GridSpec, D: float, device: torch.device | str,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """D |k|^2 on the modes of ``torch.fft.rfftn`` (last axis halved): shape
    (*points[:-1], points[-1] // 2 + 1). The Nyquist mode of an even axis has k^2 = (pi/h)^2,
    as in the full spectrum, so the operator is the same real symmetric matrix."""
    ks = [2 * math.pi * torch.fft.fftfreq(n, d=h, device=device, dtype=dtype)
          for n, h in zip(grid.points[:-1], grid.spacing[:-1], strict=True)]  # fmt: skip
    ks.append(2 * math.pi * torch.fft.rfftfreq(grid.points[-1], d=grid.spacing[-1],
                                               device=device, dtype=dtype))  # fmt: skip
    mesh = torch.meshgrid(*ks, indexing="ij")
    return D * sum(k * k for k in mesh)


def apply_kinetic_real(psi: torch.Tensor, kinetic_half: torch.Tensor,
                       grid: GridSpec) -> torch.Tensor:  # fmt: skip
    """-D laplacian psi for real psi (..., *points), spectrally; ``kinetic_half`` may also be a
    propagator factor exp(-dtau D k^2) on the same modes."""
    axes = grid_axes(grid)
    return torch.fft.irfftn(kinetic_half * torch.fft.rfftn(psi, dim=axes), s=grid.points,
                            dim=axes)  # fmt: skip


def apply_kinetic_complex(psi: torch.Tensor, kinetic_full: torch.Tensor,
                          grid: GridSpec) -> torch.Tensor:  # fmt: skip
    """The same for complex psi; ``kinetic_full`` has shape (*points)."""
    axes = grid_axes(grid)
    return torch.fft.ifftn(kinetic_full * torch.fft.fftn(psi, dim=axes), dim=axes)


def overlaps(bra: torch.Tensor, ket: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """<bra_i|ket_j> = sum conj(bra_i) ket_j h^d for (B, S, *points) tensors: shape (B, S, S)."""
    a = bra.flatten(2)
    b = ket.flatten(2)
    return torch.einsum("bin,bjn->bij", a.conj(), b) * grid.cell_volume


def orthonormalise(psi: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """Real states (B, S, *points) made orthonormal (sum psi_i psi_j h^d = delta_ij) by a QR
    factorisation; the span of the first j states is kept for every j (subspace iteration)."""
    if psi.shape[1] == 1:
        norm = (psi * psi).sum(grid_axes(grid), keepdim=True) * grid.cell_volume
        return psi / norm.sqrt()
    flat = psi.flatten(2).transpose(1, 2)  # (B, N, S)
    q, _ = torch.linalg.qr(flat)
    return (q.transpose(1, 2) / math.sqrt(grid.cell_volume)).reshape(psi.shape)


def rayleigh_ritz(psi: torch.Tensor, potential: torch.Tensor, kinetic_half: torch.Tensor,
                  grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Diagonalise H in the span of the orthonormal real states psi (B, S, *points): returns the
    Ritz energies (B, S) in ascending order and the Ritz vectors (B, S, *points). With the exact
    discrete H (spectral kinetic) they are upper bounds of the grid's eigenvalues."""
    h_psi = apply_kinetic_real(psi, kinetic_half, grid) + potential.unsqueeze(1) * psi
    h_sub = overlaps(psi, h_psi, grid)
    energies, vectors = torch.linalg.eigh(0.5 * (h_sub + h_sub.transpose(1, 2)))
    rotated = torch.einsum("bji,bjn->bin", vectors, psi.flatten(2)).reshape(psi.shape)
    return energies, rotated


def expectation_energy(psi: torch.Tensor, potential: torch.Tensor, kinetic_full: torch.Tensor,
                       grid: GridSpec) -> torch.Tensor:  # fmt: skip
    """<psi|H|psi> / <psi|psi> for complex psi (B, *points): shape (B,)."""
    axes = grid_axes(grid)
    h_psi = apply_kinetic_complex(psi, kinetic_full, grid) + potential * psi
    return (psi.conj() * h_psi).real.sum(axes) / (psi.conj() * psi).real.sum(axes)


def dense_hamiltonian(potential: torch.Tensor, grid: GridSpec, D: float) -> torch.Tensor:
    """H = D |k|^2 (in real space: a sum of circulant matrices, one per axis) + diag(f): shape
    (B, N, N) with N = prod(points), rows in C order of the grid indices."""
    device, dtype = potential.device, potential.dtype
    kinetic = torch.zeros((), device=device, dtype=dtype)
    for a, (n, h) in enumerate(zip(grid.points, grid.spacing, strict=True)):
        k = 2 * math.pi * torch.fft.fftfreq(n, d=h, device=device, dtype=dtype)
        eye = torch.eye(n, device=device, dtype=dtype)
        axis = torch.fft.ifft(D * (k * k)[:, None] * torch.fft.fft(eye, dim=0), dim=0).real.contiguous()
        before = math.prod(grid.points[:a])
        after = math.prod(grid.points[a + 1:])
        term = torch.kron(torch.kron(torch.eye(before, device=device, dtype=dtype), axis),
                          torch.eye(after, device=device, dtype=dtype))  # fmt: skip
        kinetic = kinetic + term
    return kinetic + torch.diag_embed(potential.flatten(1))


def grid_hamiltonian_spectrum(potential: torch.Tensor, grid: GridSpec, D: float,
                              k: int) -> torch.Tensor:  # fmt: skip
    """The k lowest eigenvalues (B, k) of the discrete H that the evolution applies, by dense
    diagonalisation (torch.linalg.eigvalsh): a validation for grids of <= 4096 points."""
    check_potential(potential, grid)
    n = math.prod(grid.points)
    if n > DENSE_LIMIT:
        raise LandscapeError(f"the dense Hamiltonian of {n} grid points is too large "
                             f"(limit {DENSE_LIMIT})",
                             "diagonalise a coarser grid, or use imaginary_time")
    if not 1 <= k <= n:
        raise LandscapeError(f"asked for {k} eigenvalues of a {n}-point grid",
                             f"ask for between 1 and {n}")
    return torch.linalg.eigvalsh(dense_hamiltonian(potential, grid, D))[:, :k]


def _project_out(w: torch.Tensor, psi: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """w minus its components along the orthonormal states psi (B, S, *points)."""
    along = torch.einsum("bij,bjn->bin", overlaps(psi, w, grid).transpose(1, 2), psi.flatten(2))
    return w - along.reshape(w.shape)


def refine_eigenstates(psi: torch.Tensor, potential: torch.Tensor, kinetic_half: torch.Tensor,
                       grid: GridSpec, iterations: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """LOBPCG on the exact grid H from orthonormal real states psi (B, S, *points): each
    iteration diagonalises H on the span of the states, their preconditioned residuals
    (D k^2 + sigma)^-1 (H psi - E psi) and the previous update, and keeps the S lowest Ritz
    vectors. It removes what the split propagator leaves in psi (its O(dtau^2) distortion
    where f is steep or singular). Returns the Ritz energies (B, S), the states and the
    residual norms ||H psi_i - E_i psi_i|| (B, S)."""
    energies, psi = rayleigh_ritz(psi, potential, kinetic_half, grid)
    states = psi.shape[1]
    expand = (...,) + (None,) * grid.dim
    # sigma > 0 keeps the preconditioner positive; ~ the kinetic scale of the lowest states
    sigma = energies.abs().amax().clamp(min=1.0)
    preconditioner = 1.0 / (kinetic_half + sigma)
    previous = None
    for step in range(iterations + 1):
        h_psi = apply_kinetic_real(psi, kinetic_half, grid) + potential.unsqueeze(1) * psi
        r = h_psi - energies[expand] * psi
        residual = (r * r).sum(grid_axes(grid)).mul(grid.cell_volume).sqrt()
        if step == iterations:
            break
        w = _project_out(apply_kinetic_real(r, preconditioner, grid), psi, grid)
        blocks = [psi, w] if previous is None else [psi, w, previous]
        # QR keeps span(psi) in the first S columns, so the update is the part outside it
        basis = orthonormalise(torch.cat(blocks, 1), grid)
        values, vectors = rayleigh_ritz(basis, potential, kinetic_half, grid)
        new = vectors[:, :states]
        previous = _project_out(new, psi, grid)
        energies, psi = values[:, :states], new
    return energies, psi, residual
