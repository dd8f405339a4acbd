"""Property-based tests over the family constructors (hypothesis).

Valid parameters (anywhere in the range a user can reach, float32 and float64) give finite
samples inside the support and finite ``log_prob`` there; invalid ones (non-positive scales
or shapes, nan, inf where the family cannot take it) give a ``ValueError`` naming the
parameter, and nothing else.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reparam.distributions as rd

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

positive = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)
real = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
bad_positive = st.sampled_from([0.0, -1.0, -1e-3, math.nan, -math.inf])
dtypes = st.sampled_from([torch.float32, torch.float64])

# family name -> (constructor from a tuple of floats, strategies of valid values, index and
# name of the parameter that a bad value replaces)
FAMILIES = {
    "Normal": (lambda p: rd.Normal(p[0], p[1]), (real, positive), (1, "scale")),
    "Laplace": (lambda p: rd.Laplace(p[0], p[1]), (real, positive), (1, "scale")),
    "Logistic": (lambda p: rd.Logistic(p[0], p[1]), (real, positive), (1, "scale")),
    "Gumbel": (lambda p: rd.Gumbel(p[0], p[1]), (real, positive), (1, "scale")),
    "Exponential": (lambda p: rd.Exponential(p[0]), (positive,), (0, "rate")),
    "Weibull": (lambda p: rd.Weibull(p[0], p[1]), (positive, st.floats(0.1, 10)), (0, "scale")),
    "HalfNormal": (lambda p: rd.HalfNormal(p[0]), (positive,), (0, "scale")),
    "LogNormal": (lambda p: rd.LogNormal(p[0], p[1]), (st.floats(-5, 5), st.floats(1e-2, 3)),
                  (1, "scale")),
    "Kumaraswamy": (lambda p: rd.Kumaraswamy(p[0], p[1]), (st.floats(0.1, 10),) * 2,
                    (0, "concentration1")),
    "Gamma": (lambda p: rd.Gamma(p[0], p[1]), (positive, positive), (0, "concentration")),
    "Beta": (lambda p: rd.Beta(p[0], p[1]), (positive, positive), (0, "concentration1")),
    "StudentT": (lambda p: rd.StudentT(p[0], p[1], p[2]), (st.floats(0.5, 1e3), real, positive),
                 (0, "df")),
    "VonMises": (lambda p: rd.VonMises(p[0], p[1]), (st.floats(-3, 3), st.floats(1e-3, 1e4)),
                 (1, "concentration")),
    "Dirichlet": (lambda p: rd.Dirichlet(torch.stack([p[0], p[1], p[2]])),
                  (st.floats(1e-2, 1e3),) * 3, (0, "concentration")),
}


def _build(name: str, values: tuple[float, ...], dtype: torch.dtype):
    make = FAMILIES[name][0]
    return make(tuple(torch.tensor(v, dtype=dtype) for v in values))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_valid_parameters_give_finite_samples_in_the_support(name):
    strategies = FAMILIES[name][1]

    @SETTINGS
    @given(values=st.tuples(*strategies), dtype=dtypes)
    def check(values, dtype):
        d = _build(name, values, dtype)
        z = d.rsample((64,))
        assert z.dtype == dtype and torch.isfinite(z).all(), (values, z)
        assert d.support.check(z).all(), (values, z)
        assert torch.isfinite(d.log_prob(z)).all(), (values, d.log_prob(z))

    torch.manual_seed(0)
    check()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_invalid_parameters_are_refused_naming_the_parameter(name):
    strategies, (index, param) = FAMILIES[name][1], FAMILIES[name][2]

    @SETTINGS
    @given(values=st.tuples(*strategies), bad=bad_positive, dtype=dtypes)
    def check(values, bad, dtype):
        values = values[:index] + (bad,) + values[index + 1:]
        with pytest.raises(ValueError, match=param):
            _build(name, values, dtype)

    check()


def test_the_property_sees_a_family_that_accepts_a_bad_value():
    """The invalid-parameter check fails for a constructor that does not validate."""
    with pytest.raises(pytest.fail.Exception):
        with pytest.raises(ValueError, match="scale"):
            torch.distributions.Normal(torch.tensor(0.0), torch.tensor(-1.0), validate_args=False)
