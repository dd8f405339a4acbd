"""Sticking the landing (Roeder, Wu & Duvenaud 2017) for the ELBO."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw, sum_to_costs
from ._views import detach_params


class STL(Estimator):
    r"""Estimates ``E_q[f(z) + log q(z)]`` (the negative ELBO when ``f = -log p(x, z)``)
    with ``log q`` evaluated at detached parameters:

    ``surrogate = (1/S) sum_s [f(z_s) + log q_{stop(theta)}(z_s)]``, ``z_s = g(eps_s, theta)``.

    This drops the score term ``E[grad_theta log q(z)] = 0`` from the pathwise gradient, so
    the variance vanishes when ``q`` equals the posterior. Still unbiased.
    ``includes_log_q`` is True: an objective must not add a KL of its own.
    """

    includes_log_q = True

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        check_num_samples(num_samples)
        z = draw(dist, num_samples, noise, reparameterized=True)
        costs = costs_of(f, z, num_samples)
        log_q = sum_to_costs(detach_params(dist).log_prob(z), costs)
        return (costs + log_q).mean(0)
