"""The generic implicit-gradient helper and the log-space Gamma sampler."""

from __future__ import annotations

import math

import pytest
import scipy.stats as st
import torch

from reparam.distributions import Kumaraswamy, implicit_rsample
from reparam.distributions.implicit import implicit_log_gamma, log_standard_gamma
from reparam.noise import MonteCarlo


def _kuma_cdf_grad(z, a, b):
    """``F = 1 - (1 - z^a)^b``: ``dF/da = b (1 - z^a)^(b-1) z^a log z``,
    ``dF/db = -(1 - z^a)^b log(1 - z^a)``."""
    za = z**a
    return b * (1 - za) ** (b - 1) * za * torch.log(z), -((1 - za) ** b) * torch.log1p(-za)


def _kuma_log_pdf(z, a, b):
    return torch.log(a * b) + (a - 1) * torch.log(z) + (b - 1) * torch.log1p(-z**a)


def test_helper_matches_explicit_inverse_cdf_gradient():
    """Kumaraswamy has a closed-form inverse CDF: implicit and explicit gradients must agree."""
    a = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0, 0.7, 1.5], dtype=torch.float64, requires_grad=True)
    u = torch.rand(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    explicit = (1 - (1 - u) ** (1 / b)) ** (1 / a)  # F^{-1}(u)
    ga, gb = torch.autograd.grad(explicit.sum(), (a, b))
    z = implicit_rsample(explicit.detach(), (a, b), _kuma_cdf_grad, _kuma_log_pdf)
    assert torch.equal(z, explicit.detach())
    ia, ib = torch.autograd.grad(z.sum(), (a, b))
    torch.testing.assert_close(ia, ga, rtol=1e-10, atol=0)
    torch.testing.assert_close(ib, gb, rtol=1e-10, atol=0)


def test_helper_matches_the_library_kumaraswamy_pathwise_gradient():
    a = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.4, dtype=torch.float64, requires_grad=True)
    x = Kumaraswamy(a, b).rsample((200,), noise=MonteCarlo(torch.Generator().manual_seed(1)))
    g_path = torch.autograd.grad(x.pow(2).sum(), (a, b))
    z = implicit_rsample(x.detach(), (a, b), _kuma_cdf_grad, _kuma_log_pdf)
    g_impl = torch.autograd.grad(z.pow(2).sum(), (a, b))
    for p, q in zip(g_path, g_impl, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=0)


def test_helper_only_computes_what_is_asked():
    calls = []

    def cdf_grad(z, a):
        calls.append(1)
        return (torch.ones_like(z),)

    a = torch.tensor(1.0)
    z = implicit_rsample(torch.ones(3, requires_grad=True), (a,), cdf_grad, None)
    assert not z.requires_grad and not calls


def test_log_standard_gamma_is_finite_and_distributed_right():
    gen = torch.Generator().manual_seed(2)
    a = torch.tensor([1e-3, 0.4, 3.0], dtype=torch.float64)
    log_g = log_standard_gamma(a, torch.Size([4000, 3]), MonteCarlo(gen))
    assert bool(torch.isfinite(log_g).all())
    assert log_g[:, 0].min() < -700  # far below float64's smallest normal: kept in log space
    for k in (1, 2):
        p = st.kstest(log_g[:, k].exp().numpy(), st.gamma(a[k].item()).cdf).pvalue
        assert p > 1e-4
    # P(G < x) = x^a / Gamma(a + 1) (1 + O(x)) for x = e^-1000, beyond float64
    frac = (log_g[:, 0] < -1000).double().mean().item()
    expected = math.exp(-1000 * 1e-3 - math.lgamma(1 + 1e-3))
    se = math.sqrt(expected * (1 - expected) / 4000)
    assert abs(frac - expected) < 5 * se + 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_implicit_log_gamma_gradient_and_dtype(dtype):
    from reparam.special import gamma_dlogx_da

    a = torch.tensor([0.02, 1.5, 80.0], dtype=dtype, requires_grad=True)
    y = implicit_log_gamma(a, torch.Size([7, 3]))
    assert y.dtype == dtype
    (g,) = torch.autograd.grad(y.sum(), a)
    expected = gamma_dlogx_da(y.detach(), a.detach()).sum(0)
    torch.testing.assert_close(g, expected)


def test_backward_runs_on_one_thread_and_restores_the_setting():
    from reparam.distributions import Gamma
    from reparam.distributions.implicit import one_thread

    before = torch.get_num_threads()
    seen = []
    with one_thread():
        seen.append(torch.get_num_threads())
    a = torch.tensor(3.0, requires_grad=True)
    Gamma(a).rsample((50,)).sum().backward()
    assert seen == [1] and torch.get_num_threads() == before and torch.isfinite(a.grad)
