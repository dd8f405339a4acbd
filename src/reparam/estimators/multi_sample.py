r"""Multi-sample estimators: gradients of the K-sample importance-weighted bound.

The contract (the same call as every estimator, ``est(f, dist, K, noise=None)``):
``f(z) = -log p(x, z)`` per sample, shape ``(K, *rest)``; the class declares
``multi_sample = True`` and ``includes_log_q = True``; the surrogate's value is the negative
bound ``-(logsumexp_k(-f(z_k) - log q(z_k)) - log K)`` (shape ``rest``) and its gradient is
the estimator's gradient of that bound. :class:`IWAE` (pathwise) lives here,
:class:`~reparam.estimators.DReG` in ``dreg.py``; a discrete-latent estimator of the same
bound (VIMCO) follows the same contract and drops into :func:`reparam.vae.iwae` unchanged.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw, sum_to_costs


def log_weights_of(f: CostFn, dist: Distribution, z: torch.Tensor, num_samples: int,
                   log_prob=None) -> torch.Tensor:
    """``log w_k = -f(z_k) - log q(z_k)``, shape ``(K, *rest)``; ``log_prob(z)`` (default
    ``dist.log_prob``) is summed over the dims beyond ``rest``."""
    log_q = (log_prob or dist.log_prob)(z)
    costs = costs_of(f, z, num_samples)
    return -costs - sum_to_costs(log_q, costs)


def negative_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``-(logsumexp_k log w_k - log K)`` over dim 0."""
    return -(torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))


class IWAE(Estimator):
    r"""The importance weighted bound (Burda, Grosse & Salakhutdinov 2016) with its pathwise
    gradient: ``z_k = g(eps_k, theta)``, ``log w_k = -f(z_k) - log q(z_k)``,

    ``surrogate = -(log sum_k exp(log w_k) - log K)``, differentiated through ``z_k`` and
    ``log q``. ``K = 1`` is the single-sample ELBO with ``log q`` in the cost.
    Needs ``dist.rsample`` and ``dist.log_prob``.
    """

    multi_sample = True
    includes_log_q = True

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        K = check_num_samples(num_samples)
        z = draw(dist, K, noise, reparameterized=True)
        return negative_bound(log_weights_of(f, dist, z, K))
