"""DReG's point (Tucker et al. 2019; Rainforth et al. 2018): the SNR of the plain IWAE
encoder gradient falls like 1/sqrt(K), the doubly reparameterized one grows with K."""

from __future__ import annotations

import math

import torch

from reparam.diagnostics import gradient_stats
from reparam.distributions import Normal
from reparam.estimators import DReG

N = 1000


def f(z):  # -log p(x, z) up to a constant: the posterior is N(0.2, 0.9^2)
    return 0.5 * ((z - 0.2) / 0.9) ** 2


def _iwae_pathwise(dist, K):
    z = dist.rsample((K,))
    log_w = -f(z) - dist.log_prob(z)
    return -(torch.logsumexp(log_w, 0) - math.log(K))


def _snr(K, dreg):
    loc = torch.zeros(N, dtype=torch.float64, requires_grad=True)
    logvar = torch.full((N,), math.log(0.7), dtype=torch.float64, requires_grad=True)
    est = DReG()

    def surrogate():
        q = Normal(loc, logvar=logvar)
        return (est(f, q, K) if dreg else _iwae_pathwise(q, K)).sum()
    s = gradient_stats(surrogate, {"loc": loc}, repeats=4, replica_dim=0).params["loc"]
    return float(s.snr), float(s.snr_se)


def test_snr_with_more_importance_samples():
    (p1, e1), (p100, e100) = _snr(1, False), _snr(100, False)
    (d1, f1), (d100, f100) = _snr(1, True), _snr(100, True)
    assert p1 - p100 > 5 * math.hypot(e1, e100)          # IWAE: 0.25 -> 0.02
    assert d100 - d1 > 5 * math.hypot(f1, f100)          # DReG: 1.5 -> 7
    assert d100 > 20 * p100
