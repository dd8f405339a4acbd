"""Sticking the landing (Roeder, Wu & Duvenaud 2017) for the ELBO."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw, sum_to_costs
from ._views import detach_params


def log_prob_detached(dist, z: torch.Tensor) -> torch.Tensor:
    """``log q(z)`` with ``dist``'s parameters cut from the graph (``z`` stays attached):
    ``detach_params(dist).log_prob(z)``, or ``dist.log_prob_detached(z)`` for a composite
    posterior that is not a parametric family (it cuts its own networks' weights)."""
    own = getattr(dist, "log_prob_detached", None)
    if own is not None:
        return own(z)
    if not isinstance(dist, Distribution):
        raise ValueError(f"{type(dist).__name__} cannot evaluate log q at detached parameters "
                         f"(a flow without inverse): use a pathwise estimator")
    return detach_params(dist).log_prob(z)


class STL(Estimator):
    r"""Estimates ``E_q[f(z) + log q(z)]`` (the negative ELBO when ``f = -log p(x, z)``)
    with ``log q`` evaluated at detached parameters:

    ``surrogate = (1/S) sum_s [f(z_s) + log q_{stop(theta)}(z_s)]``, ``z_s = g(eps_s, theta)``.

    This drops the score term ``E[grad_theta log q(z)] = 0`` from the pathwise gradient, so
    the variance vanishes when ``q`` equals the posterior. Still unbiased.
    ``includes_log_q`` is True: an objective must not add a KL of its own.
    """

    includes_log_q = True
    multi_sample = False

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        check_num_samples(num_samples)
        z = draw(dist, num_samples, noise, reparameterized=True)
        costs = costs_of(f, z, num_samples)
        log_q = sum_to_costs(log_prob_detached(dist, z), costs)
        return (costs + log_q).mean(0)
