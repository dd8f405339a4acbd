"""VIMCO (Mnih & Rezende 2016): the multi-sample bound with per-sample leave-one-out signals."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, sum_to_costs
from ._discrete import sample


def leave_one_out_bounds(log_w: torch.Tensor) -> torch.Tensor:
    r"""``L_{-k} = log mean_j exp(log w_j)`` with ``log w_k`` replaced by the mean of the
    others (their geometric mean weight), for every ``k``: shape ``(K, *rest)``, ``K >= 2``."""
    K = log_w.shape[0]
    others = (log_w.sum(0, keepdim=True) - log_w) / (K - 1)
    eye = torch.eye(K, dtype=torch.bool, device=log_w.device)
    eye = eye.reshape(K, K, *([1] * (log_w.dim() - 1)))
    m = torch.where(eye, others.unsqueeze(1), log_w.unsqueeze(0))  # M[k, j]
    return torch.logsumexp(m, 1) - math.log(K)


class VIMCO(Estimator):
    r"""Gradient of the K-sample bound ``L = log mean_k w_k``, ``log w_k = -f(z_k) - log q(z_k)``,
    ``f = -log p(x, z)``, for any family with ``log_prob`` (discrete included):
    ``grad L ~= sum_k (L - L_{-k}) grad log q(z_k) + sum_k w~_k grad log w_k``
    (:func:`leave_one_out_bounds`; ``w~`` the normalised weights). Value: ``-L``.
    ``K = num_samples >= 2``.
    """

    multi_sample = True
    includes_log_q = True

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 2, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        K = check_num_samples(num_samples, 2)
        z = sample(dist, K, noise).detach()
        costs = costs_of(f, z, K)
        log_q = sum_to_costs(dist.log_prob(z), costs)
        log_w = -costs - log_q
        bound = torch.logsumexp(log_w, 0) - math.log(K)
        signal = (bound.detach() - leave_one_out_bounds(log_w.detach()))  # (K, *rest)
        score = (signal * (log_q - log_q.detach())).sum(0)
        return -bound - score
