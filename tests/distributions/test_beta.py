"""Beta: exact implicit gradients in both shapes, tiny concentrations pile up at the ends."""

from __future__ import annotations

import math

import pytest
import scipy.special as sc
import scipy.stats as st
import torch

from reparam.distributions import Beta
from reparam.noise import MonteCarlo


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("a0,b0", [(0.05, 0.5), (2.0, 3.0), (300.0, 0.7), (40.0, 60.0)])
def test_sample_gradients_are_the_implicit_ones(a0, b0):
    a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    x = Beta(a, b).rsample((30,), noise=_gen(0))
    keep = (x > 1e-250) & (x < 1 - 1e-12)
    for i in torch.nonzero(keep).flatten()[::5].tolist():
        ga, gb = torch.autograd.grad(x[i], (a, b), retain_graph=True)
        xi, dens = x[i].item(), st.beta(a0, b0).pdf(x[i].item())
        for g, fd in ((ga, lambda h, xi=xi: sc.betainc(a0 + h, b0, xi) - sc.betainc(a0 - h, b0, xi)),
                      (gb, lambda h, xi=xi: sc.betainc(a0, b0 + h, xi) - sc.betainc(a0, b0 - h, xi))):
            h = 1e-5 * min(a0, b0)
            assert g.item() == pytest.approx(-fd(h) / (2 * h) / dens, rel=1e-5)


def test_gradient_is_unbiased():
    """``d E[x] / da = b / (a + b)^2`` and ``d E[x] / db = -a / (a + b)^2``."""
    a = torch.full((20000,), 0.8, dtype=torch.float64, requires_grad=True)
    b = torch.full((20000,), 2.5, dtype=torch.float64, requires_grad=True)
    ga, gb = torch.autograd.grad(Beta(a, b).rsample(noise=_gen(1)).sum(), (a, b))
    for g, truth in ((ga, 2.5 / 3.3**2), (gb, -0.8 / 3.3**2)):
        assert abs(g.mean().item() - truth) < 5 * g.std().item() / math.sqrt(len(g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_concentrations_pile_up_at_the_ends(dtype):
    """Beta(1e-3, 1e-3): half the mass within 1e-10 of each end (torch #15738, #84625)."""
    n = 20000
    c = torch.full((n,), 1e-3, dtype=dtype, requires_grad=True)
    x = Beta(c, c).rsample(noise=_gen(2))
    assert bool(torch.isfinite(x).all())
    ends = ((x < 1e-10) | (x > 1 - 1e-6)).double().mean().item()
    expected = 2 * st.beta(1e-3, 1e-3).cdf(1e-10) if dtype == torch.float64 else \
        st.beta(1e-3, 1e-3).cdf(1e-10) + st.beta(1e-3, 1e-3).sf(1 - 1e-6)
    assert abs(ends - expected) < 5 * math.sqrt(expected * (1 - expected) / n)
    assert abs((x < 0.5).double().mean().item() - 0.5) < 5 * 0.5 / math.sqrt(n)
    g = torch.autograd.grad(x.sum(), c)[0]
    assert bool(torch.isfinite(g).all())


def test_large_and_float32_gradients_finite():
    a = torch.tensor([300.0, 1e-2, 5.0], requires_grad=True)
    b = torch.tensor([1e-2, 300.0, 300.0], requires_grad=True)
    x = Beta(a, b).rsample((200,))
    ga, gb = torch.autograd.grad(x.sum(), (a, b))
    assert bool(torch.isfinite(ga).all() & torch.isfinite(gb).all())


def test_moderate_samples_match_scipy_and_kl():
    d = Beta(torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64))
    x = d.sample((5000,), noise=_gen(3))
    assert st.kstest(x.numpy(), st.beta(2.0, 0.6).cdf).pvalue > 1e-4
    assert d.log_prob(torch.tensor(0.3, dtype=torch.float64)).item() == pytest.approx(
        st.beta(2.0, 0.6).logpdf(0.3), rel=1e-12)
    q = Beta(torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    kl = torch.distributions.kl_divergence(d, q)
    assert kl.item() == pytest.approx(-st.beta(2.0, 0.6).entropy(), rel=1e-10)


def test_validation():
    with pytest.raises(ValueError, match="concentration0"):
        Beta(torch.tensor(1.0), torch.tensor(-2.0))


def test_samples_near_one_keep_their_distance_to_one():
    """``1 - x`` below the ulp of ``log G_a`` (small shapes pile up at 1): the sample is the
    correctly rounded ``G_a / (G_a + G_b)`` of the same Gamma draws, not 1 - eps/2."""
    from reparam.distributions.implicit import log_standard_gamma

    a = torch.full((4000,), 0.01, dtype=torch.float64)
    x = Beta(a, a).rsample(noise=_gen(3))
    src = _gen(3)  # replay the two Gamma draws
    la, lb = (log_standard_gamma(a, torch.Size([4000]), src) for _ in "ab")
    exact = torch.sigmoid(la - lb)  # 1 / (1 + G_b / G_a), rounded once
    near_one = (exact > 1 - 1e-14) & (exact < 1 - 2.3e-16)
    assert int(near_one.sum()) >= 5  # the case is exercised
    # within one ulp below 1 (1.1e-16); log G_a - logaddexp(...) was off by several
    torch.testing.assert_close(x[near_one], exact[near_one], rtol=0.0, atol=1.2e-16)


@pytest.mark.parametrize("a0,b0", [(50.0, 50.0), (200.0, 200.0), (60.0, 120.0), (240.0, 80.0),
                                   (1000.0, 1000.0), (1500.0, 2000.0)])
def test_continued_fraction_equals_the_integral(monkeypatch, a0, b0):
    """Past the series' reach the continued fraction (differentiated along its recurrence)
    gives what the quadrature gives, to ~1e-13, on both sides of the mean."""
    import reparam.special.beta as SB

    a = torch.full((3000,), a0, dtype=torch.float64)
    b = torch.full((3000,), b0, dtype=torch.float64)
    x = Beta(a, b).rsample(noise=_gen(4)).detach()
    lx, ly = x.log(), torch.log1p(-x)
    monkeypatch.setattr(SB, "CF_BULK", 1)  # the 3000 entries take the bulk band too
    calls = []
    real = SB._by_fraction
    monkeypatch.setattr(SB, "_by_fraction", lambda *args: calls.append(1) or real(*args))
    with_cf = SB.beta_dx_dab(lx, ly, a, b)
    assert calls
    monkeypatch.setattr(SB, "CF_REACH", -1.0)  # everything past the series integrates
    integral = SB.beta_dx_dab(lx, ly, a, b)
    for got, ref in zip(with_cf, integral, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=0.0)
