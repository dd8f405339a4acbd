"""Importance-sampled log-likelihood: exact on a linear-Gaussian VAE, streaming, active units."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal
from torch.distributions import Normal as TorchNormal

from reparam.noise import MonteCarlo
from reparam.parallel import split_blocks
from reparam.vae import VAE
from reparam.vae.evaluation import (
    active_units,
    elbo_block_sums,
    evaluate,
    evaluate_elbo,
    log_importance_weights,
    log_likelihood,
)
from reparam.vae.model import Decoder
from reparam.vae.priors import StandardNormalPrior


class GaussianLikelihood(nn.Module):
    """x | z ~ N(W z + b, s^2 I) (a test-local likelihood so p(x) is Gaussian in closed form)."""

    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, mean):
        return Independent(TorchNormal(mean, self.s), 1)

    def log_prob(self, mean, x):
        return TorchNormal(mean, self.s).log_prob(x).sum(-1)

    def mean(self, mean):
        return mean


class LinearGaussianEncoder(nn.Module):
    def __init__(self, a, c, logvar):
        super().__init__()
        self.a, self.c, self.logvar = a, c, logvar

    def forward(self, x):
        from reparam.distributions import Normal

        mu = x @ self.a.T + self.c
        return Normal(mu, logvar=self.logvar.expand_as(mu))


def _linear_gaussian(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    d, l, s = 5, 2, 0.5
    w = torch.randn(d, l, generator=g, dtype=dtype)
    b = torch.randn(d, generator=g, dtype=dtype)
    net = nn.Linear(l, d).to(dtype)
    with torch.no_grad():
        net.weight.copy_(w)
        net.bias.copy_(b)
    # an imperfect (but reasonable) encoder: the exact posterior mean map plus a perturbation
    cov_x = w @ w.T + s**2 * torch.eye(d, dtype=dtype)
    a = w.T @ torch.linalg.inv(cov_x)
    post_var = torch.diagonal(torch.eye(l, dtype=dtype) - a @ w)
    encoder = LinearGaussianEncoder(a * 1.1, -(a @ b), torch.log(post_var * 1.3))
    model = VAE(encoder=encoder, decoder=Decoder(net, GaussianLikelihood(s)),
                prior=StandardNormalPrior(l)).to(dtype)
    exact = MultivariateNormal(b, cov_x)
    return model, exact


def test_importance_sampling_converges_to_the_exact_likelihood():
    model, exact = _linear_gaussian()
    x = exact.sample((50,))
    truth = exact.log_prob(x)
    k = 4000
    est = log_likelihood(model, x, k=k, batch_size=16, generator=torch.Generator().manual_seed(1))
    # delta method: se(log mean w) ~= std(w) / (mean(w) sqrt(k)), from an independent draw
    with torch.no_grad():
        lw = log_importance_weights(model, x, k, MonteCarlo(torch.Generator().manual_seed(9)))
    w = torch.exp(lw - lw.max(0).values)
    se = w.std(0) / (w.mean(0) * math.sqrt(k))
    assert torch.all((est - truth).abs() < 5 * se)
    assert float(se.max()) < 0.05  # the check is sharp: a few hundredths of a nat
    # fewer samples: a looser, but still consistent, estimate that lies below on average (Jensen)
    rough = log_likelihood(model, x, k=2, generator=torch.Generator().manual_seed(1))
    assert float((truth - rough).mean()) > 0


def test_chunking_does_not_change_the_estimate():
    model, exact = _linear_gaussian()
    x = exact.sample((8,))
    whole = log_likelihood(model, x, k=300, memory_mb=1e6, generator=torch.Generator().manual_seed(2))
    tiny = log_likelihood(model, x, k=300, memory_mb=1e-9, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(whole, tiny, rtol=1e-12, atol=1e-12)


def test_active_units_counts_dimensions_with_variance():
    means = torch.stack([torch.randn(1000), 0.01 * torch.randn(1000), torch.zeros(1000)], 1)
    assert active_units(means) == 1


def test_evaluate_reports_positive_nll_with_stderr():
    model = VAE(64, latent_dim=3, hidden=(16,))
    x = (torch.rand(30, 64) > 0.5).float()
    out = evaluate(model, x, k=50, batch_size=7)
    assert out["nll"] > 0 and out["nll_stderr"] > 0
    assert out["nll"] <= -out["elbo"] + 5 * out["nll_stderr"]  # the IS bound is the tighter one
    assert 0 <= out["active_units"] <= 3 and math.isfinite(out["recon"])


def test_closed_form_gaussian_path_equals_the_generic_log_weights():
    torch.manual_seed(0)
    model = VAE(20, latent_dim=3, hidden=(8,)).double()
    x = (torch.rand(6, 20) > 0.5).double()
    fast = log_likelihood(model, x, k=64, memory_mb=1e6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # same draws: one chunk of 64 samples from the same generator state
        lw = log_importance_weights(model, x, 64, MonteCarlo(torch.Generator().manual_seed(3)))
    torch.testing.assert_close(fast, torch.logsumexp(lw, 0) - math.log(64), rtol=0, atol=1e-12)


def test_refined_proposal_stays_consistent_and_tightens_the_estimate():
    model, exact = _linear_gaussian()
    x = exact.sample((50,))
    truth = exact.log_prob(x)
    k = 4000
    refined = log_likelihood(model, x, k=k, batch_size=16, refine_steps=200, refine_lr=0.05,
                             generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the delta-method standard error of the amortized proposal bounds it
        lw = log_importance_weights(model, x, k, MonteCarlo(torch.Generator().manual_seed(9)))
    w = torch.exp(lw - lw.max(0).values)
    se = w.std(0) / (w.mean(0) * math.sqrt(k))
    assert torch.all((refined - truth).abs() < 5 * se)
    # with few samples the gap is visible: refinement closes most of it
    plain = log_likelihood(model, x, k=3, generator=torch.Generator().manual_seed(4))
    better = log_likelihood(model, x, k=3, refine_steps=200, refine_lr=0.05,
                            generator=torch.Generator().manual_seed(4))
    gap_plain, gap_better = float((truth - plain).mean()), float((truth - better).mean())
    assert gap_plain > 0.05 and gap_better < 0.5 * gap_plain, (gap_plain, gap_better)


def test_refining_needs_a_diagonal_gaussian_posterior():
    import pytest

    from reparam.vae.evaluation import refine_posterior

    model, exact = _linear_gaussian()
    with pytest.raises(ValueError, match="diagonal Gaussian .* or a two-layer"):
        refine_posterior(model, exact.sample((2,)), TorchNormal(0.0, 1.0), steps=1)
    with pytest.raises(ValueError, match="steps=-1"):
        refine_posterior(model, exact.sample((2,)), model.encode(exact.sample((2,))), steps=-1)


def test_refining_a_two_layer_posterior_raises_its_elbo():
    from reparam.vae.evaluation import refine_posterior
    from reparam.vae.factory import build_model
    from reparam.vae.objectives import sample_posterior
    from reparam.vae.two_layer import HierarchicalPosterior

    torch.manual_seed(0)
    model = build_model({"stochastic_layers": 2, "latent_dim": 3, "latent_dim2": 2,
                         "hidden": [16, 16], "prior": "standard"}, 20).double()
    x = (torch.rand(5, 20) > 0.5).double()

    def elbo_of(q):  # 20000 draws: the ELBO to within ~0.02 nats (standard error)
        with torch.no_grad():
            z, log_q = sample_posterior(q, 20000, MonteCarlo(torch.Generator().manual_seed(5)))
            return (model.log_likelihood(x, z) + model.prior().log_prob(z) - log_q).mean(0)

    q = model.encode(x)
    refined = refine_posterior(model, x, q, steps=150, lr=0.05,
                               noise=MonteCarlo(torch.Generator().manual_seed(6)))
    assert isinstance(refined, HierarchicalPosterior)
    gain = elbo_of(refined) - elbo_of(q)
    assert float(gain.min()) > 0.1 and float(gain.mean()) > 0.2, gain  # every row gains
    ll = log_likelihood(model, x, k=200, refine_steps=20, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(ll).all()


def test_evaluate_elbo_is_the_same_for_any_split_into_blocks():
    """Every block's noise is keyed by its global index: two ranks' halves (block-aligned, as
    :func:`split_blocks` gives them) sum to the one-process result."""
    model = VAE(64, latent_dim=3, hidden=(16,))
    x = (torch.rand(53, 64) > 0.5).float()
    whole = evaluate_elbo(model, x, num_samples=4, batch_size=10, seed=5)
    halves = [split_blocks(53, 10, rank=r, world=2) for r in (0, 1)]
    sums = sum(elbo_block_sums(model, x[p.start:p.stop], 4, 10, 5, p.start).sum(0) for p in halves)
    assert [whole[k] for k in ("elbo", "recon", "kl")] == pytest.approx((sums / 53).tolist(),
                                                                         rel=1e-12)
    assert whole["elbo"] == pytest.approx(-(whole["recon"] + whole["kl"]), rel=1e-6)  # float32
    assert evaluate_elbo(model, x, 4, 10, seed=6)["elbo"] != whole["elbo"]  # the seed matters
    with pytest.raises(ValueError, match="no rows"):
        evaluate_elbo(model, x[:0])
