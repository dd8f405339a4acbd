"""Binary latents in the standard VAE: the CLI with every discrete estimator, evaluation
against exact enumeration, validation before anything is written, exact resume."""

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reparam.cli import main
from reparam.config import TrainConfig
from reparam.data import load_dataset
from reparam.runs import read_json
from reparam.vae.discrete_latent import BernoulliEncoder, BernoulliPrior, init_from_data
from reparam.vae.evaluation import evaluate, log_likelihood
from reparam.vae.factory import build_model
from reparam.vae.fused import why_not_fused
from reparam.vae.training import train

SRC = Path(__file__).resolve().parents[2] / "src"
BINARY = ["--posterior", "bernoulli", "--latent-dim", "6", "--hidden", "--epochs", "1",
          "--batch-size", "128", "--eval-samples", "2", "--no-tensorboard", "--quiet"]
SINGLE = ["score", "score-ema", "score-loo", "rloo", "score-nvil", "score-cv", "auto", "arm",
          "disarm", "rebar", "relax", "gumbel", "straight-through"]
MULTI = ["vimco", "disarm-iw"]


@pytest.mark.parametrize("name", SINGLE + MULTI)
def test_cli_trains_a_binary_latent_vae_with_every_discrete_estimator(name, tmp_path):
    extra = ["--objective", "iwae", "--k", "2"] if name in MULTI else []
    run = tmp_path / "run"
    assert main(["train", *BINARY, "--estimator", name, *extra, "--out", str(run)]) == 0
    m = read_json(run / "metrics.json")
    assert math.isfinite(m["train_elbo"]) and math.isfinite(m["test_elbo"])
    assert m["fused_step"] is False
    assert read_json(run / "config.json")["estimator"] == name


def test_linear_and_nonlinear_architectures():
    linear = build_model({"posterior": "bernoulli", "latent_dim": 5, "hidden": []}, 64)
    deep = build_model({"posterior": "bernoulli", "latent_dim": 5, "hidden": [7, 7]}, 64)
    assert isinstance(linear.encoder, BernoulliEncoder) and isinstance(linear.prior_module, BernoulliPrior)
    count = lambda net: sum(isinstance(m, torch.nn.Linear) for m in net.modules())  # noqa: E731
    assert count(linear.encoder.net) == count(linear.decoder.net) == 1
    assert count(deep.encoder.net) == count(deep.decoder.net) == 3
    assert type(deep.encoder.net[1]).__name__ == "Tanh"
    assert why_not_fused(linear, estimator="disarm") is not None
    with pytest.raises(ValueError, match="linear networks"):
        build_model({"hidden": [], "stochastic_layers": 2}, 64)


def test_prior_auto_is_the_learned_bernoulli_and_supports_must_match():
    model = build_model({"posterior": "bernoulli", "latent_dim": 4, "hidden": []}, 64)
    assert any(p is model.prior_module.logits for p in model.parameters())
    for spec in ({"posterior": "bernoulli", "prior": "standard"}, {"prior": "bernoulli"}):
        with pytest.raises(ValueError, match="bernoulli"):
            build_model(spec, 64)


def test_data_init_centres_the_input_and_sets_the_decoder_bias():
    model = build_model({"posterior": "bernoulli", "latent_dim": 4, "hidden": [8]}, 64)
    x = load_dataset("digits").train
    init_from_data(model, x)
    m = x.mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(model.encoder.mean, x.mean(0))
    torch.testing.assert_close(model.decoder.net[-1].bias.detach(), torch.log(m / (1 - m)))


def _exact_log_px(model, x):
    """``log p(x) = logsumexp_z log p(x|z) + log p(z)`` over all 2^L binary z."""
    L = model.latent_dim
    z = torch.tensor(list(itertools.product([0.0, 1.0], repeat=L))).unsqueeze(1)  # (2^L, 1, L)
    with torch.no_grad():
        return torch.logsumexp(model.log_likelihood(x, z) + model.prior().log_prob(z), 0)


def test_importance_sampled_nll_and_bound_agree_with_enumeration():
    torch.manual_seed(0)
    model = build_model({"posterior": "bernoulli", "latent_dim": 4, "hidden": [16]}, 64)
    x = load_dataset("digits").test[:40]
    exact = _exact_log_px(model, x).double()
    est = log_likelihood(model, x, k=4000, generator=torch.Generator().manual_seed(1))
    assert (est - exact).abs().max() < 0.05            # IS with the encoder as proposal
    out = evaluate(model, x, k=4000, elbo_samples=4)
    assert out["nll"] == pytest.approx(-float(exact.mean()), abs=0.05)
    assert out["bound_100"] <= -out["nll"] + 0.05      # a lower bound of log p(x)
    assert out["elbo"] < out["bound_100"]
    with pytest.raises(ValueError, match="discrete"):
        evaluate(model, x, k=10, refine_steps=2)


@pytest.mark.parametrize("estimator, objective", [
    ("pathwise", "elbo"), ("stl", "elbo"), ("iwae", "iwae"), ("dreg", "iwae"),
    ("measure-valued", "elbo")])
def test_reparameterizing_estimators_are_refused_for_binary_latents(estimator, objective):
    with pytest.raises(ValueError, match=f"estimator '{estimator}'.*discrete samples"):
        TrainConfig(posterior="bernoulli", estimator=estimator, objective=objective)


@pytest.mark.parametrize("estimator", ["arm", "disarm", "rebar", "relax", "gumbel",
                                       "straight-through"])
def test_discrete_only_estimators_are_refused_for_continuous_latents(estimator):
    with pytest.raises(ValueError, match=f"estimator '{estimator}' is for discrete latents"):
        TrainConfig(estimator=estimator)


def test_refusals_come_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *BINARY, "--estimator", "pathwise", "--out", str(run)]) == 2
    assert "pathwise" in capsys.readouterr().err and not run.exists()
    assert main(["train", "--estimator", "disarm", "--epochs", "1", "--out", str(run)]) == 2
    assert not run.exists()


def test_sample_counts():
    assert TrainConfig(posterior="bernoulli", estimator="disarm").samples() == 2
    assert TrainConfig(posterior="bernoulli", estimator="rebar").samples() == 1
    assert TrainConfig().samples() == 1
    with pytest.raises(ValueError, match="even"):
        TrainConfig(posterior="bernoulli", estimator="disarm", num_samples=3)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        TrainConfig(posterior="bernoulli", estimator="rloo", num_samples=1)
    with pytest.raises(ValueError, match="k >= 2"):
        TrainConfig(posterior="bernoulli", estimator="vimco", objective="iwae", k=1)


@pytest.mark.parametrize("estimator", ["disarm", "rebar", "relax", "score-nvil"])
def test_resume_of_a_binary_run_is_exact(estimator, tmp_path):
    """Model, optimizer, noise and the estimator's learned state (REBAR's eta and temperature,
    RELAX's network, NVIL's baseline, their optimizers) come back bit for bit."""
    opts = dict(posterior="bernoulli", latent_dim=6, hidden=[16], estimator=estimator,
                batch_size=128, eval_samples=2, tensorboard=False, progress=False)
    full = train(epochs=2, out=str(tmp_path / "full"), **opts)
    train(epochs=1, out=str(tmp_path / "part"), **opts)
    resumed = train(resume=tmp_path / "part", epochs=2, progress=False)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(v, resumed.model.state_dict()[k], rtol=0, atol=0)
    assert full.metrics["test_elbo"] == resumed.metrics["test_elbo"]


def test_subprocess_train_then_evaluate(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "reparam"]
    subprocess.run([*cmd, "train", *BINARY, "--estimator", "disarm", "--out", str(run)],
                   check=True, env=env, capture_output=True, text=True, timeout=300)
    out = subprocess.run([*cmd, "evaluate", str(run), "--k", "200", "--json", "--quiet"],
                         check=True, env=env, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)
    assert result == read_json(run / "evaluation.json")
    assert math.isfinite(result["nll"]) and result["bound_100"] <= -result["nll"] + 0.5
