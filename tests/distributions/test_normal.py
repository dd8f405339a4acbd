"""Normal: scipy references, memory-lean rsample gradients, the seed's broken-vs-works picture."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats

from reparam.distributions import Normal, kl_normal_normal, kl_normal_standard

LOC = torch.tensor([-3.0, 0.0, 0.5, 2.0, 100.0], dtype=torch.float64)
SCALE = torch.tensor([0.1, 1.0, 2.5, 1e-3, 30.0], dtype=torch.float64)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(params=["scale", "logvar"])
def dist(request):
    if request.param == "scale":
        return Normal(LOC, SCALE)
    return Normal(LOC, logvar=2 * torch.log(SCALE))


def test_against_scipy(dist):
    ref = stats.norm(LOC.numpy(), SCALE.numpy())
    x = LOC + SCALE * torch.tensor([-9.0, -1.0, 0.3, 2.0, 7.5])
    p = torch.tensor([1e-12, 0.01, 0.5, 0.99, 1 - 1e-9])
    np.testing.assert_allclose(dist.log_prob(x), ref.logpdf(x.numpy()), rtol=1e-10)
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x.numpy()), rtol=1e-10)
    np.testing.assert_allclose(dist.icdf(p), ref.ppf(p.numpy()), rtol=1e-10)
    np.testing.assert_allclose(dist.entropy(), ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(dist.mean, ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.stddev, ref.std(), rtol=1e-12)
    np.testing.assert_allclose(dist.variance, ref.var(), rtol=1e-12)


def test_samples_pass_ks(dist):
    z = dist.sample((20000,), noise=None)
    assert z.shape == (20000, 5)
    for j in range(5):
        _, pvalue = stats.kstest(z[:, j].numpy(), stats.norm(LOC[j], SCALE[j]).cdf)
        assert pvalue > 1e-4


def test_shapes_and_expand():
    d = Normal(torch.zeros(3), torch.ones(3))
    assert d.batch_shape == (3,) and d.event_shape == ()
    assert d.rsample((4, 2)).shape == (4, 2, 3)
    e = Normal(torch.zeros(3), logvar=torch.zeros(3)).expand((5, 3))
    assert e.batch_shape == (5, 3) and e.sample().shape == (5, 3)
    assert torch.equal(e.logvar, torch.zeros(5, 3))
    assert Normal(0.0, 1.0).rsample((7,)).shape == (7,)


@pytest.mark.parametrize("by", ["scale", "logvar"])
def test_rsample_gradients_match_plain_formula(by):
    loc = torch.randn(4, 3, requires_grad=True)
    param = torch.randn(4, 3, requires_grad=True) if by == "logvar" else \
        (torch.rand(4, 3) + 0.1).requires_grad_()
    dist = Normal(loc, logvar=param) if by == "logvar" else Normal(loc, param)
    gen = torch.Generator().manual_seed(3)
    from reparam.noise import MonteCarlo

    z = dist.rsample((6,), noise=MonteCarlo(gen))
    eps = torch.randn((6, 4, 3), generator=torch.Generator().manual_seed(3))
    std = torch.exp(param / 2) if by == "logvar" else param
    z_plain = loc + std * eps
    torch.testing.assert_close(z, z_plain, rtol=1e-15, atol=1e-15)
    w = torch.randn(6, 4, 3)
    g = torch.autograd.grad((w * z.sin()).sum(), (loc, param))
    g_plain = torch.autograd.grad((w * z_plain.sin()).sum(), (loc, param))
    for a, b in zip(g, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_rsample_broadcast_parameters_get_summed_gradients():
    loc = torch.zeros(3, requires_grad=True)
    logvar = torch.zeros((), requires_grad=True)
    z = Normal(loc, logvar=logvar.expand(3)).rsample((5,))
    z.sum().backward()
    assert loc.grad.shape == (3,) and torch.allclose(loc.grad, torch.full((3,), 5.0))
    torch.testing.assert_close(logvar.grad, 0.5 * z.detach().sum())


def test_rsample_saves_no_noise_tensor():
    loc = torch.randn(1000, requires_grad=True)
    logvar = torch.randn(1000, requires_grad=True)
    z = Normal(loc, logvar=logvar).rsample()
    saved = z.grad_fn.saved_tensors
    kept = {z.data_ptr(), loc.data_ptr()}
    assert {t.data_ptr() for t in saved} <= kept
    assert sum(t.numel() for t in saved) == 2000  # z and loc only: no eps, no exp(logvar / 2)


def test_second_derivatives_are_right():
    loc = torch.tensor([0.3], requires_grad=True)
    logvar = torch.tensor([0.2], requires_grad=True)
    from reparam.noise import MonteCarlo

    z = Normal(loc, logvar=logvar).rsample(noise=MonteCarlo(torch.Generator().manual_seed(0)))
    eps = (z.detach() - loc.detach()) / torch.exp(logvar.detach() / 2)
    (g,) = torch.autograd.grad((z**3).sum(), logvar, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), logvar)
    # d/dlv [3 z^2 * z_lv], z_lv = s eps / 2 with s = exp(lv / 2): = 3 (2 z z_lv^2 + z^2 z_lv / 2)
    s = torch.exp(logvar.detach() / 2)
    zd, zlv = z.detach(), s * eps / 2
    torch.testing.assert_close(h, 3 * (2 * zd * zlv**2 + zd**2 * zlv / 2))


def test_broken_vs_works():
    """The seed's diagram: sample() cuts the gradient, rsample() carries it, unbiasedly."""
    mu = torch.tensor(0.7, requires_grad=True)
    logvar = torch.tensor(math.log(1.3**2), requires_grad=True)
    dist = Normal(mu, logvar=logvar)
    z_broken = dist.sample((10,))
    assert not z_broken.requires_grad  # no path from the loss back to mu or logvar
    with pytest.raises(RuntimeError):
        (z_broken**2).mean().backward()

    n = 200_000
    sigma = dist.scale
    (g_mu, g_sigma) = (None, None)
    z = dist.rsample((n,))
    per_sample = z**2
    # per-sample gradients: d z^2 / d mu = 2 z, d z^2 / d sigma = 2 z eps = 2 z (z - mu) / sigma
    eps = (z.detach() - mu.detach()) / sigma.detach()
    d_mu, d_sigma = 2 * z.detach(), 2 * z.detach() * eps
    per_sample.mean().backward()
    g_mu = mu.grad
    g_sigma = logvar.grad * 2 / sigma.detach()  # chain rule: d/dsigma = d/dlogvar * 2 / sigma
    exact_mu, exact_sigma = 2 * mu.detach(), 2 * sigma.detach()
    assert abs(g_mu - exact_mu) < 5 * d_mu.std() / math.sqrt(n)
    assert abs(g_sigma - exact_sigma) < 5 * d_sigma.std() / math.sqrt(n)
    torch.testing.assert_close(g_mu, d_mu.mean())


def _kl_mp(mu, lv):
    mpmath.mp.dps = 40
    mu, lv = mpmath.mpf(mu), mpmath.mpf(lv)
    return float((mu**2 + mpmath.exp(lv) - 1 - lv) / 2)


@pytest.mark.parametrize("lv", [-30.0, -5.0, -1e-8, 0.0, 1e-6, 3.0, 30.0])
def test_kl_standard_stable_against_mpmath(lv):
    for dtype, rtol in [(torch.float64, 1e-13), (torch.float32, 1e-6)]:
        got = kl_normal_standard(torch.tensor(0.1, dtype=dtype), torch.tensor(lv, dtype=dtype))
        ref = _kl_mp(float(torch.tensor(0.1, dtype=dtype)), float(torch.tensor(lv, dtype=dtype)))
        assert math.isfinite(float(got))
        assert float(got) == pytest.approx(ref, rel=rtol, abs=1e-300)


def test_kl_registered_and_against_monte_carlo():
    p = Normal(torch.tensor([0.5, -1.0]), logvar=torch.tensor([0.3, -2.0]))
    q = Normal(torch.tensor([0.0, 1.0]), logvar=torch.tensor([1.0, 0.5]))
    kl = torch.distributions.kl_divergence(p, q)
    z = p.sample((400_000,))
    terms = p.log_prob(z) - q.log_prob(z)
    se = terms.std(0) / math.sqrt(z.shape[0])
    assert torch.all((kl - terms.mean(0)).abs() < 5 * se)
    torch.testing.assert_close(kl, kl_normal_normal(p.loc, p.logvar, q.loc, q.logvar))
    tq = torch.distributions.Normal(q.loc, q.scale)
    torch.testing.assert_close(torch.distributions.kl_divergence(p, tq), kl)
    torch.testing.assert_close(torch.distributions.kl_divergence(tq, p),
                               torch.distributions.kl_divergence(
                                   torch.distributions.Normal(q.loc, q.scale),
                                   torch.distributions.Normal(p.loc, p.scale)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loc": torch.zeros(2), "scale": torch.tensor([1.0, -1.0])}, "'scale' must be > 0"),
        ({"loc": torch.zeros(2), "scale": torch.tensor([1.0, float("nan")])}, "'scale'"),
        ({"loc": torch.tensor([float("nan")]), "scale": torch.ones(1)}, "'loc'"),
        ({"loc": torch.zeros(1), "logvar": torch.tensor([float("nan")])}, "'logvar'"),
        ({"loc": torch.zeros(3), "scale": torch.ones(4)}, "do not broadcast"),
        ({"loc": torch.zeros(3)}, "exactly one of"),
        ({"loc": torch.zeros(3), "scale": torch.ones(3), "logvar": torch.zeros(3)}, "exactly one"),
    ],
)
def test_bad_parameters_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Normal(**kwargs)
