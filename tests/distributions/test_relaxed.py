"""Concrete / Gumbel-softmax and the relaxed Bernoulli: density, law, gradients, stability.

The relaxed Bernoulli runs through the shared table in test_families.py too; here are the
multivariate Concrete checks and the straight-through and tiny-temperature behaviour.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.special as sp
import scipy.stats as st
import torch

from reparam.distributions import RelaxedBernoulli, RelaxedOneHotCategorical
from reparam.noise import Antithetic, MonteCarlo, Sobol

F64 = torch.float64
LOGITS = [0.3, -1.0, 2.0, 0.0]


def concrete_logpdf(y: np.ndarray, logits: np.ndarray, t: float) -> np.ndarray:
    """Maddison et al. (2017) eq. (1): ``(K-1)! T^(K-1) prod(a_k y_k^(-T-1)) /
    (sum a_k y_k^(-T))^K`` with ``a = exp(logits)`` (normalized)."""
    k = len(logits)
    a = sp.softmax(logits)
    num = np.log(a) - (t + 1) * np.log(y)
    den = sp.logsumexp(np.log(a) - t * np.log(y), axis=-1)
    return math.lgamma(k) + (k - 1) * math.log(t) + num.sum(-1) - k * den


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_concrete_log_prob_matches_formula(t):
    d = RelaxedOneHotCategorical(torch.tensor(t, dtype=F64), logits=torch.tensor(LOGITS, dtype=F64))
    y = d.rsample((50,), noise=_gen(0))
    expected = concrete_logpdf(y.detach().numpy(), np.array(LOGITS), t)
    np.testing.assert_allclose(d.log_prob(y).numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(d.log_prob(y.detach().clone()).numpy(), expected, rtol=1e-9)
    assert torch.allclose(y.sum(-1), torch.ones((), dtype=F64))


@pytest.mark.parametrize("noise", ["mc", "antithetic", "sobol"])
def test_concrete_law(noise):
    """``T log(y_i / y_j) - (l_i - l_j) ~ Logistic(0, 1)`` (KS), argmax ~ Categorical."""
    t = 0.6
    source = {"mc": _gen(1), "antithetic": Antithetic(_gen(2)), "sobol": Sobol(seed=3)}[noise]
    n = 20000 if noise == "mc" else 4096
    d = RelaxedOneHotCategorical(torch.tensor(t, dtype=F64), logits=torch.tensor(LOGITS, dtype=F64))
    y = d.rsample((n,), noise=source)
    stat = t * (torch.log(y[:, 0]) - torch.log(y[:, 2])) - (LOGITS[0] - LOGITS[2])
    assert st.kstest(stat.numpy(), st.logistic.cdf).pvalue > 1e-4
    p = sp.softmax(LOGITS)
    freq = np.bincount(y.argmax(-1).numpy(), minlength=4) / n
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))


def _two_class_expectation(l0: float, l1: float, t: float, f) -> float:
    """``E f(y_0)`` for K = 2: ``y_0 = sigmoid(x)``, ``x ~ Logistic((l0 - l1) / T, 1 / T)``."""
    x = st.logistic((l0 - l1) / t, 1 / t)
    return integrate.quad(lambda v: f(sp.expit(v)) * x.pdf(v), -np.inf, np.inf, epsabs=1e-13,
                          epsrel=1e-12, limit=200)[0]


@pytest.mark.parametrize("fname", ["y", "y2", "sin"])
def test_concrete_pathwise_gradient_unbiased(fname):
    f_t, f_np = {"y": (lambda y: y, lambda y: y), "y2": (lambda y: y * y, lambda y: y * y),
                 "sin": (lambda y: torch.sin(3 * y), lambda y: np.sin(3 * y))}[fname]
    n, l0, l1, t = 20000, 0.4, -0.3, 0.8
    logits = torch.tensor([l0, l1], dtype=F64).repeat(n, 1).requires_grad_()
    temp = torch.full((n,), t, dtype=F64, requires_grad=True)
    y = RelaxedOneHotCategorical(temp, logits=logits).rsample(noise=_gen(4))
    f_t(y[:, 0]).sum().backward()
    h = 1e-5
    exact = {
        "l0": (_two_class_expectation(l0 + h, l1, t, f_np)
               - _two_class_expectation(l0 - h, l1, t, f_np)) / (2 * h),
        "t": (_two_class_expectation(l0, l1, t + h, f_np)
              - _two_class_expectation(l0, l1, t - h, f_np)) / (2 * h),
    }
    for name, g in (("l0", logits.grad[:, 0]), ("t", temp.grad)):
        se = float(g.std()) / math.sqrt(n)
        assert abs(float(g.mean()) - exact[name]) < 5 * se + 1e-7, (name, exact[name])


@pytest.mark.parametrize("cls", [RelaxedOneHotCategorical, RelaxedBernoulli])
def test_straight_through_is_hard_with_relaxed_gradient(cls):
    logits = torch.tensor(LOGITS, dtype=F64, requires_grad=True)
    t = torch.tensor(0.5, dtype=F64, requires_grad=True)
    w = torch.linspace(-1, 1, 4, dtype=F64)
    grads = []
    for straight in (False, True):
        z = cls(t, logits=logits, straight_through=straight).rsample((64,), noise=_gen(5))
        if straight:
            assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
            if cls is RelaxedOneHotCategorical:
                assert torch.equal(z.detach().sum(-1), torch.ones(64, dtype=F64))
        grads.append(torch.autograd.grad((z * w).sum(), [logits, t]))
        if not straight:  # a hard sample is a vertex, where the Concrete density is undefined
            assert torch.isfinite(cls(t, logits=logits).log_prob(z)).all()
    for g_soft, g_hard in zip(*grads, strict=True):
        torch.testing.assert_close(g_soft, g_hard)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("cls", [RelaxedOneHotCategorical, RelaxedBernoulli])
def test_no_nan_at_tiny_temperature_and_extreme_logits(cls, dtype):
    for t, scale, straight in itertools.product([1e-1, 1e-3, 1e-8, 1e-30], [1.0, 1e4, 1e30],
                                                [False, True]):
        logits = (torch.tensor(LOGITS, dtype=dtype) * scale).requires_grad_()
        temp = torch.tensor(t, dtype=dtype, requires_grad=True)
        d = cls(temp, logits=logits, straight_through=straight)
        y = d.rsample((512,), noise=Antithetic(_gen(6)))
        w = torch.randn(y.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
        grads = torch.autograd.grad((y * w).sum(), [logits, temp], retain_graph=True)
        assert torch.isfinite(y).all(), (t, scale)
        assert all(torch.isfinite(g).all() for g in grads), (t, scale, grads)
        if t >= 1e-3 and scale == 1.0 and not straight:  # the log density stays in range
            lp = d.log_prob(y)
            assert torch.isfinite(lp).all()
            assert all(torch.isfinite(g).all() for g in torch.autograd.grad(lp.sum(), [logits, temp]))


def test_probs_parameterization_and_shapes():
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], dtype=F64)
    d = RelaxedOneHotCategorical(torch.tensor([0.5, 2.0], dtype=F64), probs=probs)
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    torch.testing.assert_close(d.logits.softmax(-1), probs)
    e = d.expand((4, 2))
    assert e.rsample((3,)).shape == (3, 4, 2, 3) and e.log_prob(e.rsample()).shape == (4, 2)
    assert d.rsample((8,), noise=Sobol(seed=0)).shape == (8, 2, 3)
    b = RelaxedBernoulli(torch.tensor(0.5), probs=torch.tensor([0.1, 0.9]))
    assert b.expand((3, 2)).rsample((5,)).shape == (5, 3, 2)
    assert b.sample((4,), noise=Antithetic()).shape == (4, 2)


@pytest.mark.parametrize("cls,kwargs,name", [
    (RelaxedOneHotCategorical, {"temperature": -1.0, "logits": [0.0, 1.0]}, "temperature"),
    (RelaxedOneHotCategorical, {"temperature": 1.0, "probs": [0.5, -0.6]}, "probs"),
    (RelaxedOneHotCategorical, {"temperature": 1.0, "logits": [0.0, math.nan]}, "logits"),
    (RelaxedOneHotCategorical, {"temperature": math.nan, "logits": [0.0, 1.0]}, "temperature"),
    (RelaxedBernoulli, {"temperature": 0.0, "logits": 0.3}, "temperature"),
    (RelaxedBernoulli, {"temperature": 1.0, "probs": 1.5}, "probs"),
    (RelaxedBernoulli, {"temperature": 1.0, "logits": math.nan}, "logits"),
    (RelaxedBernoulli, {"temperature": 1.0}, "probs"),
    (RelaxedBernoulli, {"temperature": 1.0, "probs": 0.5, "logits": 0.0}, "probs"),
])
def test_invalid_parameters(cls, kwargs, name):
    kwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=f"'{name}'"):
        cls(**kwargs)
