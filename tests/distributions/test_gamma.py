"""Gamma: exact implicit gradients, MT-rejection alternative, tiny shapes, KL, API."""

from __future__ import annotations

import math

import pytest
import scipy.special as sc
import scipy.stats as st
import torch

from reparam.distributions import Gamma
from reparam.noise import MonteCarlo


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


def _z(estimates: torch.Tensor, truth: float) -> float:
    """How many standard errors the mean of independent estimates is from ``truth``."""
    return abs(estimates.mean().item() - truth) / (estimates.std().item() / math.sqrt(len(estimates)))


@pytest.mark.parametrize("alpha", [0.01, 0.6, 4.0, 300.0])
def test_sample_gradient_is_the_implicit_one(alpha):
    """Per sample, ``dz/dalpha = -(dF/dalpha)/p`` (scipy CDF, central differences)."""
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    rate = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    z = Gamma(a, rate).rsample((40,), noise=_gen(0))
    z = z[z > 1e-250]
    for i in range(0, len(z), 7):
        ga, gr = torch.autograd.grad(z[i], (a, rate), retain_graph=True)
        x, h = z[i].item() * 2.5, 1e-5 * alpha
        dF = (sc.gammainc(alpha + h, x) - sc.gammainc(alpha - h, x)) / (2 * h)
        dens = st.gamma(alpha).pdf(x)
        assert ga.item() == pytest.approx(-dF / dens / 2.5, rel=1e-5)
        assert gr.item() == pytest.approx(-z[i].item() / 2.5, rel=1e-12)


@pytest.mark.parametrize("alpha", [0.3, 2.0, 25.0])
def test_gradient_is_unbiased(alpha):
    """``d E[z^2] / d alpha = 2 alpha + 1`` (rate 1), one independent estimate per element."""
    a = torch.full((20000,), alpha, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(Gamma(a).rsample(noise=_gen(1)).pow(2).sum(), a)
    assert _z(g, 2 * alpha + 1) < 5


def test_rejection_alternative_agrees_with_implicit():
    """Marsaglia-Tsang + Naesseth correction gives the same expected gradient."""
    for alpha in (0.4, 3.0):
        a = torch.full((20000,), alpha, dtype=torch.float64, requires_grad=True)
        rs = Gamma(a).rsample_rejection(noise=_gen(2))
        (g_rej,) = torch.autograd.grad(rs.surrogate(rs.value.pow(2)).sum(), a)
        (g_imp,) = torch.autograd.grad(Gamma(a).rsample(noise=_gen(3)).pow(2).sum(), a)
        diff = g_rej.mean() - g_imp.mean()
        se = math.sqrt(g_rej.var() / len(g_rej) + g_imp.var() / len(g_imp))
        assert abs(diff.item()) < 5 * se
        assert _z(g_rej, 2 * alpha + 1) < 5
        assert st.kstest(rs.value.detach().numpy(), st.gamma(alpha).cdf).pvalue > 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_and_huge_shapes_are_finite(dtype):
    a = torch.tensor([1e-3, 1e-2, 1e4], dtype=dtype, requires_grad=True)
    d = Gamma(a, torch.ones(3, dtype=dtype))
    z = d.rsample((500,))
    assert z.dtype == dtype and bool(torch.isfinite(z).all())
    (g,) = torch.autograd.grad(z.sum(), a)
    assert bool(torch.isfinite(g).all())
    log_z = d.rsample_log((500,))
    assert bool(torch.isfinite(log_z).all()) and log_z[:, 0].min() < -300
    (gl,) = torch.autograd.grad(log_z.sum(), a)
    assert bool(torch.isfinite(gl).all()) and bool((gl > 0).all())


def test_log_prob_entropy_kl_against_scipy():
    a = torch.tensor([0.5, 3.0], dtype=torch.float64)
    r = torch.tensor([2.0, 0.3], dtype=torch.float64)
    d = Gamma(a, r)
    x = torch.tensor([0.7, 9.0], dtype=torch.float64)
    ref = [st.gamma(a[i].item(), scale=1 / r[i].item()).logpdf(x[i].item()) for i in range(2)]
    torch.testing.assert_close(d.log_prob(x), torch.tensor(ref, dtype=torch.float64))
    ent = [st.gamma(a[i].item(), scale=1 / r[i].item()).entropy() for i in range(2)]
    torch.testing.assert_close(d.entropy(), torch.tensor(ent, dtype=torch.float64))
    q = Gamma(torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    kl = torch.distributions.kl_divergence(d, q.expand((2,)))
    z = d.sample((200000,), noise=_gen(4))
    mc = (d.log_prob(z) - q.log_prob(z)).mean(0)
    torch.testing.assert_close(kl, mc, rtol=0.02, atol=0.01)


def test_api_shapes_and_validation():
    conc = torch.rand(8, 4) + 0.5  # an encoder's (B, K) output
    d = Gamma(conc, 1.0)
    assert d.rsample().shape == (8, 4) and d.rsample((3,)).shape == (3, 8, 4)
    assert d.expand((2, 8, 4)).rsample().shape == (2, 8, 4)
    with pytest.raises(ValueError, match="concentration"):
        Gamma(torch.tensor([-1.0]), 1.0)
    with pytest.raises(ValueError, match="rate"):
        Gamma(1.0, torch.tensor(0.0))
