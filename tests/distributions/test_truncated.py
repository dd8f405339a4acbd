"""TruncatedNormal far in the tails, against mpmath at 50 digits (and scipy where it holds)."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st
import torch

from reparam.distributions import TruncatedNormal
from reparam.distributions.truncated import (
    _std_trunc_icdf_backward,
    _StdTruncIcdf,
    log_ndtr_diff,
    ndtri_exp,
)
from reparam.noise import MonteCarlo

F64 = torch.float64
mp.mp.dps = 50
# (loc, scale, low, high): standardized bounds up to 40 sigma out, one- and two-sided
TAILS = [(0.0, 1.0, 10.0, math.inf), (1.0, 2.0, 41.0, math.inf), (0.0, 1.0, -math.inf, -20.0),
         (0.0, 1.0, 10.0, 10.5), (-3.0, 0.5, -25.0, -22.0), (0.0, 1.0, 38.0, 40.0)]


def mp_ref(loc, scale, low, high):
    """Exact log-density, cdf, mean, variance and entropy of the truncated normal."""
    a, b = (mp.mpf(low) - loc) / scale, (mp.mpf(high) - loc) / scale

    def mass(lo, hi):  # Phi(hi) - Phi(lo), taken in the lower tail where it keeps digits
        return mp.ncdf(hi) - mp.ncdf(lo) if lo <= 0 else mp.ncdf(-lo) - mp.ncdf(-hi)

    z = mass(a, b)
    phi = mp.npdf

    def t(v):
        return 0 if mp.isinf(v) else v * phi(v)

    mean = loc + scale * (phi(a) - phi(b)) / z
    var = scale**2 * (1 + (t(a) - t(b)) / z - ((phi(a) - phi(b)) / z) ** 2)
    ent = mp.log(mp.sqrt(2 * mp.pi * mp.e) * scale * z) + (t(a) - t(b)) / (2 * z)
    return {
        "logpdf": lambda x: mp.log(phi((x - loc) / scale)) - mp.log(scale * z),
        "cdf": lambda x: mass(a, (x - loc) / scale) / z,
        "mean": mean, "variance": var, "entropy": ent, "a": a, "b": b,
    }


def _dist(loc, scale, low, high, dtype=F64, grad=False):
    p = [torch.tensor(v, dtype=dtype, requires_grad=grad) for v in (loc, scale, low, high)]
    return TruncatedNormal(*p), p


@pytest.mark.parametrize("params", TAILS)
def test_tail_values_against_mpmath(params):
    d, _ = _dist(*params)
    ref = mp_ref(*params)
    p = torch.tensor([1e-12, 1e-6, 0.01, 0.1, 0.5, 0.9, 1 - 1e-6], dtype=F64)
    x = d.icdf(p)
    assert torch.isfinite(x).all() and (x >= params[2]).all() and (x <= params[3]).all()
    exact = [mp.findroot(lambda t, q=q: ref["cdf"](t) - q, mp.mpf(v), tol=mp.mpf(10) ** -40)
             for q, v in zip(p.tolist(), x.tolist(), strict=True)]
    np.testing.assert_allclose(x.numpy(), [float(e) for e in exact], rtol=1e-13)
    x = x[2:]  # cdf is ill-conditioned (x / (x - low) ~ 1e14) right at a far-out bound
    cdf = np.array([float(ref["cdf"](mp.mpf(v))) for v in x.tolist()])
    np.testing.assert_allclose(d.cdf(x).numpy(), cdf, rtol=1e-9, atol=1e-15)
    lp = np.array([float(ref["logpdf"](mp.mpf(v))) for v in x.tolist()])
    np.testing.assert_allclose(d.log_prob(x).numpy(), lp, rtol=1e-9)
    np.testing.assert_allclose(float(d.mean), float(ref["mean"]), rtol=1e-12)
    # 1 + a m_a - b m_b - (m_a - m_b)^2 cancels ~ a^4 eps: 1e-9 to 20 sigma, 2e-7 at 40
    a = max(abs(float(v)) for v in (ref["a"], ref["b"]) if mp.isfinite(v))  # an infinite bound
    rtol = max(1e-9, 5e-16 * a**4)                                           # adds no cancellation
    assert math.isfinite(rtol) and rtol <= 2e-6
    np.testing.assert_allclose(float(d.variance), float(ref["variance"]), rtol=rtol)
    np.testing.assert_allclose(float(d.entropy()), float(ref["entropy"]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("params", TAILS[:2])
def test_tail_samples_ks_against_scipy(params):
    loc, scale, low, high = params
    d, _ = _dist(*params)
    z = d.rsample((20000,), noise=MonteCarlo(torch.Generator().manual_seed(0)))
    ref = st.truncnorm((low - loc) / scale, (high - loc) / scale, loc, scale)
    assert st.kstest(z.numpy(), ref.cdf).pvalue > 1e-4


@pytest.mark.parametrize("params", TAILS)
def test_tail_pathwise_gradient_of_mean(params):
    """``d E[z] / d theta`` (exact: mpmath mean, central differences) within 5 SE."""
    n = 20000
    loc, scale, low, high = params
    theta = [torch.full((n,), v, dtype=F64, requires_grad=True) for v in params]
    z = TruncatedNormal(*theta).rsample(noise=MonteCarlo(torch.Generator().manual_seed(1)))
    z.sum().backward()
    for i, v in enumerate(params):
        if math.isinf(v):
            continue
        h = mp.mpf(10) ** -20

        def mean_at(w, i=i):
            q = list(params)
            q[i] = w
            return mp_ref(*q)["mean"]

        exact = float((mean_at(mp.mpf(v) + h) - mean_at(mp.mpf(v) - h)) / (2 * h))
        g = theta[i].grad
        se = float(g.std()) / math.sqrt(n)
        assert abs(float(g.mean()) - exact) < 5 * se + 1e-9 * (1 + abs(exact)), (i, exact)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("params", TAILS)
def test_tail_float_finite(params, dtype):
    d, p = _dist(*params, dtype=dtype, grad=True)
    z = d.rsample((4096,), noise=MonteCarlo(torch.Generator().manual_seed(2)))
    assert torch.isfinite(z).all()
    assert (z >= p[2].detach()).all() and (z <= p[3].detach()).all()
    loss = z.sum() + d.log_prob(z).sum() + d.entropy() + d.mean + d.variance
    grads = torch.autograd.grad(loss, p)
    assert all(torch.isfinite(g).all() for g in grads)


def test_ndtri_exp_against_scipy():
    y = -np.concatenate([np.logspace(-12, 4, 400), [0.5, math.log(2.0), 700.0, 710.0, 745.0]])
    np.testing.assert_allclose(ndtri_exp(torch.tensor(y)).numpy(), sp.ndtri_exp(y), rtol=1e-12)
    y32 = y[y > -1e4 / 2]
    out = ndtri_exp(torch.tensor(y32, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out, sp.ndtri_exp(y32), rtol=2e-5, atol=1e-5)


def test_log_ndtr_diff_against_mpmath():
    for a, b in [(-1.0, 2.0), (10.0, 10.5), (-40.0, -39.0), (30.0, math.inf), (-math.inf, 0.3)]:
        exact = mp.log(mp.ncdf(b) - mp.ncdf(a) if a <= 0 else mp.ncdf(-a) - mp.ncdf(-b))
        got = log_ndtr_diff(torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64))
        np.testing.assert_allclose(float(got), float(exact), rtol=1e-12)


def test_implicit_backward_matches_finite_differences():
    a = torch.tensor([-1.0, -12.0, -3.0], dtype=F64, requires_grad=True)
    b = torch.tensor([0.5, -11.0, math.inf], dtype=F64, requires_grad=True)
    u = torch.tensor([0.3, 0.7, 0.9], dtype=F64)
    x = _StdTruncIcdf.apply(a, b, u)
    ga, gb = _std_trunc_icdf_backward(torch.ones_like(x), a, b, u, x)
    h = 1e-6
    for i in range(3):
        for t, g in ((a, ga), (b, gb)):
            if math.isinf(float(t[i].detach())):
                assert float(g[i]) == 0.0
                continue
            e = torch.zeros(3, dtype=F64)
            e[i] = h
            args = (a.detach() + e, b.detach(), u) if t is a else (a.detach(), b.detach() + e, u)
            args_m = (a.detach() - e, b.detach(), u) if t is a else (a.detach(), b.detach() - e, u)
            fd = (_StdTruncIcdf.apply(*args)[i] - _StdTruncIcdf.apply(*args_m)[i]) / (2 * h)
            np.testing.assert_allclose(float(g[i]), float(fd), rtol=1e-5, atol=1e-9)


def test_support_and_out_of_support_log_prob():
    d = TruncatedNormal(*[torch.tensor(v, dtype=F64) for v in (0.0, 1.0, -1.0, 2.0)],
                        validate_args=False)
    assert float(d.log_prob(torch.tensor(3.0, dtype=F64))) == -math.inf
    assert d.support.check(torch.tensor(0.5, dtype=F64))
