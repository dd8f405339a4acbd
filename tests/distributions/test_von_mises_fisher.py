"""Von Mises-Fisher in any dimension: implicit and rejection gradients, density, KL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reparam.distributions import HypersphericalUniform, VonMisesFisher
from reparam.noise import MonteCarlo
from reparam.special import bessel_ratio


def _setup(d: int, kappa0: float, n: int, seed: int):
    torch.manual_seed(seed)
    mu = F.normalize(torch.randn(d, dtype=torch.float64), dim=0).expand(n, d)
    kappa = torch.full((n,), kappa0, dtype=torch.float64, requires_grad=True)
    a = bessel_ratio(d / 2 - 1, torch.tensor(kappa0, dtype=torch.float64)).item()
    return mu, kappa, 1 - a * a - (d - 1) * a / kappa0  # d E[mu^T x] / d kappa


def _z(g: torch.Tensor, truth: float) -> float:
    return abs(g.mean().item() - truth) / (g.std().item() / math.sqrt(len(g)))


@pytest.mark.parametrize("d,kappa0", [(2, 0.5), (3, 5.0), (5, 30.0), (20, 2.0)])
def test_implicit_and_rejection_gradients_are_unbiased(d, kappa0):
    n = 10000
    mu, kappa, truth = _setup(d, kappa0, n, 0)
    q = VonMisesFisher(mu, kappa)
    (g_imp,) = torch.autograd.grad((q.rsample() * mu).sum(), kappa)
    rs = q.rsample_rejection(noise=MonteCarlo(torch.Generator().manual_seed(1)))
    (g_rej,) = torch.autograd.grad(rs.surrogate((rs.value * mu).sum(-1)).sum(), kappa)
    assert _z(g_imp, truth) < 5 and _z(g_rej, truth) < 5


def test_rejection_without_correction_is_biased():
    """Dropping Naesseth's correction term biases the gradient (d = 3, kappa = 5)."""
    mu, kappa, truth = _setup(3, 5.0, 10000, 2)
    rs = VonMisesFisher(mu, kappa).rsample_rejection()
    (g,) = torch.autograd.grad((rs.value * mu).sum(), kappa)
    assert _z(g, truth) > 5


def test_mean_direction_gradient_and_unit_norm():
    mu0 = F.normalize(torch.tensor([1.0, -2.0, 0.5, 0.3], dtype=torch.float64), dim=0)
    mu = mu0.clone().requires_grad_(True)
    q = VonMisesFisher(mu, torch.tensor(10.0, dtype=torch.float64))
    z = q.rsample((20000,))
    assert torch.allclose(z.norm(dim=-1), torch.ones(20000, dtype=torch.float64), atol=1e-12)
    torch.testing.assert_close(z.mean(0), q.mean.detach(), atol=0.01, rtol=0)
    (g,) = torch.autograd.grad((z * mu0).sum(-1).mean(), mu)
    assert bool(torch.isfinite(g).all())


def test_density_entropy_and_kl_to_uniform():
    """d = 3: ``C_3 = kappa / (4 pi sinh kappa)``; entropy and KL match Monte Carlo."""
    kappa = torch.tensor([0.3, 7.0], dtype=torch.float64)
    mu = F.normalize(torch.randn(2, 3, dtype=torch.float64), dim=-1)
    q = VonMisesFisher(mu, kappa)
    x = mu.clone()
    expected = kappa + torch.log(kappa / (4 * math.pi * torch.sinh(kappa)))
    torch.testing.assert_close(q.log_prob(x), expected)
    z = q.sample((40000,))
    mc = -q.log_prob(z).mean(0)
    torch.testing.assert_close(q.entropy(), mc, atol=0.02, rtol=0)
    kl = torch.distributions.kl_divergence(q, HypersphericalUniform(3, dtype=torch.float64))
    torch.testing.assert_close(kl, -mc + math.log(4 * math.pi), atol=0.02, rtol=0)
    assert bool((kl > 0).all())


def test_batch_shapes_and_validation():
    h = torch.randn(8, 16)
    q = VonMisesFisher(F.normalize(h, dim=-1), torch.rand(8) * 10 + 0.1)
    assert q.batch_shape == (8,) and q.event_shape == (16,)
    assert q.rsample().shape == (8, 16) and q.rsample((2,)).shape == (2, 8, 16)
    assert q.log_prob(q.sample()).shape == (8,)
    with pytest.raises(ValueError, match="unit"):
        VonMisesFisher(h, torch.ones(8))
    with pytest.raises(ValueError, match="concentration"):
        VonMisesFisher(F.normalize(h, dim=-1), -torch.ones(8))


def test_log_prob_refuses_a_point_off_the_sphere():
    """Validation on: a non-unit vector is refused; off: its density is 0 (``-inf``)."""
    loc = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64)
    kappa = torch.tensor(3.0, dtype=torch.float64)
    off = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="support"):
        VonMisesFisher(loc, kappa, validate_args=True).log_prob(off)
    lp = VonMisesFisher(loc, kappa, validate_args=False).log_prob(torch.stack([off, loc]))
    assert lp[0] == -math.inf and torch.isfinite(lp[1])


def test_uniform_prior_density_is_zero_off_the_sphere():
    u = HypersphericalUniform(3, dtype=torch.float64)
    lp = u.log_prob(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64))
    assert lp[0] == -math.inf and lp[1] == pytest.approx(-math.log(4 * math.pi), rel=1e-12)


def test_sphere_s2_closed_form_gradient_matches_quadrature_and_mpmath():
    """d = 3: ``dw/dkappa`` in closed form equals the quadrature of the general path and a
    40-digit mpmath derivative of ``F(w) = expm1(kappa s) / expm1(2 kappa)``, ``s = 1 + w``
    (tiny kappa and w near +-1 included)."""
    import mpmath

    import reparam.special.von_mises_fisher as V

    def mp_ref(w: float, k: float) -> float:
        with mpmath.workdps(40):
            w_, k_ = mpmath.mpf(w), mpmath.mpf(k)
            cdf = lambda kk: mpmath.expm1(kk * (w_ + 1)) / mpmath.expm1(2 * kk)  # noqa: E731
            dens = k_ * mpmath.exp(k_ * (w_ + 1)) / mpmath.expm1(2 * k_)
            return float(-mpmath.diff(cdf, k_) / dens)

    kappas = [1e-7, 1e-3, 0.4, 0.5, 0.7, 5.0, 300.0]
    ws = [-1 + 1e-12, -0.9, -1e-3, 0.0, 0.3, 0.999, 1 - 1e-9]
    k = torch.tensor([kk for kk in kappas for _ in ws], dtype=torch.float64)
    w = torch.tensor(ws * len(kappas), dtype=torch.float64)
    closed = V.vmf_dw_dkappa(w, k, 3)
    for wi, ki, gi in zip(w.tolist(), k.tolist(), closed.tolist(), strict=True):
        if ki * (1 + wi) < 700:
            assert gi == pytest.approx(mp_ref(wi, ki), rel=1e-14, abs=1e-300)
    # the general (quadrature) path on moderate points agrees to its own accuracy
    inner = (k >= 1e-3) & (k <= 300) & (w.abs() < 0.99)
    general = V.vmf_dw_dkappa_quadrature(w[inner], k[inner], 3)
    torch.testing.assert_close(general, closed[inner], rtol=1e-10, atol=0.0)
