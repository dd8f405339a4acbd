"""Measure-valued gradients for the Gaussian (Mohamed et al. 2020, sec. 6; Pflug 1989)."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import Distribution, Independent

from .. import noise as _noise
from ..distributions import Normal
from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, linear_term

_SQRT_2PI = math.sqrt(2 * math.pi)


class MeasureValued(Estimator):
    r"""Weak derivatives of ``N(mu, sigma^2)``, coordinate by coordinate, with coupling.

    ``d/dmu E f = (1 / (sigma sqrt(2 pi))) E_w[f(mu + sigma w) - f(mu - sigma w)]``,
    ``w ~ Rayleigh(1)`` (the survey's Weibull(2, 0.5): density ``w exp(-w^2 / 2)``), one ``w``
    for both sides.

    ``d/dsigma E f = (1 / sigma) E[f(mu + sigma u) - f(mu + sigma u U)]``, ``u`` double-sided
    Maxwell (density ``u^2 phi(u)``), ``U ~ Uniform(0, 1)``: ``u U`` is standard normal, the
    coupling of the negative part to the positive one.

    Needs no derivative of ``f``, but four evaluations of ``f`` per sample and per
    coordinate (``D`` = coordinates of a cost element): ``4 D S`` evaluations, batched in one
    call of ``f``. The gradient reaches ``loc`` and ``scale`` (a ``logvar`` by the chain rule);
    ``f``'s own parameters get the pathwise gradient at ``S`` plain samples, which also give
    the value. Accepts ``reparam`` / torch ``Normal`` and ``Independent`` of them.
    """

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        S = check_num_samples(num_samples)
        base = dist.base_dist if isinstance(dist, Independent) else dist
        if not isinstance(base, (Normal, td.Normal)):
            raise ValueError(f"MeasureValued supports Normal families, got {type(base).__name__}")
        loc, scale = base.loc, base.scale
        full = loc.shape  # (*batch, *event) of dist
        src = _noise.resolve(noise)
        n = src.normal((S, 5, *full), loc.dtype, loc.device)
        u01 = src.uniform((S, 2, *full), loc.dtype, loc.device)
        mu, sig = loc.detach(), scale.detach()
        z0 = mu + sig * n[:, 0]
        costs = costs_of(f, z0, S)
        rest = costs.shape[1:]
        trailing = full[len(rest):]
        D = math.prod(trailing)

        w = torch.sqrt(-2.0 * torch.log(u01[:, 0]))                      # Rayleigh(1)
        u = n[:, 1:4].norm(dim=1) * torch.sign(n[:, 4])                  # double-sided Maxwell
        plus_w, minus_w = mu + sig * w, mu - sig * w
        maxwell, gauss = mu + sig * u, mu + sig * u * u01[:, 1]
        views = torch.stack([plus_w, minus_w, maxwell, gauss])           # (4, S, *full)
        flat = views.reshape(4, S, *rest, D)
        base_z = z0.detach().reshape(1, 1, S, *rest, D)
        eye = torch.eye(D, dtype=torch.bool, device=loc.device)         # (D, D)
        eye = eye.reshape(1, D, *([1] * (1 + len(rest))), D)
        z = torch.where(eye, flat.unsqueeze(1), base_z)                  # (4, D, S, *rest, D)
        with torch.no_grad():
            c = f(z.reshape(4 * D * S, *full)).reshape(4, D, S, *rest)
        diff = (c[0::2] - c[1::2]).mean(2)                               # (2, D, *rest)
        diff = diff.movedim(1, -1).reshape(2, *full)                     # (2, *full)
        grad_mu = diff[0] / (sig * _SQRT_2PI)
        grad_sigma = diff[1] / sig
        ndim = len(rest)
        return (costs.mean(0) + linear_term(grad_mu, loc, ndim)
                + linear_term(grad_sigma, scale, ndim))
