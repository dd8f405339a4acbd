"""Gaussian f(z) = z^2 at mu = 1, sigma = 1: per-sample gradient variances in closed form.

With z = mu + sigma eps, eps ~ N(0, 1) and E[eps^(2k)] = (2k - 1)!!:
pathwise  g_mu = 2z                   Var = 4 sigma^2                      = 4
          g_sigma = 2 z eps           Var = 4 mu^2 + 8 sigma^2             = 12
score     g_mu = z^2 eps / sigma      E[(1 + eps)^4 eps^2] - 2^2 = 34 - 4  = 30
          g_sigma = z^2 (eps^2 - 1)   E[(1 + eps)^4 (eps^2 - 1)^2] - 4     = 136
The closed forms are cross-checked by quadrature; the Monte Carlo variances must agree with
them within 5 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from reparam.diagnostics import gradient_stats
from reparam.distributions import Normal
from reparam.estimators import Pathwise, ScoreFunction

CLOSED = {"pathwise": {"loc": 4.0, "scale": 12.0}, "score": {"loc": 30.0, "scale": 136.0}}
PER_SAMPLE = {
    "pathwise": {"loc": lambda e: 2 * (1 + e), "scale": lambda e: 2 * (1 + e) * e},
    "score": {"loc": lambda e: (1 + e) ** 2 * e, "scale": lambda e: (1 + e) ** 2 * (e * e - 1)},
}


@pytest.mark.parametrize("name", CLOSED)
def test_closed_forms_by_quadrature(name):
    for param, g in PER_SAMPLE[name].items():
        m1 = integrate.quad(lambda e, g=g: g(e) * stats.norm.pdf(e), -np.inf, np.inf)[0]
        m2 = integrate.quad(lambda e, g=g: g(e) ** 2 * stats.norm.pdf(e), -np.inf, np.inf)[0]
        assert m1 == pytest.approx(2.0, rel=1e-9)
        assert m2 - m1**2 == pytest.approx(CLOSED[name][param], rel=1e-9)


@pytest.mark.parametrize("name,est", [("pathwise", Pathwise()), ("score", ScoreFunction())])
@pytest.mark.parametrize("num_samples", [1, 8])
def test_monte_carlo_variance_matches_closed_form(name, est, num_samples):
    n = 4000
    loc = torch.ones(n, dtype=torch.float64, requires_grad=True)
    scale = torch.ones(n, dtype=torch.float64, requires_grad=True)
    res = gradient_stats(lambda: est(lambda z: z**2, Normal(loc, scale), num_samples).sum(),
                         {"loc": loc, "scale": scale}, repeats=5, replica_dim=0)
    for param, want in CLOSED[name].items():
        s = res.params[param]
        got = s.variance * num_samples
        assert abs(got - want) < 5 * s.variance_se * num_samples, (param, float(got), want)
        assert abs(s.mean - 2.0) < 5 * s.mean_se
        snr = 2.0 / (want / num_samples) ** 0.5
        assert abs(s.snr - snr) < 5 * s.snr_se
    assert res.seconds_per_estimate > 0
    assert res.efficiency("loc") == pytest.approx(
        1 / (res.params["loc"].total_variance * res.seconds_per_estimate))
