"""Lattice gauge observables on periodic hypercubic lattices.

Shapes: site fields (B, L_1, ..., L_d); link fields (B, L_1, ..., L_d, d, *group_shape) with
U[b, x, mu] the link from x to x + e_mu. ``shift(f, mu, k)`` gives f(x + k e_mu) at x, i.e.
``torch.roll(f, -k, dims=1 + mu)``. Planes are the pairs (mu, nu), mu < nu, in lexicographic
order (``planes(d)``).

Wilson action: S = -beta sum_x sum_{mu<nu} Re tr P_{mu nu}(x) / N.
"""

from __future__ import annotations

import math

import torch

from physml_lang.compiler.geometry import plaquette_planes, roll_arguments

from .groups import GaugeGroup, get_group, wrap_angle

Tensor = torch.Tensor


planes = plaquette_planes


def lattice_dim(U: Tensor, group: GaugeGroup) -> int:
    """Number of lattice dimensions d of a link field (B, L_1..L_d, d, *group_shape)."""
    return U.dim() - 2 - len(group.group_shape)


def shift(f: Tensor, mu: int, k: int = 1) -> Tensor:
    """f(x + k e_mu) at x for a site-indexed tensor (B, L_1, ..., L_d, ...)."""
    shifts, dims = roll_arguments((0,) * mu + (k,))
    return torch.roll(f, shifts=shifts, dims=dims) if dims else f


def link(U: Tensor, mu: int, group: GaugeGroup) -> Tensor:
    """U_mu(x): (B, L..., *group_shape) from a link field."""
    d = lattice_dim(U, group)
    return U.select(1 + d, mu)


def lin_links(U: Tensor, group: str | GaugeGroup) -> list[Tensor]:
    """The linear form of U_mu(x) for every mu (list of (B, L..., *lin_shape))."""
    group = get_group(group)
    lin = group.to_lin(U)
    d = lattice_dim(U, group)
    return [lin.select(1 + d, mu) for mu in range(d)]


def plaquette_lin(Ul: list[Tensor], group: GaugeGroup, mu: int, nu: int) -> Tensor:
    """P_{mu nu}(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dag U_nu(x)^dag in linear form."""
    m, d_ = group.lin_mul, group.lin_dag
    return m(m(Ul[mu], shift(Ul[nu], mu)), m(d_(shift(Ul[mu], nu)), d_(Ul[nu])))


def plaquettes(U: Tensor, group: str | GaugeGroup) -> Tensor:
    """All plaquettes in linear form: (B, L..., n_planes, *lin_shape), planes as ``planes(d)``."""
    group = get_group(group)
    Ul = lin_links(U, group)
    d = len(Ul)
    ps = [plaquette_lin(Ul, group, mu, nu) for mu, nu in planes(d)]
    return torch.stack(ps, dim=1 + d)


def plaquette_field(U: Tensor, group: str | GaugeGroup) -> Tensor:
    """Re tr P_{mu nu}(x) / N: (B, L..., n_planes) real."""
    group = get_group(group)
    if group.name == "u1":
        return torch.cos(u1_plaquette_angles(U))
    return group.lin_retr(plaquettes(U, group))


def mean_plaquette(U: Tensor, group: str | GaugeGroup) -> Tensor:
    """Average of Re tr P / N over sites and planes, per configuration: (B,)."""
    p = plaquette_field(U, group)
    return p.flatten(1).mean(1)


def wilson_action(U: Tensor, group: str | GaugeGroup, beta: float | Tensor) -> Tensor:
    """S = -beta sum_{x, mu<nu} Re tr P / N per configuration: (B,)."""
    return -beta * plaquette_field(U, group).flatten(1).sum(1)


def u1_plaquette_angles(theta: Tensor) -> Tensor:
    """Unwrapped U(1) plaquette angles theta_mu(x) + theta_nu(x+mu) - theta_mu(x+nu) - theta_nu(x).

    theta: (B, L..., d) -> (B, L..., n_planes), values in (-4 pi, 4 pi].
    """
    d = theta.dim() - 2
    th = [theta.select(1 + d, mu) for mu in range(d)]
    ps = [th[mu] + shift(th[nu], mu) - shift(th[mu], nu) - th[nu] for mu, nu in planes(d)]
    return torch.stack(ps, dim=1 + d)


def topological_charge_density(theta: Tensor) -> Tensor:
    """2D U(1) charge density q(x) = wrap(P_x) / 2 pi: (B, L1, L2) for theta (B, L1, L2, 2)."""
    if theta.dim() != 4 or theta.shape[-1] != 2:
        raise ValueError(f"2D U(1) links (B, L1, L2, 2) expected, got {tuple(theta.shape)}")
    return wrap_angle(u1_plaquette_angles(theta)[..., 0]) / (2 * math.pi)


def topological_charge(theta: Tensor) -> Tensor:
    """2D U(1) topological charge Q = sum_x wrap(P_x) / 2 pi (an integer on the torus): (B,)."""
    return topological_charge_density(theta).flatten(1).sum(1)


def line_lin(Ul_mu: Tensor, group: GaugeGroup, mu: int, n: int) -> Tensor:
    """Straight Wilson line U_mu(x) U_mu(x+mu) ... U_mu(x+(n-1)mu) (linear form), n >= 1.

    Built by binary doubling, line_{a+b}(x) = line_a(x) line_b(x + a mu): O(log n) products.
    """
    if n < 1:
        raise ValueError("line length must be >= 1")
    result: Tensor | None = None
    length = 0
    power, plen = Ul_mu, 1  # line of length plen
    k = n
    while k:
        if k & 1:
            result = power if result is None else group.lin_mul(result, shift(power, mu, length))
            length += plen
        k >>= 1
        if k:
            power = group.lin_mul(power, shift(power, mu, plen))
            plen *= 2
    assert result is not None
    return result


def wilson_loops(U: Tensor, group: str | GaugeGroup, R: int, T: int) -> Tensor:
    """R x T Wilson loops Re tr W / N at every site and plane: (B, L..., n_planes).

    In plane (mu, nu) the loop extends R steps along mu and T along nu:
    W(x) = L_mu^R(x) L_nu^T(x + R mu) L_mu^R(x + T nu)^dag L_nu^T(x)^dag.
    """
    group = get_group(group)
    Ul = lin_links(U, group)
    d = len(Ul)
    m, dg = group.lin_mul, group.lin_dag
    out = []
    for mu, nu in planes(d):
        a = line_lin(Ul[mu], group, mu, R)
        b = line_lin(Ul[nu], group, nu, T)
        w = m(m(a, shift(b, mu, R)), m(dg(shift(a, nu, T)), dg(b)))
        out.append(group.lin_retr(w))
    return torch.stack(out, dim=1 + d)


def polyakov_loops(U: Tensor, group: str | GaugeGroup, mu: int | None = None) -> Tensor:
    """Polyakov loops tr(prod_t U_mu(x + t mu)) / N along direction mu (default: the last).

    Returns (B, L...) with the mu dimension kept (every x along mu gives the same trace, by
    cyclicity); complex for u1/su2, real for z2. Average over sites for the usual observable.
    """
    group = get_group(group)
    Ul = lin_links(U, group)
    d = len(Ul)
    mu = d - 1 if mu is None else mu
    L = U.shape[1 + mu]
    return group.lin_tr(line_lin(Ul[mu], group, mu, L))


def staples_lin(Ul: list[Tensor], group: GaugeGroup, mu: int) -> Tensor:
    """Staple sum A_mu(x) with Re tr(U_mu(x) A_mu(x)) = sum of the Re tr of the 2(d-1)
    plaquettes containing U_mu(x).

    A_mu(x) = sum_{nu != mu} [U_nu(x+mu) U_mu(x+nu)^dag U_nu(x)^dag
                              + U_nu(x+mu-nu)^dag U_mu(x-nu)^dag U_nu(x-nu)].
    """
    m, dg = group.lin_mul, group.lin_dag
    total: Tensor | None = None
    for nu in range(len(Ul)):
        if nu == mu:
            continue
        up = m(shift(Ul[nu], mu), m(dg(shift(Ul[mu], nu)), dg(Ul[nu])))
        # Backward staple, evaluated at x - nu by shifting the forward-type product.
        down_at = m(dg(shift(Ul[nu], mu)), m(dg(Ul[mu]), Ul[nu]))  # value belonging to x + nu
        down = shift(down_at, nu, -1)
        s = up + down
        total = s if total is None else total + s
    assert total is not None
    return total


def staples(U: Tensor, group: str | GaugeGroup) -> Tensor:
    """Staple sums for all directions in linear form: (B, L..., d, *lin_shape)."""
    group = get_group(group)
    Ul = lin_links(U, group)
    d = len(Ul)
    return torch.stack([staples_lin(Ul, group, mu) for mu in range(d)], dim=1 + d)
