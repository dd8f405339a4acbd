"""Priors: log densities against manual mixture computations (scipy), sampling, VampPrior wiring."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from reparam.noise import MonteCarlo
from reparam.vae import VAE
from reparam.vae.encoders import GaussianEncoder
from reparam.vae.mixture import DiagonalMixture
from reparam.vae.networks import mlp
from reparam.vae.priors import MixturePrior, SphericalUniformPrior, StandardNormalPrior, VampPrior

D = torch.float64


def test_standard_normal_log_prob_and_sample():
    prior = StandardNormalPrior(3).double()
    z = torch.randn(5, 3, dtype=D)
    ref = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z.numpy())
    np.testing.assert_allclose(prior().log_prob(z).numpy(), ref, rtol=1e-12)
    s = prior.sample(4, torch.Generator().manual_seed(1))
    assert s.shape == (4, 3) and s.dtype == D


def test_mixture_log_prob_matches_manual_mixture():
    prior = MixturePrior(2, num_components=3).double()
    with torch.no_grad():
        prior.logvars.copy_(torch.randn(3, 2, dtype=D) * 0.3)
        prior.logits.copy_(torch.tensor([0.2, -1.0, 0.7], dtype=D))
    z = torch.randn(6, 2, dtype=D) * 2
    m, sd = prior.means.detach().numpy(), np.exp(0.5 * prior.logvars.detach().numpy())
    logw = prior.logits.detach().numpy() - logsumexp(prior.logits.detach().numpy())
    comp = np.stack([stats.norm.logpdf(z.numpy(), m[k], sd[k]).sum(-1) for k in range(3)], -1)
    np.testing.assert_allclose(prior().log_prob(z).detach().numpy(), logsumexp(comp + logw, -1),
                               rtol=1e-12)


def test_mixture_samples_have_the_mixture_mean():
    prior = MixturePrior(2, num_components=4)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([1.0, 0.0, -0.5, 0.3]))
    n = 20000
    s = prior.sample(n, torch.Generator().manual_seed(3))
    pi = torch.softmax(prior.logits.detach(), 0)
    mean = (pi[:, None] * prior.means.detach()).sum(0)
    se = s.std(0) / n**0.5
    assert ((s.mean(0) - mean).abs() < 5 * se).all()


def _vamp(K=4, D_in=5, L=2):
    enc = GaussianEncoder(mlp(D_in, [7], 2 * L)).double()
    return enc, VampPrior(enc, L, D_in, K).double()


def test_vamp_log_prob_is_the_uniform_mixture_of_encoded_pseudo_inputs():
    enc, prior = _vamp()
    z = torch.randn(3, 6, 2, dtype=D)  # sample dims are fine
    u = torch.clamp(prior.pseudo_inputs.detach(), 0, 1)
    q = enc(u)
    loc, sd = q.loc.detach().numpy(), q.scale.detach().numpy()
    comp = np.stack([stats.norm.logpdf(z.numpy(), loc[k], sd[k]).sum(-1) for k in range(4)], -1)
    ref = logsumexp(comp, -1) - np.log(4)
    np.testing.assert_allclose(prior.log_prob(z).detach().numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(prior().log_prob(z).detach().numpy(), ref, rtol=1e-12)


def test_vamp_trains_pseudo_inputs_and_encoder_and_stores_weights_once():
    enc, prior = _vamp()
    prior.log_prob(torch.randn(8, 2, dtype=D)).sum().backward()
    assert prior.pseudo_inputs.grad is not None and prior.pseudo_inputs.grad.abs().sum() > 0
    assert all(p.grad is not None for p in enc.parameters())
    assert [n for n, _ in prior.named_parameters()] == ["pseudo_inputs"]
    model = VAE(encoder=enc, decoder=VAE(5, 2, (7,)).decoder.double(), prior=prior)
    keys = list(model.state_dict())
    assert sum(k.startswith("encoder.") for k in keys) == 4 and "prior_module.pseudo_inputs" in keys


def test_vamp_sampling_is_reproducible_and_comes_from_the_components():
    enc, prior = _vamp(K=1)
    a = prior.sample(5000, torch.Generator().manual_seed(0))
    b = prior.sample(5000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    q = enc(prior.inputs())
    se = q.scale[0].detach() / 5000**0.5
    assert ((a.mean(0) - q.loc[0].detach()).abs() < 5 * se).all()
    # through a noise source the same way the encoder's posterior is sampled
    z = q.rsample(noise=MonteCarlo(torch.Generator().manual_seed(0)))
    assert z.shape == (1, 2)


def test_bad_component_counts_are_refused():
    enc, _ = _vamp()
    with pytest.raises(ValueError, match="num_components"):
        VampPrior(enc, 2, 5, 0)
    with pytest.raises(ValueError, match="num_components"):
        MixturePrior(2, 0)
    with pytest.raises(ValueError, match="init"):
        VampPrior(enc, 2, 5, 3, init=torch.zeros(2, 5))


def test_spherical_uniform_prior():
    prior = SphericalUniformPrior(3).double()
    z = prior.sample(10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(10, dtype=D))
    # |S^2| = 4 pi
    torch.testing.assert_close(prior().log_prob(z), torch.full((10,), -math.log(4 * math.pi), dtype=D))


def test_diagonal_mixture_matches_torch_and_stays_precise_in_float32():
    K, L = 7, 4
    loc = torch.randn(K, L, dtype=D) * 2
    logvar = torch.rand(K, L, dtype=D) * -11.0  # variances down to ~2e-5
    logits = torch.randn(K, dtype=D)
    ref_dist = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Independent(torch.distributions.Normal(loc, (0.5 * logvar).exp()), 1))
    z = torch.cat([torch.randn(5, 3, L, dtype=D),
                   (loc[2] + 1e-3 * torch.randn(1, 3, L, dtype=D))])  # some right at a sharp mode
    ref = ref_dist.log_prob(z)
    got64 = DiagonalMixture(loc, logvar, logits).log_prob(z)
    torch.testing.assert_close(got64, ref, rtol=1e-12, atol=1e-9)
    got32 = DiagonalMixture(loc.float(), logvar.float(), logits.float()).log_prob(z.float())
    assert got32.dtype == torch.float32
    ref32 = ref_dist.log_prob(z.float().double())  # same float32 inputs, exact arithmetic
    torch.testing.assert_close(got32.double(), ref32, rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="logits"):
        DiagonalMixture(loc, logvar, logits[:3])
