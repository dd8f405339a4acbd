"""The generic builders: a user family in a few lines, checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch.distributions import constraints

from reparam.distributions import InverseCDF, LocationScale, StandardNoise
from reparam.distributions.location_scale import STANDARD
from reparam.noise import MonteCarlo, Sobol

F64 = torch.float64

SECH = StandardNoise(  # the hyperbolic secant distribution, scipy's hypsecant scaled by pi / 2
    "sech", "uniform",
    transform=lambda u: (2 / math.pi) * torch.log(torch.tan(math.pi * u / 2)),
    log_prob=lambda x: -math.log(2.0) - torch.log(torch.cosh(math.pi * x / 2)),
    cdf=lambda x: (2 / math.pi) * torch.atan(torch.exp(math.pi * x / 2)),
    icdf=lambda p: (2 / math.pi) * torch.log(torch.tan(math.pi * p / 2)),
    mean=0.0, variance=1.0, entropy=math.log(4.0))


def gompertz(b, c, **kw) -> InverseCDF:
    """``F(x) = 1 - exp(-b (e^{c x} - 1))`` (scipy ``gompertz(c=b, scale=1/c)``)."""
    return InverseCDF(lambda p, b, c: torch.log1p(-torch.log1p(-p) / b) / c, {"b": b, "c": c},
                      log_prob_fn=lambda x, b, c: torch.log(b * c) + c * x - b * torch.expm1(c * x),
                      cdf_fn=lambda x, b, c: -torch.expm1(-b * torch.expm1(c * x)),
                      arg_constraints={"b": constraints.positive, "c": constraints.positive},
                      support=constraints.nonnegative, **kw)


def test_location_scale_user_family_matches_scipy():
    loc, scale = torch.tensor(0.4, dtype=F64), torch.tensor(1.7, dtype=F64)
    d = LocationScale(SECH, loc, scale)
    ref = st.hypsecant(0.4, 1.7 * 2 / math.pi)
    x = torch.tensor(ref.ppf([0.05, 0.3, 0.5, 0.8, 0.99]), dtype=F64)
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-9)
    np.testing.assert_allclose(d.cdf(x).numpy(), ref.cdf(x.numpy()), rtol=1e-9)
    np.testing.assert_allclose(float(d.entropy()), ref.entropy(), rtol=1e-9)
    np.testing.assert_allclose(float(d.variance), ref.var(), rtol=1e-9)
    z = d.rsample((20000,), noise=MonteCarlo(torch.Generator().manual_seed(0)))
    assert st.kstest(z.numpy(), ref.cdf).pvalue > 1e-4


def test_inverse_cdf_user_family_matches_scipy_and_differentiates():
    b = torch.tensor(0.7, dtype=F64, requires_grad=True)
    c = torch.tensor(1.5, dtype=F64)
    d = gompertz(b, c)
    ref = st.gompertz(0.7, scale=1 / 1.5)
    x = torch.tensor(ref.ppf([0.05, 0.5, 0.99]), dtype=F64)
    np.testing.assert_allclose(d.log_prob(x).detach().numpy(), ref.logpdf(x.numpy()), rtol=1e-9)
    np.testing.assert_allclose(d.cdf(x).detach().numpy(), ref.cdf(x.numpy()), rtol=1e-9)
    np.testing.assert_allclose(d.icdf(torch.tensor([0.05, 0.5, 0.99], dtype=F64)).detach().numpy(),
                               x.numpy(), rtol=1e-9)
    z = d.rsample((4096,), noise=Sobol(seed=0))
    assert st.kstest(z.detach().numpy(), ref.cdf).pvalue > 1e-4
    z.mean().backward()
    assert torch.isfinite(b.grad) and b.grad < 0  # a larger hazard makes samples smaller


def test_builders_validate_expand_and_broadcast():
    with pytest.raises(ValueError, match="'b'"):
        gompertz(torch.tensor(-1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="'scale'"):
        LocationScale(SECH, torch.zeros(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="broadcast"):
        LocationScale(SECH, torch.zeros(2), torch.ones(3))
    d = gompertz(torch.tensor([0.5, 1.0]), torch.tensor(2.0)).expand((3, 2))
    assert d.rsample((4,)).shape == (4, 3, 2) and d.log_prob(d.sample()).shape == (3, 2)
    e = LocationScale(STANDARD["normal"], torch.zeros(2), torch.ones(2)).expand((5, 2))
    assert e.rsample((3,)).shape == (3, 5, 2) and e.support is constraints.real


def test_inverse_cdf_without_density_says_so():
    d = InverseCDF(lambda p, rate: -torch.log1p(-p) / rate, {"rate": torch.ones(2)})
    assert d.rsample((3,)).shape == (3, 2)
    with pytest.raises(NotImplementedError, match="log_prob_fn"):
        d.log_prob(torch.ones(2))


def test_location_scale_draws_normal_noise_for_a_normal_base():
    calls = []

    class Spy(MonteCarlo):
        def normal(self, shape, dtype, device):
            calls.append("normal")
            return super().normal(shape, dtype, device)

    LocationScale(STANDARD["normal"], torch.zeros(2), torch.ones(2)).rsample((3,), noise=Spy())
    assert calls == ["normal"]
