"""Objectives: ELBO / IWAE identities, bounds, and unbiasedness of STL and DReG (fixed seeds,
5-sigma z-tests)."""

import math

import pytest
import torch

from reparam.distributions import kl_normal_standard
from reparam.noise import MonteCarlo
from reparam.vae import VAE
from reparam.vae.factory import build_model
from reparam.vae.objectives import elbo, iwae, linear_warmup, log_weights

D = torch.float64


def _tiny(seed=0, prior="standard", posterior="gaussian"):
    torch.manual_seed(seed)
    spec = {"hidden": [5], "latent_dim": 2, "prior": prior, "posterior": posterior,
            "prior_components": 3}
    return build_model(spec, 6).double()


def _x(n=3, seed=1):
    return (torch.rand(n, 6, generator=torch.Generator().manual_seed(seed)) > 0.5).to(D)


def _noise(seed):
    return MonteCarlo(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
def test_iwae_with_one_sample_is_the_mc_kl_elbo(prior):
    model, x = _tiny(prior=prior), _x()
    a = iwae(model, x, 1, noise=_noise(5))
    b = elbo(model, x, 1, noise=_noise(5), kl="mc")
    torch.testing.assert_close(a.elbo, b.elbo)
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.kl, b.kl)
    torch.testing.assert_close(b.elbo, -(b.recon + b.kl))


def test_iwae_exceeds_elbo_in_expectation_and_mc_kl_matches_analytic():
    model, n = _tiny(), 4000
    x = _x(n=1).expand(n, 6)  # n independent replicates of one example, one batch
    with torch.no_grad():
        log_w8 = log_weights(model, x, 8, noise=_noise(0))[0]
        log_w1, log_px, _, _, _ = log_weights(model, x, 1, noise=_noise(1))
        q = model.encode(x)
        analytic = log_px[0] - kl_normal_standard(q.loc, q.logvar).sum(-1)
    bound8 = torch.logsumexp(log_w8, 0) - math.log(8)
    gap = bound8 - log_w1[0]
    assert gap.mean() > 5 * gap.std() / math.sqrt(n)  # the 8-sample bound is strictly tighter
    diff = log_w1[0] - analytic  # same z: the two ELBO estimates differ only in the KL term
    assert diff.mean().abs() < 5 * diff.std() / math.sqrt(n)
    # and the batch means are what the objectives report
    torch.testing.assert_close(iwae(model, x, 8, noise=_noise(0)).elbo, bound8.mean())


def test_vmf_closed_form_kl_is_the_mean_of_the_mc_kl():
    torch.manual_seed(0)
    model = build_model({"hidden": [5], "latent_dim": 3, "posterior": "vmf", "prior": "sphere"},
                        6).double()
    n = 4000
    x = _x(n=1).expand(n, 6)
    with torch.no_grad():
        closed = elbo(model, x, 1, noise=_noise(0))       # kl="auto": torch's registered KL
        mc = elbo(model, x, 1, noise=_noise(0), kl="mc")
        q = model.encode(x)
        z = q.sample((1,))
        mc_terms = (q.log_prob(z) - model.prior().log_prob(z))[0]
    exact = torch.distributions.kl_divergence(q, model.prior()).mean()
    torch.testing.assert_close(closed.kl, exact)
    assert abs(mc.kl - exact) < 5 * mc_terms.std() / math.sqrt(n)
    assert abs(mc_terms.mean() - exact) < 5 * mc_terms.std() / math.sqrt(n)


def _grads(loss_fn, model, n):
    out = []
    for i in range(n):
        model.zero_grad()
        loss_fn(i).loss.backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(out)


def _assert_same_mean(a, b):
    n = a.shape[0]
    se = (a.var(0) / n + b.var(0) / n).sqrt()
    assert torch.isfinite(se).all()  # a nan would drop out of the z-test below
    keep = se > 1e-12
    assert keep.any()
    z = (a.mean(0) - b.mean(0))[keep] / se[keep]
    assert z.abs().max() < 5, f"max |z| = {z.abs().max():.2f}"
    # coordinates without spread (e.g. no gradient at all) must agree exactly, not be skipped
    torch.testing.assert_close(a.mean(0)[~keep], b.mean(0)[~keep], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("prior, posterior", [("standard", "gaussian"), ("vamp", "full-cov")])
def test_stl_is_unbiased_for_the_elbo_gradient(prior, posterior):
    model, x = _tiny(prior=prior, posterior=posterior), _x()
    n = 200
    stl = _grads(lambda i: elbo(model, x, 2, noise=_noise(i), estimator="stl"), model, n)
    path = _grads(lambda i: elbo(model, x, 2, noise=_noise(10_000 + i), kl="mc"), model, n)
    _assert_same_mean(stl, path)


def test_score_function_is_unbiased_for_the_elbo_gradient():
    model, x = _tiny(), _x()
    n = 200
    score = _grads(lambda i: elbo(model, x, 4, noise=_noise(i), estimator="score"), model, n)
    path = _grads(lambda i: elbo(model, x, 4, noise=_noise(10_000 + i), kl="mc"), model, n)
    _assert_same_mean(score, path)
    out = elbo(model, x, 4, noise=_noise(0), estimator="score")
    torch.testing.assert_close(out.elbo, -(out.recon + out.kl))


def test_dreg_is_unbiased_for_the_iwae_gradient_and_has_lower_encoder_variance():
    model, x = _tiny(), _x()
    n = 200
    dreg = _grads(lambda i: iwae(model, x, 8, noise=_noise(i), estimator="dreg"), model, n)
    path = _grads(lambda i: iwae(model, x, 8, noise=_noise(10_000 + i)), model, n)
    _assert_same_mean(dreg, path)
    n_enc = sum(p.numel() for p in model.encoder.parameters())  # encoder first in parameters()
    assert dreg[:, :n_enc].var(0).sum() < path[:, :n_enc].var(0).sum()
    # the value is the IWAE bound whatever the estimator
    a = iwae(model, x, 8, noise=_noise(3), estimator="dreg")
    b = iwae(model, x, 8, noise=_noise(3))
    torch.testing.assert_close(a.loss, b.loss)


def test_beta_and_free_bits():
    model, x = _tiny(), _x()
    a = elbo(model, x, 1, noise=_noise(0))
    b = elbo(model, x, 1, noise=_noise(0), beta=0.25)
    torch.testing.assert_close(b.loss, a.recon + 0.25 * a.kl)
    torch.testing.assert_close(a.elbo, b.elbo)  # reported ELBO ignores beta
    q = model.encode(x)
    per_dim = 0.5 * (q.loc.pow(2) + q.logvar.exp() - 1 - q.logvar)
    lam = float(per_dim.detach().mean(0).max()) + 1.0  # a floor above every dimension's KL
    fb = elbo(model, x, 1, noise=_noise(0), free_bits=lam)
    torch.testing.assert_close(fb.loss, a.recon + lam * 2)
    torch.testing.assert_close(fb.elbo, a.elbo)
    model.zero_grad()
    fb.loss.backward()  # the KL is below the floor: only the reconstruction pulls on mu
    model2 = _tiny()
    q2 = model2.encode(x)
    z = q2.rsample((1,), noise=_noise(0))
    (-model2.log_likelihood(x, z).mean()).backward()
    for p1, p2 in zip(model.encoder.parameters(), model2.encoder.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad)
    # the Monte Carlo per-dimension KL (pathwise): floor binding / not binding
    out = elbo(model, x, 1, noise=_noise(1), kl="mc", free_bits=lam + 5)
    torch.testing.assert_close(out.loss, out.recon + (lam + 5) * 2)
    low = elbo(model, x, 1, noise=_noise(1), kl="mc", free_bits=1e-9)
    torch.testing.assert_close(low.loss, low.recon + low.kl)
    with pytest.raises(ValueError, match="free_bits.*separate KL"):  # STL has the KL inside
        elbo(model, x, 1, estimator="stl", free_bits=0.1)
    # the analytic KL sits outside the estimator: free bits work with the score function too
    sf = elbo(model, x, 4, noise=_noise(0), estimator="score-loo", free_bits=lam)
    torch.testing.assert_close(sf.loss, sf.recon + lam * 2)
    # a floor on the total when the KL does not factorize (mixture prior)
    mog = _tiny(prior="mog")
    out = elbo(mog, x, 1, noise=_noise(0), free_bits=100.0)
    torch.testing.assert_close(out.loss, out.recon + 200.0)


def test_linear_warmup():
    assert linear_warmup(0, 10) == 0.0
    assert linear_warmup(5, 10) == 0.5
    assert linear_warmup(50, 10) == 1.0
    assert linear_warmup(3, 0) == 1.0
    assert linear_warmup(1, 4, final=2.0, start=1.0) == 1.25
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup(1, -1)


def test_clear_errors():
    model, x = _tiny(), _x()
    with pytest.raises(ValueError, match="multi-sample estimator.*use iwae"):
        elbo(model, x, estimator="dreg")
    with pytest.raises(ValueError, match="multi-sample estimator.*biases"):
        iwae(model, x, 4, estimator="stl")
    with pytest.raises(ValueError, match="kl must be one of"):
        elbo(model, x, kl="exact")
    with pytest.raises(ValueError, match="kl='analytic'"):
        elbo(_tiny(prior="mog"), x, kl="analytic")
    with pytest.raises(ValueError, match="k must be"):
        iwae(model, x, 0)
    with pytest.raises(ValueError, match="pathwise"):
        elbo(_tiny(posterior="planar"), x, estimator="stl")
    with pytest.raises(ValueError, match="only at its own samples"):
        elbo(_tiny(posterior="iaf"), x, estimator="score")
    with pytest.raises(ValueError, match="free_bits must be a finite"):
        elbo(model, x, free_bits=float("nan"))
    with pytest.raises(ValueError, match="estimator must be an Estimator"):
        elbo(model, x, estimator=3)
    with pytest.raises(ValueError, match="unknown estimator"):
        elbo(model, x, estimator="nope")


def test_default_vae_keeps_the_analytic_kl():
    torch.manual_seed(0)
    model = VAE(10, latent_dim=3, hidden=(8,))
    x = (torch.rand(4, 10) > 0.5).float()
    q = model.encode(x)
    out = elbo(model, x, 3)
    kl = (0.5 * (q.loc.pow(2) + q.logvar.exp() - 1 - q.logvar)).sum(-1).mean()
    torch.testing.assert_close(out.kl, kl.detach())
