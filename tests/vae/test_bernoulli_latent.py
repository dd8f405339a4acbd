"""Binary-latent VAE: bounds against enumeration, every estimator trains, runs resume exactly."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch

from reparam.data.base import Dataset
from reparam.estimators import get
from reparam.vae.bernoulli_latent import BernoulliLatentVAE, elbo, importance_bound, loss

LATENT, DATA = 6, 12


def _model(arch="linear"):
    torch.manual_seed(0)
    m = BernoulliLatentVAE(DATA, LATENT, arch, hidden=8).double()
    with torch.no_grad():
        m.prior_logits.normal_()
    return m


def _x(n=5):
    return (torch.rand(n, DATA, generator=torch.Generator().manual_seed(1)) < 0.4).double()


def _enumerate(m, x):
    """Exact ``log p(x)`` and ELBO by summing over all ``2^6`` latent states."""
    z = torch.tensor(list(itertools.product((0.0, 1.0), repeat=LATENT)), dtype=torch.float64)
    zs = z.unsqueeze(1).expand(-1, len(x), -1)            # (64, B, 6)
    log_joint = m.log_joint(x, zs)                        # (64, B)
    q = m.posterior(x)
    log_q = q.log_prob(zs)
    exact_elbo = (log_q.exp() * (log_joint - log_q)).sum(0)
    return torch.logsumexp(log_joint, 0), exact_elbo, (log_q.exp() * (log_q - (
        zs * m.prior_logits - torch.nn.functional.softplus(m.prior_logits)).sum(-1))).sum(0)


@pytest.mark.parametrize("arch", ["linear", "nonlinear"])
def test_kl_elbo_and_bound_match_enumeration(arch):
    m, x = _model(arch), _x()
    log_px, exact_elbo, exact_kl = _enumerate(m, x)
    with torch.no_grad():
        assert torch.allclose(m.kl(m.posterior(x)), exact_kl, atol=1e-10)
        torch.manual_seed(2)
        est = torch.stack([elbo(m, x) for _ in range(1000)])
        se = est.std(0) / math.sqrt(len(est))
        assert ((est.mean(0) - exact_elbo).abs() < 5 * se).all()
        bound = importance_bound(m, x, 5000, chunk=20000)
    assert torch.allclose(bound, log_px, atol=0.05)   # 2^6 states: k = 5000 is near exact
    assert (bound > exact_elbo + 0.05).all()


@pytest.mark.parametrize("name", ["score-ema", "rloo", "score-nvil", "score-cv", "vimco", "arm",
                                  "disarm", "disarm-iw", "rebar", "relax", "gumbel",
                                  "straight-through"])
def test_every_estimator_trains_the_model(name):
    m, x = _model(), _x(8)
    est = get(name)
    objective, per = loss(m, x, est, 2)
    objective.backward()
    assert per.shape == (8,) and torch.isfinite(per).all()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert m.encoder[0].weight.grad.abs().sum() > 0


def test_bad_arch():
    with pytest.raises(ValueError, match="arch"):
        BernoulliLatentVAE(arch="deep")


def _bench():
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(root))
    import discrete_run
    return discrete_run


@pytest.mark.parametrize("name", ["disarm", "relax", "rebar", "score-nvil", "score-ema"])
def test_benchmark_run_resumes_exactly(tmp_path, name):
    """Six steps in one go equal three, a restart from the checkpoint, and three more."""
    run = _bench()
    g = torch.Generator().manual_seed(3)
    data = Dataset("toy", train=(torch.rand(40, DATA, generator=g) < 0.4).float(),
                   test=(torch.rand(20, DATA, generator=g) < 0.4).float(), image_shape=(1, 3, 4))
    cfg = run.RunConfig(arch="linear", estimator=name, steps=6, batch_size=8, eval_every=3,
                        checkpoint_every=3, variance_repeats=4)
    full, _ = run.train_run(cfg, data, tmp_path / "full")
    cfg.steps = 3
    run.train_run(cfg, data, tmp_path / "split")
    cfg.steps = 6
    resumed, history = run.train_run(cfg, data, tmp_path / "split")
    assert [r["step"] for r in history] == [0, 3, 6]
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), n
    metrics = run.final_eval(resumed, data, tmp_path / "split", bound_k=5, nll_k=10,
                             nll_examples=5, seed=0)
    assert all(math.isfinite(v) for v in metrics.values())


def test_benchmark_report_picks_evenly_spaced_variance_columns():
    _bench()
    import discrete_report
    history = [{"step": s, "log10_encoder_var": -s / 1e3} for s in range(0, 2001, 100)]
    picked = [h["step"] for h in discrete_report._variance_rows(history)]
    assert picked == [0, 500, 1000, 1500, 2000]
    assert discrete_report._variance_rows(history[:3]) == history[:3]
