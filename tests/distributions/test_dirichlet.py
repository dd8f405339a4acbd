"""Dirichlet: normalized implicit Gammas; unbiased, finite for tiny concentrations, KL."""

from __future__ import annotations

import math

import pytest
import scipy.stats as st
import torch

from reparam.distributions import Dirichlet
from reparam.noise import MonteCarlo


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


def test_gradient_of_mean_is_unbiased():
    """``d E[z_0] / d alpha_j = (delta_0j alpha_0 - alpha_0) / A^2``, ``A = sum alpha``."""
    alpha0 = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    n = 20000
    alpha = alpha0.expand(n, 3).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(Dirichlet(alpha).rsample(noise=_gen(0))[:, 0].sum(), alpha)
    total = alpha0.sum().item()
    for j in range(3):
        truth = ((j == 0) * total - alpha0[0].item()) / total**2
        assert abs(g[:, j].mean().item() - truth) < 5 * g[:, j].std().item() / math.sqrt(n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_concentrations_give_vertices_without_nan(dtype):
    alpha = torch.full((4000, 10), 1e-3, dtype=dtype, requires_grad=True)
    z = Dirichlet(alpha).rsample(noise=_gen(1))
    assert z.shape == (4000, 10) and bool(torch.isfinite(z).all())
    assert z.max(-1).values.min() > 0.5  # sparse: almost all mass on one vertex
    (g,) = torch.autograd.grad((z * torch.arange(10, dtype=dtype)).sum(), alpha)
    assert bool(torch.isfinite(g).all())
    log_z = Dirichlet(alpha).rsample_log()
    assert bool(torch.isfinite(log_z).all())


def test_marginals_match_beta_and_kl_matches_torch():
    alpha = torch.tensor([0.7, 1.3, 3.0], dtype=torch.float64)
    z = Dirichlet(alpha).sample((5000,), noise=_gen(2))
    assert st.kstest(z[:, 0].numpy(), st.beta(0.7, 4.3).cdf).pvalue > 1e-4
    p, q = Dirichlet(alpha), Dirichlet(torch.ones(3, dtype=torch.float64))
    ref = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                            torch.distributions.Dirichlet(torch.ones(3)))
    torch.testing.assert_close(torch.distributions.kl_divergence(p, q), ref.double())


def test_batch_of_encoder_outputs_and_validation():
    alpha = torch.rand(16, 5) + 0.1
    d = Dirichlet(alpha)
    assert d.batch_shape == (16,) and d.event_shape == (5,)
    assert d.rsample().shape == (16, 5) and d.log_prob(d.sample()).shape == (16,)
    assert d.entropy().shape == (16,)
    with pytest.raises(ValueError, match="concentration"):
        Dirichlet(torch.tensor([1.0, -1.0]))
