"""Likelihoods against independent references (scipy, numerical integration), in float64."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from reparam.vae.likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    continuous_bernoulli_log_norm,
)

D = torch.float64


def test_bernoulli_matches_scipy():
    logits = torch.randn(4, 7, dtype=D) * 3
    x = (torch.rand(4, 7, dtype=D) > 0.5).to(D)
    p = torch.sigmoid(logits).numpy()
    ref = stats.bernoulli.logpmf(x.numpy(), p).sum(-1)
    np.testing.assert_allclose(BernoulliLikelihood().log_prob(logits, x).numpy(), ref, rtol=1e-10)


def test_gaussian_fixed_and_learned_match_scipy():
    x = torch.rand(3, 5, dtype=D)
    loc = torch.randn(3, 5, dtype=D)
    ref = stats.norm.logpdf(x.numpy(), loc.numpy(), 0.3).sum(-1)
    out = GaussianLikelihood(sigma=0.3).log_prob(loc, x)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    log_s = torch.randn(3, 5, dtype=D) * 0.5
    lik = GaussianLikelihood(learned=True)
    assert lik.params_per_dim == 2
    out = lik.log_prob(torch.cat([loc, log_s], -1), x)
    ref = stats.norm.logpdf(x.numpy(), loc.numpy(), np.exp(log_s.numpy())).sum(-1)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    # the learned scale is floored at min_sigma: no divergence on a perfect fit
    params = torch.cat([x, torch.full_like(x, -50.0)], -1)
    assert torch.isfinite(lik.log_prob(params, x)).all()
    torch.testing.assert_close(lik.mean(params), x)
    with pytest.raises(ValueError, match="sigma"):
        GaussianLikelihood(sigma=0.0)


def _cb_norm_by_quadrature(logit: float) -> float:
    lam = 1 / (1 + math.exp(-logit))
    val, _ = integrate.quad(lambda t: lam**t * (1 - lam) ** (1 - t), 0, 1, epsabs=0, epsrel=1e-13)
    return -math.log(val)


LOGITS = [-30.0, -8.0, -1.0, -0.02, -0.01, -1e-3, -1e-7, 0.0, 1e-9, 5e-3, 0.0101, 0.3, 2.0, 15.0]


def test_continuous_bernoulli_normalizer_matches_quadrature():
    got = continuous_bernoulli_log_norm(torch.tensor(LOGITS, dtype=D))
    ref = [_cb_norm_by_quadrature(v) for v in LOGITS]
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_continuous_bernoulli_stable_near_half_in_float32():
    logits = torch.tensor(LOGITS, dtype=torch.float32, requires_grad=True)
    got = continuous_bernoulli_log_norm(logits)
    ref = continuous_bernoulli_log_norm(torch.tensor(LOGITS, dtype=D))
    np.testing.assert_allclose(got.detach().double().numpy(), ref.numpy(), rtol=2e-6, atol=2e-6)
    got.sum().backward()  # d log C / dl = 1/l - 1/sinh(l): odd, ~ l/6 near 0; finite everywhere
    assert torch.isfinite(logits.grad).all()
    np.testing.assert_allclose(logits.grad[7].item(), 0.0, atol=1e-6)


def test_continuous_bernoulli_log_prob_and_mean_by_quadrature():
    lik = ContinuousBernoulliLikelihood()
    for logit in [-4.0, -0.005, 0.0, 0.5, 6.0]:
        lam = 1 / (1 + math.exp(-logit))
        l_t = torch.tensor([[logit, logit]], dtype=D)
        x = torch.tensor([[0.2, 0.9]], dtype=D)
        got = lik.log_prob(l_t, x).item()
        ref = sum(t * math.log(lam) + (1 - t) * math.log1p(-lam) for t in (0.2, 0.9))
        ref += 2 * _cb_norm_by_quadrature(logit)
        assert got == pytest.approx(ref, rel=1e-10, abs=1e-12)
        C = math.exp(_cb_norm_by_quadrature(logit))
        mean, _ = integrate.quad(lambda t, c=C, p=lam: t * c * p**t * (1 - p) ** (1 - t), 0, 1)
        assert lik.mean(l_t)[0, 0].item() == pytest.approx(mean, rel=1e-9, abs=1e-12)


def _dlogistic_reference(x, m, s, n=256):
    """Bin probabilities of a logistic CDF in 400-digit arithmetic (mpmath)."""
    mpmath.mp.dps = 400
    half = mpmath.mpf(1) / (2 * (n - 1))
    cdf = lambda t: 1 / (1 + mpmath.exp(-(t - mpmath.mpf(m)) / mpmath.mpf(s)))  # noqa: E731
    out = []
    for k in x:
        t = mpmath.mpf(int(round(k * (n - 1)))) / (n - 1)
        if k > 1 - 1e-9:  # the open top bin: the survival function, without cancellation
            p = 1 / (1 + mpmath.exp((t - half - mpmath.mpf(m)) / mpmath.mpf(s)))
        else:
            p = cdf(t + half) - (cdf(t - half) if k > 1e-9 else 0)
        out.append(float(mpmath.log(p)))
    return np.array(out)


def test_discretized_logistic_matches_scipy_and_normalizes():
    lik = DiscretizedLogisticLikelihood()
    x = torch.tensor([0, 1, 17, 128, 254, 255], dtype=D) / 255
    for m, log_s in [(0.5, -2.0), (0.1, -4.0), (0.9, -1.0), (0.3, -6.0)]:
        params = torch.cat([torch.full_like(x, m), torch.full_like(x, log_s)]).unsqueeze(0)
        # per-pixel values: evaluate one pixel at a time through a D=1 view
        per = torch.stack([lik.log_prob(params[:, [i, i + 6]], x[None, [i]]) for i in range(6)])
        ref = _dlogistic_reference(x.numpy(), m, math.exp(log_s))
        np.testing.assert_allclose(per.squeeze(-1).numpy(), ref, rtol=1e-8, atol=1e-10)
        grid = torch.arange(256, dtype=D) / 255
        full = torch.stack([torch.full_like(grid, m), torch.full_like(grid, log_s)], -1)
        total = torch.logsumexp(torch.stack(
            [lik.log_prob(full[i], grid[i:i + 1]) for i in range(256)]), 0)
        assert total.item() == pytest.approx(0.0, abs=1e-10)


def test_discretized_logistic_tail_is_finite_and_accurate():
    lik = DiscretizedLogisticLikelihood()
    x = torch.tensor([[100 / 255]], dtype=D)
    params = torch.tensor([[0.9, -6.0]], dtype=D)  # pixel ~190 scales away from the mean
    got = lik.log_prob(params, x).item()
    s, half = math.exp(-6.0), 0.5 / 255
    a, b = (100 / 255 + half - 0.9) / s, (100 / 255 - half - 0.9) / s
    ref = math.log(1 / (1 + math.exp(-a)) - 1 / (1 + math.exp(-b)))  # a, b ~ -185: no cancellation
    assert math.isfinite(got) and got == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_has_shapes_and_finite_gradients(name):
    lik = LIKELIHOODS[name]()
    x = torch.randint(0, 256, (4, 6)).float() / 255
    params = torch.randn(3, 4, 6 * lik.params_per_dim, requires_grad=True)  # (S, B, k*D)
    lp = lik.log_prob(params, x)
    assert lp.shape == (3, 4)
    lp.sum().backward()
    assert torch.isfinite(params.grad).all()
    assert lik.mean(params).shape == (3, 4, 6)


def test_discretized_logistic_distribution_samples_match_its_probabilities():
    lik = DiscretizedLogisticLikelihood(num_bins=4)
    params = torch.tensor([[0.4, math.log(0.3)]], dtype=D)
    dist = lik(params)
    assert dist.event_shape == (1,)
    torch.manual_seed(0)
    n = 20000
    s = dist.sample((n,)).reshape(-1)
    grid = torch.arange(4, dtype=D) / 3
    probs = torch.stack([dist.log_prob(g.reshape(1, 1)).exp().reshape(()) for g in grid])
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    freq = torch.stack([(s == g).to(D).mean() for g in grid])
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() < 5 * se).all()
