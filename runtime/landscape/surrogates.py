"""Surrogates of an objective for active learning, batched over B independent runs.

- :class:`GaussianProcess`: a GP with a constant mean and a Matern-5/2 kernel with one length
  per coordinate (ARD), its output scale and noise level learned by maximising the log marginal
  likelihood (Adam from several initial guesses, batched; the guesses are a leading axis);
  known per-point measurement variances join the learned noise on the diagonal.
- :class:`DeepEnsemble`: M small fully connected networks (SiLU) trained from independent
  random initial weights on the same data; the spread of their predictions is the uncertainty
  (Lakshminarayanan et al. 2017). The weights of the B runs' M members are one batch of matrix
  products.

Shapes: inputs are scaled to the unit box, u (B, N, d); outputs standardised, y (B, N); a mask
(B, N) says which of the N slots hold a training point (runs have different numbers of good
points: a failed evaluation is no value). A masked slot is an identity row of the kernel matrix
with y = 0: it changes neither the likelihood nor the predictions. ``predict(u)`` with u
(B, C, d) returns the mean and standard deviation (B, C), differentiable in u.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor
SQRT5 = math.sqrt(5.0)
JITTER = 1e-6  # on the standardised scale: the smallest noise variance
LENGTH_BOUNDS = (1e-3, 20.0)  # length scales in units of the box width


def matern52(a: Tensor, b: Tensor, lengths: Tensor, scale: Tensor) -> Tensor:
    """Matern-5/2 covariance (..., P, Q) of points a (..., P, d), b (..., Q, d) with lengths
    (..., d) and output variance scale (...)."""
    diff = (a.unsqueeze(-2) - b.unsqueeze(-3)) / lengths.unsqueeze(-2).unsqueeze(-2)
    r = torch.sqrt((diff * diff).sum(-1).clamp_min(1e-30))  # clamp: a finite gradient at r = 0
    return scale[..., None, None] * (1 + SQRT5 * r + (5.0 / 3.0) * r * r) * torch.exp(-SQRT5 * r)


def _masked_kernel(K: Tensor, mask: Tensor, diag: Tensor) -> Tensor:
    """K (..., N, N) restricted to the masked slots, ``diag`` (..., N) added there, identity
    rows on the empty slots."""
    m = mask.to(K.dtype)
    K = K * m.unsqueeze(-1) * m.unsqueeze(-2)
    return K + torch.diag_embed(diag * m + (1 - m))


class GaussianProcess:
    """A batched GP regression of standardised y on unit-box u (see the module docstring).

    Hyperparameters per run: ``log_lengths`` (B, d), ``log_scale`` (B,), ``log_noise`` (B,);
    ``fit`` refines them from the current values (``guesses`` > 1: also from random initial
    values, keeping the best likelihood per run)."""

    def __init__(self, B: int, d: int, device: torch.device, dtype: torch.dtype):
        self.B, self.d = B, d
        self.log_lengths = torch.full((B, d), math.log(0.3), device=device, dtype=dtype)
        self.log_scale = torch.zeros(B, device=device, dtype=dtype)
        self.log_noise = torch.full((B,), math.log(1e-2), device=device, dtype=dtype)
        self.fixed_noise_floor = JITTER

    # ------------------------------------------------------------------ likelihood
    def _nll(self, ll: Tensor, ls: Tensor, ln: Tensor, u: Tensor, y: Tensor, mask: Tensor,
             known: Tensor) -> Tensor:  # fmt: skip
        """Negative log marginal likelihood per point (..., ) with hyperparameters of shape
        (..., d), (...), (...) and data (..., N, d), (..., N), plus weak priors (log-normal
        on the lengths around 0.3 of the box, the noise pulled below the signal)."""
        lengths = ll.exp().clamp(*LENGTH_BOUNDS)
        K = matern52(u, u, lengths, ls.exp())
        noise = ln.exp().unsqueeze(-1) + known + self.fixed_noise_floor
        L = torch.linalg.cholesky(_masked_kernel(K, mask, noise))
        yy = (y * mask).unsqueeze(-1)
        alpha = torch.cholesky_solve(yy, L)
        n = mask.sum(-1).clamp_min(1).to(y.dtype)
        logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        nll = 0.5 * (yy * alpha).sum((-1, -2)) + logdet + 0.5 * n * math.log(2 * math.pi)
        prior = (0.5 * ((ll - math.log(0.3)) / 1.5) ** 2).sum(-1) + 0.5 * (ls / 2.0) ** 2 \
            + 0.5 * ((ln - math.log(1e-3)) / 3.0) ** 2
        return (nll + prior) / n

    def fit(self, u: Tensor, y: Tensor, mask: Tensor, known: Tensor, *, steps: int,
            draws: Tensor | None = None) -> None:  # fmt: skip
        """Maximise the marginal likelihood: Adam for ``steps`` steps from the current values
        and from G - 1 random ones given by ``draws`` (B, G - 1, d + 2) uniform on [0, 1) (each
        run's from its own stream), batched on a leading axis; the best is kept per run.
        ``known`` (B, N): measurement variances of the points (standardised)."""
        G = 1 if draws is None else 1 + draws.shape[1]
        dev = u.device
        ll = self.log_lengths.unsqueeze(0).repeat(G, 1, 1)
        ls = self.log_scale.unsqueeze(0).repeat(G, 1)
        ln = self.log_noise.unsqueeze(0).repeat(G, 1)
        if G > 1:
            draw = draws.transpose(0, 1)
            ll[1:] = math.log(0.05) + draw[..., : self.d] * math.log(20.0)
            ls[1:] = -1.0 + 2.0 * draw[..., self.d]
            ln[1:] = math.log(1e-4) + draw[..., self.d + 1] * math.log(1e3)
        params = [p.clone().requires_grad_(True) for p in (ll, ls, ln)]
        opt = torch.optim.Adam(params, lr=0.05)
        data = (u.unsqueeze(0), y.unsqueeze(0), mask.unsqueeze(0), known.unsqueeze(0))
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = self._nll(*params, *data)
                # a guess whose Cholesky failed numerically gives nan: it does not steer the rest
                torch.nan_to_num(loss, nan=0.0, posinf=0.0).sum().backward()
                for p in params:
                    p.grad = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
                opt.step()
                with torch.no_grad():
                    params[0].clamp_(math.log(LENGTH_BOUNDS[0]), math.log(LENGTH_BOUNDS[1]))
                    params[1].clamp_(-6.0, 6.0)
                    params[2].clamp_(-16.0, 2.0)
            with torch.no_grad():
                final = torch.nan_to_num(self._nll(*params, *data), nan=math.inf)
        best = final.argmin(0)  # (B,)
        idx = torch.arange(self.B, device=dev)
        with torch.no_grad():
            self.log_lengths = params[0][best, idx].detach()
            self.log_scale = params[1][best, idx].detach()
            self.log_noise = params[2][best, idx].detach()
        self._condition(u, y, mask, known)

    def _condition(self, u: Tensor, y: Tensor, mask: Tensor, known: Tensor) -> None:
        """The Cholesky factor and weights of the posterior given the data."""
        self.u, self.mask = u, mask
        self.lengths = self.log_lengths.exp().clamp(*LENGTH_BOUNDS)
        self.scale = self.log_scale.exp()
        noise = self.log_noise.exp().unsqueeze(-1) + known + self.fixed_noise_floor
        K = matern52(u, u, self.lengths, self.scale)
        self.L = torch.linalg.cholesky(_masked_kernel(K, mask, noise))
        self.alpha = torch.cholesky_solve((y * mask).unsqueeze(-1), self.L)

    # ------------------------------------------------------------------ predictions
    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and standard deviation of the latent f at x (B, C, d): (B, C)."""
        m = self.mask.to(x.dtype)
        Ks = matern52(x, self.u, self.lengths, self.scale) * m.unsqueeze(-2)  # (B, C, N)
        mean = (Ks @ self.alpha).squeeze(-1)
        v = torch.linalg.solve_triangular(self.L, Ks.transpose(-1, -2), upper=False)
        var = self.scale.unsqueeze(-1) - (v * v).sum(-2)
        return mean, var.clamp_min(1e-12).sqrt()


class DeepEnsemble:
    """M fully connected networks per run (widths ``hidden``, SiLU), B runs batched: weights
    (B M, fan_in, fan_out). ``fit`` continues training from the current weights (Adam on the
    masked mean squared error with weight decay); ``predict`` gives the members' mean and
    standard deviation."""

    def __init__(self, B: int, d: int, members: int, hidden: list[int], device: torch.device,
                 dtype: torch.dtype, streams, lr: float = 3e-3,
                 weight_decay: float = 1e-4):  # fmt: skip
        self.B, self.M = B, members
        widths = [d, *hidden, 1]
        self.weights: list[Tensor] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            # run b's members from stream b: (B, M fan_in fan_out) -> (B M, fan_in, fan_out)
            w = streams.normal((B, members * fan_in * fan_out), dtype)
            w = w.reshape(B * members, fan_in, fan_out) * math.sqrt(2.0 / fan_in)
            self.weights.append(w.requires_grad_(True))
            self.weights.append(torch.zeros((B * members, 1, fan_out), device=device,
                                            dtype=dtype, requires_grad=True))  # fmt: skip
        self.opt = torch.optim.Adam(self.weights, lr=lr, weight_decay=weight_decay)

    def _forward(self, x: Tensor) -> Tensor:
        """x (B, C, d) -> member outputs (B, M, C)."""
        B, C, d = x.shape
        h = x.unsqueeze(1).expand(B, self.M, C, d).reshape(B * self.M, C, d)
        n = len(self.weights) // 2
        for k in range(n):
            h = torch.baddbmm(self.weights[2 * k + 1], h, self.weights[2 * k])
            if k < n - 1:
                h = torch.nn.functional.silu(h)
        return h.reshape(B, self.M, C)

    def fit(self, u: Tensor, y: Tensor, mask: Tensor, known: Tensor, *, steps: int,
            **_: object) -> None:  # fmt: skip
        """``steps`` Adam steps of every member on the masked squared error (the known
        variances weight the points by 1 / (1 + var))."""
        w = mask.to(y.dtype) / (1.0 + known)
        norm = w.sum(-1, keepdim=True).clamp_min(1.0)
        with torch.enable_grad():
            for _ in range(steps):
                self.opt.zero_grad()
                err = (self._forward(u) - y.unsqueeze(1)) ** 2  # (B, M, N)
                loss = ((err * w.unsqueeze(1)).sum(-1) / norm).sum()
                loss.backward()
                self.opt.step()

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self._forward(x)
        return out.mean(1), out.std(1).clamp_min(1e-6)


__all__ = ["DeepEnsemble", "GaussianProcess", "matern52"]
