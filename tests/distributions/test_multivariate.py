"""MultivariateNormal (scale_tril) and LowRankMultivariateNormal: the checks of the family
harness adapted to vectors (scipy.stats.multivariate_normal as the reference)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch.distributions import kl_divergence

from reparam.distributions import LowRankMultivariateNormal, MultivariateNormal
from reparam.noise import Antithetic, MonteCarlo, Sobol

F64 = torch.float64
LOC = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
TRIL = torch.tensor([[1.2, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.5, 0.4, 1.5]], dtype=F64)
W = torch.tensor([[1.0, 0.2], [-0.5, 0.7], [0.3, -1.1]], dtype=F64)
DIAG = torch.tensor([0.5, 1.3, 0.8], dtype=F64)


def _mc(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


def cases():
    """(distribution, covariance) pairs."""
    return [(MultivariateNormal(LOC, scale_tril=TRIL), TRIL @ TRIL.T),
            (LowRankMultivariateNormal(LOC, W, DIAG), W @ W.T + torch.diag(DIAG))]


@pytest.mark.parametrize("i", [0, 1], ids=["cholesky", "low_rank"])
def test_values_match_scipy(i):
    d, cov = cases()[i]
    ref = st.multivariate_normal(LOC.numpy(), cov.numpy())
    x = torch.tensor(ref.rvs(20, random_state=0), dtype=F64)
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-9)
    np.testing.assert_allclose(float(d.entropy()), ref.entropy(), rtol=1e-9)
    np.testing.assert_allclose(d.mean.numpy(), LOC.numpy(), rtol=1e-12)
    np.testing.assert_allclose(d.variance.numpy(), np.diag(cov.numpy()), rtol=1e-9)


@pytest.mark.parametrize("noise", ["mc", "antithetic", "sobol"])
@pytest.mark.parametrize("i", [0, 1], ids=["cholesky", "low_rank"])
def test_samples_ks(i, noise):
    """Mahalanobis^2 ~ chi2(d) and a projection ~ N(a.mu, a^T S a), each by KS."""
    d, cov = cases()[i]
    source = {"mc": _mc(0), "antithetic": Antithetic(_mc(1)), "sobol": Sobol(seed=2)}[noise]
    z = d.rsample((20000 if noise == "mc" else 4096,), noise=source)
    r = z - LOC
    m2 = (r * torch.linalg.solve(cov, r.T).T).sum(-1)
    assert st.kstest(m2.numpy(), st.chi2(3).cdf).pvalue > 1e-4
    a = torch.tensor([0.3, -0.7, 1.1], dtype=F64)
    proj = st.norm(float(a @ LOC), math.sqrt(float(a @ cov @ a)))
    assert st.kstest((z @ a).numpy(), proj.cdf).pvalue > 1e-4


def _per_sample_grads(make, params: dict, f, n: int, seed: int) -> dict:
    """Per-sample gradients: every sample gets its own copy of the parameters."""
    leaves = {k: v.expand(n, *v.shape).clone().requires_grad_() for k, v in params.items()}
    z = make(**leaves).rsample(noise=_mc(seed))
    f(z).sum().backward()
    return {k: v.grad for k, v in leaves.items()}


def _exact(make, params: dict, expectation) -> dict:
    """Exact gradients: autograd of a closed-form expectation."""
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    grads = torch.autograd.grad(expectation(**leaves), list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g
            for (k, v), g in zip(leaves.items(), grads, strict=True)}


A = torch.tensor([0.3, -0.7, 1.1], dtype=F64)
TESTS = {  # f(z), E f(z) as a function of (loc, cov)
    "sq_norm": (lambda z: z.pow(2).sum(-1), lambda loc, cov: loc.pow(2).sum() + cov.trace()),
    "sin_proj": (lambda z: torch.sin(z @ A),
                 lambda loc, cov: torch.sin(loc @ A) * torch.exp(-0.5 * A @ cov @ A)),
    "linear": (lambda z: z @ A, lambda loc, cov: loc @ A),
}
FAMILIES = {
    "cholesky": (MultivariateNormal, {"loc": LOC, "scale_tril": TRIL},
                 lambda loc, scale_tril: scale_tril @ scale_tril.T),
    "low_rank": (LowRankMultivariateNormal, {"loc": LOC, "cov_factor": W, "cov_diag": DIAG},
                 lambda loc, cov_factor, cov_diag: cov_factor @ cov_factor.T + torch.diag(cov_diag)),
}


@pytest.mark.parametrize("fam,test", list(itertools.product(FAMILIES, TESTS)))
def test_pathwise_gradient_unbiased(fam, test):
    make, params, cov_of = FAMILIES[fam]
    f, expect = TESTS[test]
    n = 8000
    grads = _per_sample_grads(make, params, f, n, seed=3)
    exact = _exact(make, params, lambda **p: expect(p["loc"], cov_of(**p)))
    for k, g in grads.items():
        mean, se = g.mean(0), g.std(0) / math.sqrt(n)
        if k == "scale_tril":  # only the lower triangle is a parameter
            mask = torch.tril(torch.ones_like(mean, dtype=torch.bool))
            mean, se, ex = mean[mask], se[mask], exact[k][mask]
        else:
            ex = exact[k]
        assert (mean - ex).abs().le(5 * se + 1e-9).all(), (k, mean, ex, se)


@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 1e2, 1e6])
def test_float32_finite_gradients(scale):
    loc = (LOC.float() * 1e3).requires_grad_()
    tril = (TRIL.float() * scale).requires_grad_()
    w, diag = (W.float() * scale).requires_grad_(), (DIAG.float() * scale**2).requires_grad_()
    for d, params in ((MultivariateNormal(loc, scale_tril=tril), (loc, tril)),
                      (LowRankMultivariateNormal(loc, w, diag), (loc, w, diag))):
        z = d.rsample((256,), noise=_mc(4))
        grads = torch.autograd.grad(z.sum() + d.log_prob(z).sum(), params)
        assert torch.isfinite(z).all() and all(torch.isfinite(g).all() for g in grads)


def test_low_rank_sample_cost_is_linear_in_d():
    """d = 20000 with r = 2: a dense d x d factor would need 3.2 GB; O(d r) needs nothing."""
    d = LowRankMultivariateNormal(torch.zeros(20000), torch.ones(20000, 2) * 0.1, torch.ones(20000))
    z = d.rsample((4,))
    assert z.shape == (4, 20000) and torch.isfinite(d.log_prob(z)).all()


def test_shapes_expand_and_noise():
    for d, _ in cases():
        e = d.expand((5,))
        assert e.rsample((2,)).shape == (2, 5, 3) and e.sample(noise=Sobol(seed=0)).shape == (5, 3)
        assert isinstance(e, type(d)) and e.log_prob(e.rsample()).shape == (5,)


def test_kl_against_closed_form():
    p = MultivariateNormal(LOC, scale_tril=TRIL)
    q, cov_q = LowRankMultivariateNormal(-LOC, W, DIAG), W @ W.T + torch.diag(DIAG)
    cov_p = TRIL @ TRIL.T
    prec = torch.linalg.inv(cov_q)
    diff = 2 * LOC
    exact = 0.5 * (torch.trace(prec @ cov_p) + diff @ prec @ diff - 3
                   + torch.logdet(cov_q) - torch.logdet(cov_p))
    torch.testing.assert_close(kl_divergence(p, q), exact)


@pytest.mark.parametrize("make,name", [
    (lambda: MultivariateNormal(LOC, scale_tril=-TRIL), "scale_tril"),
    (lambda: MultivariateNormal(LOC, scale_tril=TRIL.T), "scale_tril"),
    (lambda: MultivariateNormal(LOC * math.nan, scale_tril=TRIL), "loc"),
    (lambda: MultivariateNormal(LOC, scale_tril=TRIL * math.nan), "scale_tril"),
    (lambda: MultivariateNormal(LOC, scale_tril=TRIL[:2, :2]), "scale_tril"),
    (lambda: LowRankMultivariateNormal(LOC, W, -DIAG), "cov_diag"),
    (lambda: LowRankMultivariateNormal(LOC, W * math.nan, DIAG), "cov_factor"),
    (lambda: LowRankMultivariateNormal(LOC * math.nan, W, DIAG), "loc"),
])
def test_invalid_parameters(make, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        make()
