"""Two stochastic layers: joint posterior and prior densities against manual computations."""

import numpy as np
import pytest
import torch
from scipy import stats

from reparam.estimators.stl import log_prob_detached as log_q_detached
from reparam.noise import MonteCarlo
from reparam.vae.factory import build_model
from reparam.vae.objectives import elbo, iwae, sample_posterior
from reparam.vae.two_layer import HierarchicalPosterior

D = torch.float64


def _model(prior="standard"):
    torch.manual_seed(0)
    spec = {"stochastic_layers": 2, "latent_dim": 2, "latent_dim2": 3, "hidden": [6],
            "prior": prior, "prior_components": 4}
    return build_model(spec, 8).double()


def _x():
    return (torch.rand(4, 8, generator=torch.Generator().manual_seed(2)) > 0.5).to(D)


def _logpdf(z, loc, scale):
    return stats.norm.logpdf(z.detach().numpy(), loc.detach().numpy(), scale.detach().numpy()).sum(-1)


def test_joint_posterior_log_q_is_top_plus_conditional():
    model, x = _model(), _x()
    q = model.encode(x)
    assert isinstance(q, HierarchicalPosterior) and model.latent_dim == 5
    z, log_q = sample_posterior(q, 3, MonteCarlo(torch.Generator().manual_seed(0)))
    assert z.shape == (3, 4, 5) and log_q.shape == (3, 4)
    z1, z2 = z[..., :2], z[..., 2:]
    enc = model.encoder
    top = enc.top(x)
    q1 = enc.lower(enc.features(x), z2)
    ref = _logpdf(z2, top.loc, top.scale) + _logpdf(z1, q1.loc, q1.scale)
    np.testing.assert_allclose(log_q.detach().numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(q.log_prob(z).detach().numpy(), ref, rtol=1e-10)
    assert q.mean.shape == (4, 5)


def test_detached_log_q_has_gradient_through_z_only():
    model, x = _model(), _x()
    q = model.encode(x)
    z, log_q = sample_posterior(q, 2)
    zz = z.detach().requires_grad_(True)
    val = log_q_detached(q, zz)
    torch.testing.assert_close(val, log_q)
    params = list(model.encoder.parameters())
    grads = torch.autograd.grad(val.sum(), [zz, *params], allow_unused=True)
    assert grads[0] is not None and all(g is None for g in grads[1:])
    # the path through z2 into q(z1|x, z2) is kept: d/dz2 differs from the top term alone
    top = q.top
    g_top = torch.autograd.grad(top.log_prob(zz[..., 2:]).sum(), zz)[0][..., 2:]
    assert not torch.allclose(grads[0][..., 2:], g_top)


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_joint_prior_is_top_times_conditional(prior):
    model = _model(prior)
    z = torch.randn(3, 4, 5, dtype=D)
    z1, z2 = z[..., :2], z[..., 2:]
    mu, logvar = model.prior_module.net(z2).chunk(2, -1)
    top = model.prior_module.top().log_prob(z2).detach().numpy()
    ref = top + _logpdf(z1, mu, (0.5 * logvar).exp())
    np.testing.assert_allclose(model.prior().log_prob(z).detach().numpy(), ref, rtol=1e-10)
    s = model.prior_module.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (7, 5) and model.sample(2).shape == (2, 8)


def test_two_layer_objectives_run_with_every_estimator():
    model, x = _model("vamp"), _x()
    for out in (elbo(model, x, 2), elbo(model, x, 2, estimator="stl"),
                iwae(model, x, 3), iwae(model, x, 3, estimator="dreg")):
        model.zero_grad()
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert all(p.grad is not None for p in model.encoder.parameters())
