"""Encoders: the posteriors they return (diagonal, full covariance, flows)."""

import numpy as np
import torch
from scipy import stats

from reparam.distributions import Normal
from reparam.estimators.stl import log_prob_detached as log_q_detached
from reparam.noise import MonteCarlo
from reparam.vae.encoders import (
    FlowEncoder,
    FullCovEncoder,
    FullCovNormal,
    GaussianEncoder,
    VMFEncoder,
)
from reparam.vae.flows import iaf_layers
from reparam.vae.networks import mlp
from reparam.vae.objectives import sample_posterior

D = torch.float64


def test_gaussian_encoder_splits_mu_and_logvar():
    net = mlp(5, [4], 6).double()
    x = torch.rand(3, 5, dtype=D)
    q = GaussianEncoder(net)(x)
    mu, logvar = net(x).chunk(2, -1)
    assert isinstance(q, Normal) and q.batch_shape == (3, 3)
    torch.testing.assert_close(q.loc, mu)
    torch.testing.assert_close(q.logvar, logvar)


def test_full_cov_encoder_gives_a_valid_cholesky_and_scipy_density():
    L = 3
    enc = FullCovEncoder(mlp(5, [4], FullCovEncoder.out_dim(L)), L).double()
    x = torch.rand(2, 5, dtype=D)
    q = enc(x)
    tril = q.scale_tril.detach()
    assert torch.equal(tril, torch.tril(tril)) and (torch.diagonal(tril, 0, -2, -1) > 0).all()
    z, log_q = sample_posterior(q, 4, MonteCarlo(torch.Generator().manual_seed(0)))
    assert z.shape == (4, 2, L) and log_q.shape == (4, 2)
    for b in range(2):
        cov = (tril[b] @ tril[b].T).numpy()
        ref = stats.multivariate_normal(q.loc[b].detach().numpy(), cov).logpdf(z[:, b].detach().numpy())
        np.testing.assert_allclose(log_q[:, b].detach().numpy(), ref, rtol=1e-10)


def test_full_cov_samples_have_the_covariance():
    loc = torch.tensor([1.0, -1.0], dtype=D)
    tril = torch.tensor([[1.0, 0.0], [0.8, 0.5]], dtype=D)
    q = FullCovNormal(loc, scale_tril=tril)
    n = 20000
    z = q.rsample((n,), noise=MonteCarlo(torch.Generator().manual_seed(1)))
    prod = (z[:, 0] - 1) * (z[:, 1] + 1)  # E = cov_01 = 0.8
    assert abs(prod.mean() - 0.8) < 5 * prod.std() / n**0.5


def test_full_cov_log_q_at_detached_parameters_keeps_only_the_path_through_z():
    L = 2
    enc = FullCovEncoder(mlp(4, [3], FullCovEncoder.out_dim(L)), L).double()
    x = torch.rand(2, 4, dtype=D)
    q = enc(x)
    z, log_q = sample_posterior(q, 3)
    detached = log_q_detached(q, z)
    torch.testing.assert_close(detached, log_q)
    zz = z.detach().requires_grad_(True)
    grads = torch.autograd.grad(log_q_detached(q, zz).sum(), [zz, *enc.parameters()],
                                allow_unused=True)
    assert grads[0] is not None and all(g is None for g in grads[1:])


def test_flow_encoder_returns_a_flow_posterior():
    L, C = 3, 5
    enc = FlowEncoder(mlp(6, [8], 2 * L + C), L, C, iaf_layers(L, C, 2, hidden=8))
    q = enc(torch.rand(4, 6))
    z, log_q = q.rsample_with_log_prob((2,))
    assert z.shape == (2, 4, L) and log_q.shape == (2, 4) and q.mean.shape == (4, L)
    log_q.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_vmf_encoder_gives_unit_directions_and_concentrations_above_one():
    enc = VMFEncoder(mlp(6, [8], 4), 3).double()
    q = enc(torch.rand(5, 6, dtype=D))
    torch.testing.assert_close(q.loc.norm(dim=-1), torch.ones(5, dtype=D))
    assert (q.concentration > 1).all() and q.batch_shape == (5,) and q.event_shape == (3,)
    z, log_q = sample_posterior(q, 2)
    assert z.shape == (2, 5, 3) and log_q.shape == (2, 5)
