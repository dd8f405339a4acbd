"""The fused ELBO step: the same loss and gradients as autograd, used only where it applies."""

import copy
import math

import pytest
import torch

from reparam.noise import MonteCarlo
from reparam.vae import VAE, TrainConfig, elbo, train
from reparam.vae.fused import BF16_MIN_WIDTH, FusedELBOStep, fused_step
from reparam.vae.training import build_model


def _grads_both_ways(model, x, beta, num_samples, seed=1):
    step = fused_step(model, num_samples=num_samples)
    assert isinstance(step, FusedELBOStep)
    out = step(x, beta, MonteCarlo(torch.Generator().manual_seed(seed)))
    fused = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    ref = elbo(model, x, num_samples=num_samples, beta=beta,
               noise=MonteCarlo(torch.Generator().manual_seed(seed)))
    ref.loss.backward()
    return out, ref, fused, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("num_samples", [1, 3])
@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_matches_autograd_float64(activation, num_samples, beta):
    torch.manual_seed(0)
    model = VAE(20, latent_dim=4, hidden=(16, 12), activation=activation).double()
    x = (torch.rand(7, 20, dtype=torch.float64) < 0.3).double()
    out, ref, fused, autograd = _grads_both_ways(model, x, beta, num_samples)
    for name in ("loss", "elbo", "recon", "kl"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name).detach(),
                                   rtol=1e-12, atol=1e-12)
    for g, r in zip(fused, autograd):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_matches_autograd_float32_grayscale_and_plain_tanh():
    torch.manual_seed(0)
    model = VAE(30, latent_dim=5, hidden=(24,))
    model.encoder.net[1] = torch.nn.Tanh()  # torch's own module qualifies too
    x = torch.rand(9, 30)                    # Bernoulli log-likelihood of values in [0, 1]
    out, ref, fused, autograd = _grads_both_ways(model, x, 0.5, 1)
    torch.testing.assert_close(out.loss, ref.loss.detach(), rtol=1e-5, atol=1e-5)
    for g, r in zip(fused, autograd):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("change", [
    dict(objective="iwae"), dict(estimator="stl"), dict(kl="mc"), dict(free_bits=0.1),
    dict(prior="mog"), dict(gated=True), dict(activation="elu"), dict(likelihood="gaussian"),
    dict(posterior="full-cov"), dict(stochastic_layers=2), dict(encoder="conv"),
])
def test_declines_everything_else(change):
    config = TrainConfig(hidden=[16], latent_dim=3, **change)
    model = build_model(config, 784, (1, 28, 28))
    step = fused_step(model, objective=config.objective, estimator=config.estimator,
                      kl=config.kl, free_bits=config.free_bits)
    assert step is None


def test_declines_frozen_parameters_and_bf16_in_float64():
    model = VAE(20, latent_dim=4, hidden=(16,))
    assert fused_step(model.double(), bf16=True) is None
    model.decoder.net[0].weight.requires_grad_(False)
    assert fused_step(model) is None


def test_bf16_products_match_float32_to_bf16_rounding():
    """bf16 operands (unit roundoff u = 2^-8) with float32 accumulation: every gradient within
    4u of float32 autograd (norm-wise), and visibly not float32 on the wide layers."""
    torch.manual_seed(0)
    model = VAE(200, latent_dim=8, hidden=(160, 128))
    reference = copy.deepcopy(model)
    x = (torch.rand(64, 200) < 0.3).float()
    step = fused_step(model, bf16=True)
    wide = {id(m) for m in [*model.encoder.net, *model.decoder.net]
            if isinstance(m, torch.nn.Linear) and min(m.in_features, m.out_features) >= BF16_MIN_WIDTH}
    assert step.low_layers == wide and len(wide) == 4
    out = step(x, 1.0, MonteCarlo(torch.Generator().manual_seed(1)))
    ref = elbo(reference, x, noise=MonteCarlo(torch.Generator().manual_seed(1)))
    ref.loss.backward()
    u = 2.0 ** -8
    assert abs(out.loss.item() - ref.loss.item()) < u * abs(ref.loss.item()) / 4
    for (name, p), r in zip(model.named_parameters(), reference.parameters()):
        err = ((p.grad - r.grad).norm() / r.grad.norm()).item()
        assert err < 4 * u, name
        if name.endswith("weight") and id(dict(model.named_modules())[name[:-7]]) in wide:
            assert err > 1e-5, name  # the products really ran in bf16


def test_bf16_training_tracks_float32_training():
    kwargs = dict(epochs=3, hidden=[256, 128], latent_dim=8, save=False, progress=False,
                  tensorboard=False)
    fp32, bf16 = train(**kwargs), train(bf16=True, **kwargs)
    assert fp32.metrics["fused_step"] and bf16.metrics["fused_step"]
    for a, b in zip(fp32.history, bf16.history):
        assert b["test_elbo"] == pytest.approx(a["test_elbo"], abs=0.05)
    # bf16 really ran: the trajectories differ (one epoch's float32 mean may still coincide)
    assert any(b["train_elbo"] != a["train_elbo"] for a, b in zip(fp32.history, bf16.history))
    assert fp32.history[-1]["train_elbo"] != bf16.history[-1]["train_elbo"]


def test_bf16_autocast_on_cpu_for_other_models():
    result = train(bf16=True, prior="mog", epochs=1, hidden=[64], save=False, progress=False,
                   tensorboard=False)
    assert not result.metrics["fused_step"]
    assert math.isfinite(result.history[-1]["test_elbo"])


def test_training_is_the_same_with_and_without():
    kwargs = dict(epochs=2, hidden=[32], warmup=0.5, save=False, progress=False)
    fused = train(**kwargs)
    plain = train(fused=False, **kwargs)
    assert fused.metrics["fused_step"] and not plain.metrics["fused_step"]
    for a, b in zip(fused.history, plain.history):
        assert a["train_elbo"] == pytest.approx(b["train_elbo"], abs=1e-4)
        assert a["test_elbo"] == pytest.approx(b["test_elbo"], abs=1e-3)
    for k, v in fused.model.state_dict().items():
        torch.testing.assert_close(v, plain.model.state_dict()[k], rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_matches_autograd_on_cuda():
    torch.manual_seed(0)
    model = VAE(20, latent_dim=4, hidden=(16,)).double().cuda()
    x = (torch.rand(7, 20, dtype=torch.float64, device="cuda") < 0.3).double()
    step = fused_step(model)
    gen = torch.Generator("cuda")
    out = step(x, 1.0, MonteCarlo(gen.manual_seed(1)))
    fused = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    ref = elbo(model, x, noise=MonteCarlo(gen.manual_seed(1)))
    ref.loss.backward()
    torch.testing.assert_close(out.loss, ref.loss.detach())
    for g, p in zip(fused, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_bf16_on_a_cpu_without_bf16_units_warns(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        train(bf16=True, epochs=1, hidden=[16], save=False, progress=False, tensorboard=False)


def _model(posterior, latent=4, hidden=(16, 12), activation="tanh"):
    config = TrainConfig(hidden=list(hidden), latent_dim=latent, posterior=posterior,
                         activation=activation)
    return build_model(config, 20, None)


@pytest.mark.parametrize("posterior", ["gamma", "dirichlet"])
@pytest.mark.parametrize("num_samples", [1, 3])
@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_implicit_posteriors_match_autograd_float64(posterior, num_samples, beta):
    """Gamma and Dirichlet heads: loss and every gradient as autograd's (implicit gradients
    through rsample, the registered closed-form KL) to float rounding."""
    torch.manual_seed(0)
    model = _model(posterior).double()
    x = (torch.rand(7, 20, dtype=torch.float64) < 0.3).double()
    out, ref, fused, autograd = _grads_both_ways(model, x, beta, num_samples)
    for name in ("loss", "elbo", "recon", "kl"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name).detach(),
                                   rtol=1e-12, atol=1e-12)
    for g, r in zip(fused, autograd):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("posterior", ["gamma", "dirichlet"])
def test_implicit_posteriors_at_extreme_outputs(posterior):
    """Encoder outputs past softplus' threshold (20) and tiny concentrations (samples that
    underflow and are clamped: zero gradient there, as autograd's clamp)."""
    torch.manual_seed(0)
    model = _model(posterior, latent=3, hidden=(8,)).double()
    last = model.encoder.net[-1]
    with torch.no_grad():
        last.weight.mul_(30.0)
        last.bias.copy_(torch.linspace(-40.0, 25.0, last.out_features))
    x = (torch.rand(9, 20, dtype=torch.float64) < 0.5).double()
    out, ref, fused, autograd = _grads_both_ways(model, x, 1.0, 2)
    torch.testing.assert_close(out.loss, ref.loss.detach(), rtol=1e-12, atol=1e-12)
    for g, r in zip(fused, autograd):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("posterior", ["gamma", "dirichlet"])
def test_implicit_posteriors_train_the_same_with_and_without(posterior):
    kwargs = dict(epochs=1, hidden=[32], posterior=posterior, save=False, progress=False)
    fused = train(**kwargs)
    plain = train(fused=False, **kwargs)
    assert fused.metrics["fused_step"] and not plain.metrics["fused_step"]
    for a, b in zip(fused.history, plain.history):
        assert a["train_elbo"] == pytest.approx(b["train_elbo"], abs=1e-3)
        assert a["test_elbo"] == pytest.approx(b["test_elbo"], abs=1e-2)


def test_declines_an_implicit_posterior_with_another_prior():
    model = _model("gamma")
    assert fused_step(model) is not None
    model.prior_module = build_model(TrainConfig(hidden=[16], latent_dim=4), 20, None).prior_module
    assert fused_step(model) is None
