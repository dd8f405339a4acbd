"""The estimator contract: values, gradients into f's parameters, errors, names, Auto."""

from __future__ import annotations

import pytest
import torch
import torch.distributions as td

from reparam.distributions import Normal
from reparam.estimators import (
    EMA,
    ESTIMATORS,
    STL,
    Auto,
    Baseline,
    ControlVariate,
    DReG,
    Learned,
    LeaveOneOut,
    MeasureValued,
    Pathwise,
    ScoreFunction,
    get,
)
from reparam.noise import Antithetic

GAUSSIAN_OK = [n for n in ESTIMATORS if not ESTIMATORS[n]().includes_log_q  # E[f] estimators
               and not getattr(get(n), "discrete_only", False)      # ARM, REBAR, Gumbel ...
               and not getattr(get(n), "multi_sample", False)]      # VIMCO: value = bound


def _vae_like(name, num_samples=4):
    """An encoder output q (B, L) and a decoder inside f with costs (S, B)."""
    torch.manual_seed(1)
    loc = torch.randn(5, 3, requires_grad=True)
    logvar = torch.zeros(5, 3, requires_grad=True)
    dec = torch.nn.Linear(3, 2)
    x = torch.randn(5, 2)
    est = get(name)
    out = est(lambda z: (dec(z) - x).pow(2).sum(-1), Normal(loc, logvar=logvar), num_samples)
    return est, out, loc, logvar, dec


@pytest.mark.parametrize("name", GAUSSIAN_OK + ["stl", "dreg", "iwae"])
def test_surrogate_shape_and_gradients_everywhere(name):
    _, out, loc, logvar, dec = _vae_like(name)
    assert out.shape == (5,)
    out.sum().backward()
    for t in (loc, logvar, dec.weight, dec.bias):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("name", GAUSSIAN_OK)
def test_value_is_mean_cost(name):
    loc = torch.zeros((), requires_grad=True)
    out = get(name)(lambda z: torch.ones_like(z) * 3.0, Normal(loc, torch.ones(())), 4)
    assert out.item() == pytest.approx(3.0)


def test_score_function_gives_f_its_pathwise_gradient_at_samples():
    w = torch.tensor(2.0, requires_grad=True)
    logits = torch.zeros(3, requires_grad=True)
    ScoreFunction("loo")(lambda z: w * z.double(), td.Categorical(logits=logits), 6).backward()
    assert w.grad is not None and logits.grad is not None


def test_learned_baseline_uses_context_and_learns():
    base = Learned(lr=0.05)
    est = ScoreFunction(base)
    x = torch.linspace(-1, 1, 16).unsqueeze(-1)
    loc = torch.zeros(16, requires_grad=True)
    for _ in range(300):
        est(lambda z: 0.1 * z + 2 * x.squeeze(-1), Normal(loc, torch.ones(16)), 2, context=x)
    pred = base.values(torch.zeros(2, 16), None, context=x)
    torch.testing.assert_close(pred, 2 * x.squeeze(-1), atol=0.2, rtol=0)


def test_ema_and_control_variate_state():
    ema, cv = EMA(0.5), ControlVariate(0.5)
    loc = torch.zeros((), requires_grad=True)
    for b in (ema, cv):
        for _ in range(20):
            ScoreFunction(b)(lambda z: z * 0 + 7.0, Normal(loc, torch.ones(())), 4)
    assert ema.mean.item() == pytest.approx(7.0)
    assert float(cv.beta("loc")) == pytest.approx(7.0)   # f constant: beta* = f
    ema.reset()
    cv.reset()
    assert ema.mean is None and cv.moments == {}


def test_auto_choice():
    auto = Auto()
    assert auto.choose(Normal(torch.zeros(()), torch.ones(())), 1) is auto.pathwise
    assert auto.choose(td.Bernoulli(probs=torch.tensor(0.3)), 4) is auto.loo
    assert auto.choose(td.Bernoulli(probs=torch.tensor(0.3)), 1) is auto.ema


def test_noise_source_reaches_the_family():
    loc = torch.zeros((), requires_grad=True)
    out = Pathwise()(lambda z: z, Normal(loc, torch.ones(())), 8, noise=Antithetic())
    assert out.item() == pytest.approx(0.0, abs=1e-6)  # antithetic pairs cancel exactly
    with pytest.raises(ValueError, match="noise= needs a reparam family"):
        Pathwise()(lambda z: z, td.Normal(loc, 1.0), 8, noise=Antithetic())


class _BrokenNormal(Normal):
    """A reparam family whose rsample takes noise= but fails inside with a TypeError."""

    def rsample(self, sample_shape=torch.Size(), noise=None):
        raise TypeError("bug inside rsample")


def test_type_error_inside_rsample_propagates():
    q = _BrokenNormal(torch.zeros(()), torch.ones(()))
    with pytest.raises(TypeError, match="bug inside rsample"):
        Pathwise()(lambda z: z, q, 3, noise=Antithetic())
    with pytest.raises(TypeError, match="bug inside rsample"):
        Pathwise()(lambda z: z, q, 3)


def test_missing_noise_parameter_named_for_sample_too():
    with pytest.raises(ValueError, match=r"Bernoulli\.sample does not take a noise source"):
        ScoreFunction()(lambda z: z, td.Bernoulli(probs=torch.tensor(0.3)), 3, noise=Antithetic())


class _Halving(Baseline):
    """A custom baseline through the protocol's hooks: ``b = costs / 2`` (not unbiased; only
    the plumbing is tested)."""

    def values(self, costs, dist, context=None):
        return costs.detach() / 2


@pytest.mark.parametrize("baseline", [Baseline(), EMA(0.5), LeaveOneOut(), ControlVariate(0.5),
                                      _Halving()])
def test_every_baseline_goes_through_score_term(baseline, monkeypatch):
    """ScoreFunction's surrogate is ``mean cost + baseline.score_term(...)`` for every baseline,
    the control variate included (no special case); score_term is zero-valued."""
    calls = []
    original = type(baseline).score_term

    def spy(self, costs, dist, z, context=None):
        out = original(self, costs, dist, z, context)
        calls.append(out.detach())
        return out

    monkeypatch.setattr(type(baseline), "score_term", spy)
    loc = torch.zeros(3, requires_grad=True)
    torch.manual_seed(0)
    out = ScoreFunction(baseline)(lambda z: (z - 1.0) ** 2, Normal(loc, torch.ones(3)), 4)
    assert len(calls) == 1 and calls[0].shape == (3,)
    assert torch.equal(calls[0], torch.zeros(3))
    out.sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all() and loc.grad.abs().sum() > 0


def test_halving_baseline_gradient_by_hand():
    """The default score_term: grad = mean_s (f_s - b_s) d log q(z_s) / d loc, b = f / 2."""
    loc = torch.zeros(3, requires_grad=True)
    torch.manual_seed(0)
    out = ScoreFunction(_Halving())(lambda z: (z - 1.0) ** 2, Normal(loc, torch.ones(3)), 4)
    out.sum().backward()
    torch.manual_seed(0)
    z = Normal(torch.zeros(3), torch.ones(3)).sample((4,))
    expected = ((z - 1.0) ** 2 / 2 * z).mean(0)  # d log N(z; loc, 1) / d loc = z - loc
    torch.testing.assert_close(loc.grad, expected)


def test_control_variate_has_no_single_value():
    with pytest.raises(NotImplementedError, match="one coefficient per parameter"):
        ControlVariate().values(torch.zeros(2, 3), None)


def test_errors():
    q = Normal(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
        ScoreFunction("loo")(lambda z: z, q, 1)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        Pathwise()(lambda z: z, q, 0)
    with pytest.raises(ValueError, match="per-sample costs"):
        Pathwise()(lambda z: z.sum(), q, 3)
    with pytest.raises(ValueError, match="prefix"):
        ScoreFunction()(lambda z: torch.zeros(3, 4), q, 3)
    with pytest.raises(ValueError, match="has no rsample"):
        Pathwise()(lambda z: z, td.Bernoulli(probs=torch.tensor(0.3)), 3)
    with pytest.raises(ValueError, match="supports Normal"):
        MeasureValued()(lambda z: z, td.Gamma(torch.tensor(2.0), torch.tensor(1.0)), 3)
    with pytest.raises(ValueError, match="unknown baseline"):
        ScoreFunction("bogus")
    with pytest.raises(ValueError, match="unknown estimator"):
        get("bogus")
    assert STL.includes_log_q and DReG.includes_log_q and not Pathwise.includes_log_q


def test_learned_baseline_reset_starts_over():
    base = Learned()
    loc = torch.zeros(4, requires_grad=True)
    for _ in range(5):
        ScoreFunction(base)(lambda z: z + 3.0, Normal(loc, torch.ones(4)), 2)
    assert base.center.mean is not None and base.optimizer is not None
    base.reset()
    assert base.center.mean is None and base.optimizer is None
    assert torch.all(base.values(torch.zeros(2, 4), Normal(loc, torch.ones(4))) == 0)
