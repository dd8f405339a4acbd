"""Doubly reparameterized gradients (Tucker, Lawson, Gu & Maddison 2019) for IWAE."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, draw, pad_like
from .multi_sample import log_weights_of
from .stl import log_prob_detached


class DReG(Estimator):
    r"""Estimates the negative IWAE bound ``-log (1/K) sum_k w_k``, ``log w_k = -f(z_k) -
    log q(z_k)``, with ``f = -log p(x, z)`` and ``K = num_samples``.

    Gradients: for the parameters in ``f`` the usual ``-sum_k w~_k grad log p(x, z_k)``;
    for the distribution's parameters ``-sum_k w~_k^2 d log w_k / d z_k  dz_k / d theta``
    with ``log q`` at detached parameters (``w~`` the normalised weights). Unbiased for the
    gradient of the IWAE bound, with an SNR that does not decay as ``K`` grows. One
    evaluation of ``f``: the squared weight comes from a hook scaling the gradient at ``z``.
    The value is the negative bound (an estimate of ``-E[log mean_k w_k]``, not of
    ``E[f]``): a multi-sample estimator (``multi_sample = True``, see :mod:`.multi_sample`).
    """

    multi_sample = True
    includes_log_q = True

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        K = check_num_samples(num_samples)
        z = draw(dist, K, noise, reparameterized=True)
        weights: dict[str, torch.Tensor] = {}
        if z.requires_grad:
            z.register_hook(lambda g: g * weights["w"])
        log_w = log_weights_of(f, dist, z, K, lambda z: log_prob_detached(dist, z))
        w = torch.softmax(log_w.detach(), dim=0)  # (K, *rest)
        weights["w"] = pad_like(w, z.dim())
        bound = torch.logsumexp(log_w.detach(), 0) - math.log(K)
        term = -(w * log_w).sum(0)
        return -bound + (term - term.detach())
