"""The pathwise (reparameterization) estimator."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw


class Pathwise(Estimator):
    r"""``grad E_q[f(z)] ~= (1/S) sum_s grad_theta f(g(eps_s, theta))``, ``z = g(eps, theta)``.

    Needs ``dist.rsample``. Unbiased when ``f`` is differentiable (almost everywhere, with
    no jumps); its variance is governed by the smoothness of ``f``, not by its magnitude
    (Mohamed et al. 2020, sec. 5).

    Example::

        >>> mu = torch.tensor(1.0, requires_grad=True)
        >>> Pathwise()(lambda z: z**2, Normal(mu, torch.tensor(1.0)), 100).backward()
    """

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        check_num_samples(num_samples)
        z = draw(dist, num_samples, noise, reparameterized=True)
        return costs_of(f, z, num_samples).mean(0)
