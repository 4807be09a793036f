"""Two-band Hamiltonians h(k) = d(k) . sigma and their exact topological invariants.

1D chiral (class AIII) models h(k) = d_x sigma_x + d_y sigma_y: the winding number of
z(k) = d_x + i d_y around the origin, by the discrete phase-winding formula (the sum of wrapped
angle differences between neighbouring k, over 2 pi: an exact integer wherever the grid resolves
the curve). 2D models h(k) = d(k) . sigma on an N x N Brillouin zone: the Chern number of the
lower band by the Fukui-Hatsugai-Suzuki lattice formula (U(1) link variables, plaquette Berry
fluxes, an exact integer) and, independently, the degree of the map k -> d/|d| by signed
solid angles of the grid's triangles (Berg-Luescher).
"""

from __future__ import annotations

import math

import torch

TWO_PI = 2 * math.pi


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles mapped to (-pi, pi]."""
    return angle - TWO_PI * torch.ceil((angle - math.pi) / TWO_PI)


def winding_number(d: torch.Tensor) -> torch.Tensor:
    """Winding of the closed curve d(k) around the origin: d [B, 2, K] on a periodic k-grid ->
    [B] float (an integer when neighbouring points differ by less than pi in angle)."""
    theta = torch.atan2(d[:, 1], d[:, 0])
    step = wrap(torch.roll(theta, -1, dims=-1) - theta)
    return step.sum(-1) / TWO_PI


def max_angle_step(d: torch.Tensor) -> torch.Tensor:
    """The largest |angle difference| between neighbouring k of each curve: [B, 2, K] -> [B]."""
    theta = torch.atan2(d[:, 1], d[:, 0])
    return wrap(torch.roll(theta, -1, dims=-1) - theta).abs().amax(-1)


def k_grid(points: int, *, device, dtype=torch.float64) -> torch.Tensor:
    """k_j = 2 pi j / points, j = 0 .. points - 1."""
    return torch.arange(points, device=device, dtype=dtype) * (TWO_PI / points)


def fourier_curve(coeff: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """d(k) = sum_n a_n cos(n k) + b_n sin(n k) for each component: coeff [B, 2, 2, H + 1]
    (component, cos/sin, harmonic n = 0 .. H), k [K] -> d [B, 2, K]."""
    n = torch.arange(coeff.shape[-1], device=k.device, dtype=k.dtype)
    phase = n[:, None] * k[None, :]  # [H + 1, K]
    return coeff[:, :, 0] @ torch.cos(phase) + coeff[:, :, 1] @ torch.sin(phase)


def chiral_models(targets: torch.Tensor, harmonics: int, disorder: float,
                  gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Random Fourier coefficients [B, 2, 2, H + 1] of chiral models whose dominant term is
    z = e^{i w k} with w = targets [B] (|w| <= harmonics): the rest of z's Laurent
    coefficients are random complex numbers, their total modulus ``disorder`` times a uniform
    draw, so that the winding is w when that is below 1 (Rouche) and random around w above it."""
    b, h = targets.shape[0], harmonics
    dev, dt = targets.device, torch.float64
    # z(k) = sum_m c_m e^{imk}, m = -H .. H
    c = torch.complex(torch.randn(b, 2 * h + 1, generator=gen, device=dev, dtype=dt),
                      torch.randn(b, 2 * h + 1, generator=gen, device=dev, dtype=dt))
    scale = disorder * torch.rand(b, 1, generator=gen, device=dev, dtype=dt)
    c = c / c.abs().sum(-1, keepdim=True) * scale
    phase = TWO_PI * torch.rand(b, generator=gen, device=dev, dtype=dt)
    lead = torch.polar(torch.ones_like(phase), phase)
    c[torch.arange(b, device=dev), targets.long() + h] = lead
    # c_m e^{imk} + c_{-m} e^{-imk} = (c_m + c_{-m}) cos mk + i (c_m - c_{-m}) sin mk
    pos, neg = c[:, h:], torch.flip(c[:, : h + 1], dims=[-1])  # m = 0..H and -m = 0..-H
    cos_z = pos + neg
    cos_z[:, 0] = c[:, h]
    sin_z = 1j * (pos - neg)
    sin_z[:, 0] = 0
    coeff = torch.stack([torch.stack([cos_z.real, sin_z.real], 1),
                         torch.stack([cos_z.imag, sin_z.imag], 1)], 1)  # fmt: skip
    return coeff


# ---------------------------------------------------------------- 2D: Chern numbers


def lower_band(d: torch.Tensor) -> torch.Tensor:
    """The lower-band eigenvector of h = d . sigma: d [..., 3] -> u [..., 2] complex (any gauge:
    at each k the better-conditioned of two closed forms)."""
    n = d / d.norm(dim=-1, keepdim=True)
    nx, ny, nz = n.unbind(-1)
    nxy = torch.complex(nx, ny)
    zero = torch.zeros_like(nz)
    # (h + 1) u = 0: u = (n_x - i n_y, -(1 + n_z)) or u = (1 - n_z, -(n_x + i n_y))
    u_a = torch.stack([nxy.conj(), torch.complex(-(1 + nz), zero)], -1)
    u_b = torch.stack([torch.complex(1 - nz, zero), -nxy], -1)
    u = torch.where((nz < 0)[..., None], u_b, u_a)
    return u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)


def chern_number(d: torch.Tensor) -> torch.Tensor:
    """Fukui-Hatsugai-Suzuki Chern number of the lower band: d [B, 3, N, N] on a periodic grid
    -> [B] float (an integer: the sum of gauge-invariant plaquette fluxes in (-pi, pi])."""
    return berry_flux_sum(lower_band(d.movedim(1, -1)))


def berry_flux_sum(u: torch.Tensor) -> torch.Tensor:
    """Sum of the plaquette Berry fluxes / 2 pi of a band's states u [B, N, N, n] (any gauge)."""
    return plaquette_fluxes(u).sum((-2, -1)) / TWO_PI


def plaquette_fluxes(u: torch.Tensor) -> torch.Tensor:
    """The gauge-invariant Berry flux in (-pi, pi] of each plaquette (k, k + e_x, k + e_x + e_y,
    k + e_y) of a band's states u [B, N, N, n] -> [B, N, N]."""

    def link(axis: int) -> torch.Tensor:
        overlap = (u.conj() * torch.roll(u, -1, dims=axis)).sum(-1)
        return overlap / overlap.abs()

    u1, u2 = link(1), link(2)
    loop = u1 * torch.roll(u2, -1, dims=1) * torch.roll(u1, -1, dims=2).conj() * u2.conj()
    return torch.angle(loop)


def max_neighbour_angle(n: torch.Tensor) -> torch.Tensor:
    """The largest angle between unit vectors n [B, 3, N, N] at neighbouring k (along either
    axis or a plaquette's diagonal) -> [B]: small when the grid resolves the model."""
    shifts = (((-1,), (2,)), ((-1,), (3,)), ((-1, -1), (2, 3)))
    cos = torch.stack([(n * torch.roll(n, s, dims=a)).sum(1) for s, a in shifts], 1)
    return torch.acos(cos.clamp(-1, 1)).flatten(1).amax(-1)


def skyrmion_number(d: torch.Tensor) -> torch.Tensor:
    """Degree of k -> n = d/|d| on the torus by the signed solid angles of two triangles per
    plaquette (Berg-Luescher; an integer): d [B, 3, N, N] -> [B]."""
    n = d / d.norm(dim=1, keepdim=True)
    n00, n10 = n, torch.roll(n, -1, dims=2)
    n01, n11 = torch.roll(n, -1, dims=3), torch.roll(n, (-1, -1), dims=(2, 3))

    def solid(a, b, c) -> torch.Tensor:
        num = (a * torch.cross(b, c, dim=1)).sum(1)
        den = 1 + (a * b).sum(1) + (b * c).sum(1) + (c * a).sum(1)
        return 2 * torch.atan2(num, den)

    total = solid(n00, n10, n11) + solid(n00, n11, n01)
    return total.sum((-2, -1)) / (2 * TWO_PI)


def qwz(m: torch.Tensor, points: int, *, p: torch.Tensor | None = None,
        q: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Qi-Wu-Zhang d(k) = (sin p kx, sin q ky, m + cos p kx + cos q ky) on a points x points
    grid: m [B] (p, q [B] integer winding multipliers, default 1) -> d [B, 3, N, N]."""
    k = k_grid(points, device=m.device, dtype=m.dtype)
    ones = torch.ones_like(m)
    p = ones if p is None else p.to(m.dtype)
    q = ones if q is None else q.to(m.dtype)
    kx = p[:, None, None] * k[None, :, None]  # [B, N, 1]
    ky = q[:, None, None] * k[None, None, :]  # [B, 1, N]
    kx, ky = torch.broadcast_tensors(kx, ky)
    return torch.stack([torch.sin(kx), torch.sin(ky),
                        m[:, None, None] + torch.cos(kx) + torch.cos(ky)], 1)  # fmt: skip


def random_rotations(b: int, gen: torch.Generator, *, device, dtype=torch.float64) -> torch.Tensor:
    """Uniform random rotations of SO(3): [B, 3, 3] (QR of Gaussian matrices, det fixed to +1)."""
    a = torch.randn(b, 3, 3, generator=gen, device=device, dtype=dtype)
    qm, r = torch.linalg.qr(a)
    qm = qm * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    det = torch.linalg.det(qm)
    return qm * torch.where(det < 0, -1.0, 1.0).to(dtype)[:, None, None]


def chern_models(targets: torch.Tensor, points: int, perturbation: float,
                 gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Random two-band models near a target Chern number: QWZ at a random m with its momenta
    multiplied (C = +-p q sign-flipped by m), rotated in d-space (keeps the degree), shifted in
    k and perturbed by random Fourier terms (harmonics 0..2, amplitude ``perturbation``);
    targets [B] in -4..4 (0: a trivial |m| > 2) -> d [B, 3, N, N]. The true label is computed
    afterwards (FHS); this only makes every class likely."""
    b, dev, dt = targets.shape[0], targets.device, torch.float64
    t = targets.long()
    mag = t.abs()
    # |C| = p q with (p, q) = (|C|, 1) or (1, |C|); QWZ(0 < m < 2) has C = s0 (sign below)
    swap = torch.rand(b, generator=gen, device=dev) < 0.5
    p = torch.where(swap, torch.ones_like(mag), mag.clamp(min=1))
    q = torch.where(swap, mag.clamp(min=1), torch.ones_like(mag))
    u = torch.rand(b, generator=gen, device=dev, dtype=dt)
    m_top = 0.3 + 1.4 * u  # 0 < |m| < 2, away from the gap closings at 0 and 2
    m_triv = 2.4 + 1.6 * u
    sign_m = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0).to(dt)
    m = torch.where(mag == 0, m_triv, m_top) * sign_m
    # C(QWZ, m, p, q) = QWZ_SIGN * sign(m) * p * q for 0 < |m| < 2: fix the sign of C by p
    want = torch.sign(t.to(dt))
    flip = torch.where((QWZ_SIGN * torch.sign(m) != want) & (mag > 0), -1, 1)
    return _rotate_shift_perturb(qwz(m, points, p=p * flip, q=q), perturbation, gen)


def harmonic_models(b: int, points: int, top: int, perturbation: float, gen: torch.Generator,
                    *, device) -> torch.Tensor:  # fmt: skip
    """A family with every Chern number of harmonics up to ``top``: d = (A sin p kx,
    B sin q ky, m + a cos p' kx + c cos q' ky) with independent p, q, p', q' in 1..top,
    amplitudes in [0.5, 1.5] and m in [-3.5, 3.5], rotated in d-space, shifted in k and
    perturbed as in ``chern_models`` -> d [b, 3, N, N]. Its models whose Chern number is
    small still hold the fast-turning, multi-cone local textures of larger ones."""
    dt = torch.float64
    k = k_grid(points, device=device, dtype=dt)
    h = torch.randint(1, top + 1, (b, 4, 1, 1), generator=gen, device=device).to(dt)
    amp = 0.5 + torch.rand(b, 4, 1, 1, generator=gen, device=device, dtype=dt)
    m = 3.5 * (2 * torch.rand(b, 1, 1, generator=gen, device=device, dtype=dt) - 1)
    kx, ky = k[None, :, None], k[None, None, :]
    dx = (amp[:, 0] * torch.sin(h[:, 0] * kx)).expand(b, points, points)
    dy = (amp[:, 1] * torch.sin(h[:, 1] * ky)).expand(b, points, points)
    dz = m + amp[:, 2] * torch.cos(h[:, 2] * kx) + amp[:, 3] * torch.cos(h[:, 3] * ky)
    d = torch.stack([dx, dy, dz], 1)
    return _rotate_shift_perturb(d, perturbation, gen)


def _rotate_shift_perturb(d: torch.Tensor, perturbation: float,
                          gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """d [B, 3, N, N] rotated at random in d-space (keeps C), shifted in k (keeps C) and
    perturbed by random Fourier terms (harmonics 0..2, amplitude ``perturbation``)."""
    b, points, dev, dt = d.shape[0], d.shape[-1], d.device, d.dtype
    rot = random_rotations(b, gen, device=dev, dtype=dt)
    d = torch.einsum("bij,bjxy->bixy", rot, d)
    shift = torch.randint(0, points, (b, 2), generator=gen, device=dev)
    rows = (torch.arange(points, device=dev)[None, :] + shift[:, :1]) % points  # [B, N]
    cols = (torch.arange(points, device=dev)[None, :] + shift[:, 1:]) % points
    d = d[torch.arange(b, device=dev)[:, None, None, None], torch.arange(3, device=dev)[None, :,
          None, None], rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
    if perturbation > 0:
        k = k_grid(points, device=dev, dtype=dt)
        n = torch.arange(3, device=dev, dtype=dt)
        cx, sx = torch.cos(n[:, None] * k), torch.sin(n[:, None] * k)  # [3, N]
        basis = torch.cat([cx, sx[1:]], 0)  # [5, N]: 1, cos k, cos 2k, sin k, sin 2k
        amp = torch.randn(b, 3, 5, 5, generator=gen, device=dev, dtype=dt) * perturbation / 5
        d = d + torch.einsum("bcij,ix,jy->bcxy", amp, basis, basis)
    return d


# The Chern number of QWZ's lower band is QWZ_SIGN * sign(m) for 0 < |m| < 2 (measured by
# chern_number and pinned by tests/topology: with h = d . sigma, d = (sin kx, sin ky,
# m + cos kx + cos ky), the lower band of 0 < m < 2 has C = +1, of -2 < m < 0 C = -1; the
# degree of k -> d/|d| with the orientation of skyrmion_number is -C).
QWZ_SIGN = 1.0


__all__ = ["QWZ_SIGN", "berry_flux_sum", "chern_models", "chern_number", "chiral_models",
           "fourier_curve", "harmonic_models", "k_grid", "lower_band", "max_angle_step",
           "max_neighbour_angle", "plaquette_fluxes", "qwz", "random_rotations",
           "skyrmion_number", "winding_number", "wrap"]
