"""One table-driven harness for every univariate family (issue #4, checks 1-5).

Each case names a family, float64 parameters and an independent reference (``scipy.stats``
or a small reference built from scipy pieces). Every case runs the same checks:
1. log_prob, cdf, icdf, entropy, mean, variance against the reference to 1e-9 relative;
2. a Kolmogorov-Smirnov test of 20000 samples at a fixed seed (and under each noise source);
3. pathwise gradients d/dtheta E[f(z)] against quadrature differentiated by central
   differences, within 5 standard errors of the per-sample gradients;
4. finite float32 samples and gradients over a wide parameter grid;
5. invalid parameters raise ValueError naming the parameter.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.special as sp
import scipy.stats as st
import torch
from torch.distributions import kl_divergence

import reparam.distributions as D
from reparam.noise import Antithetic, MonteCarlo, Sobol

F64 = torch.float64
INF = math.inf


class KumaraswamyRef:
    """``z = v^(1/a)``, ``v ~ Beta(1, b)``; moments and entropy by quadrature."""

    def __init__(self, concentration1: float, concentration0: float) -> None:
        self.a, self.b = concentration1, concentration0
        self.v = st.beta(1, concentration0)

    def logpdf(self, x):
        return np.log(self.a) + (self.a - 1) * np.log(x) + self.v.logpdf(x**self.a)

    def pdf(self, x):
        return np.exp(self.logpdf(x))

    def cdf(self, x):
        return self.v.cdf(x**self.a)

    def ppf(self, p):
        return self.v.ppf(p) ** (1 / self.a)

    def support(self):
        return 0.0, 1.0

    def _quad(self, g):
        return integrate.quad(lambda x: g(x) * self.pdf(x), 0, 1, epsabs=1e-14, epsrel=1e-13,
                              limit=200)[0]

    def mean(self):
        return self._quad(lambda x: x)

    def var(self):
        return self._quad(lambda x: x * x) - self.mean() ** 2

    def entropy(self):
        return self._quad(lambda x: -self.logpdf(x))


class LogitLogisticRef:
    """Binary Concrete: ``logit(y) ~ Logistic(logits / T, 1 / T)`` (Maddison et al. 2017)."""

    def __init__(self, temperature: float, logits: float) -> None:
        self.x = st.logistic(logits / temperature, 1 / temperature)

    def logpdf(self, y):
        return self.x.logpdf(sp.logit(y)) - np.log(y) - np.log1p(-y)

    def cdf(self, y):
        return self.x.cdf(sp.logit(y))

    def ppf(self, p):
        return sp.expit(self.x.ppf(p))

    def expect(self, f):  # in logit space, where the integrand is smooth
        return integrate.quad(lambda x: f(sp.expit(x)) * self.x.pdf(x), -INF, INF,
                              epsabs=1e-13, epsrel=1e-12, limit=200)[0]


FNS = {  # name -> (torch, numpy): test functions for the pathwise gradient check
    "z": (lambda z: z, lambda z: z),
    "z2": (lambda z: z * z, lambda z: z * z),
    "sin": (torch.sin, np.sin),
    "atan": (torch.atan, np.arctan),
    "gauss": (lambda z: torch.exp(-0.5 * z * z), lambda z: np.exp(-0.5 * z * z)),
}
LOC = [-1e4, 0.0, 1e4]
SCALE = [1e-6, 1e-2, 1.0, 1e2, 1e6]
POS = [1e-3, 0.3, 1.0, 30.0, 1e3]


@dataclass(frozen=True)
class Case:
    id: str
    make: Any  # make(**params) -> Distribution
    params: dict
    ref: Any  # ref(**params) -> scipy frozen distribution or a reference like the above
    fns: tuple = ("z", "z2", "sin")
    grid: dict = field(default_factory=dict)  # float32 grid: param -> values
    invalid: tuple = ()  # (param, value) pairs that must raise
    skip: frozenset = frozenset()  # quantities the family does not define


CASES = [
    Case("normal", lambda loc, scale: D.Normal(loc, scale), {"loc": 0.3, "scale": 1.7},
         lambda loc, scale: st.norm(loc, scale), grid={"loc": LOC, "scale": SCALE},
         invalid=(("scale", -1.0), ("scale", 0.0))),
    Case("laplace", D.Laplace, {"loc": 0.3, "scale": 1.7}, st.laplace,
         grid={"loc": LOC, "scale": SCALE}, invalid=(("scale", -1.0), ("scale", 0.0))),
    Case("logistic", D.Logistic, {"loc": -0.4, "scale": 0.8}, st.logistic,
         grid={"loc": LOC, "scale": SCALE}, invalid=(("scale", -2.0),)),
    Case("cauchy", D.Cauchy, {"loc": 0.5, "scale": 1.3}, st.cauchy, fns=("atan", "gauss"),
         grid={"loc": LOC, "scale": SCALE}, invalid=(("scale", -1.0),),
         skip=frozenset({"mean", "variance"})),
    Case("gumbel", D.Gumbel, {"loc": 0.2, "scale": 1.4}, st.gumbel_r,
         grid={"loc": LOC, "scale": SCALE}, invalid=(("scale", 0.0),)),
    Case("uniform", D.Uniform, {"low": -0.5, "high": 1.5},
         lambda low, high: st.uniform(low, high - low),
         grid={"low": LOC, "high": [1e4 + 1e-2, 2e4]}, invalid=(("high", -0.5), ("high", -3.0))),
    Case("exponential", D.Exponential, {"rate": 1.7}, lambda rate: st.expon(scale=1 / rate),
         grid={"rate": [1e-6, 1e-2, 1.0, 1e2, 1e6]}, invalid=(("rate", -1.0), ("rate", 0.0))),
    Case("weibull", D.Weibull, {"scale": 1.3, "concentration": 2.2},
         lambda scale, concentration: st.weibull_min(concentration, scale=scale),
         grid={"scale": SCALE, "concentration": [0.3, 1.0, 5.0, 50.0]},
         invalid=(("scale", -1.0), ("concentration", 0.0))),
    Case("weibull_heavy", D.Weibull, {"scale": 0.8, "concentration": 0.7},
         lambda scale, concentration: st.weibull_min(concentration, scale=scale)),
    Case("pareto", D.Pareto, {"scale": 1.2, "alpha": 5.5},
         lambda scale, alpha: st.pareto(alpha, scale=scale),
         grid={"scale": SCALE, "alpha": [0.5, 1.0, 5.0, 100.0]}, invalid=(("alpha", -1.0),)),
    Case("kumaraswamy", D.Kumaraswamy, {"concentration1": 2.0, "concentration0": 3.5},
         KumaraswamyRef, grid={"concentration1": POS, "concentration0": POS},
         invalid=(("concentration1", -1.0), ("concentration0", 0.0))),
    Case("kumaraswamy_u", D.Kumaraswamy, {"concentration1": 0.6, "concentration0": 0.8},
         KumaraswamyRef),
    Case("half_normal", D.HalfNormal, {"scale": 1.4}, lambda scale: st.halfnorm(scale=scale),
         grid={"scale": SCALE}, invalid=(("scale", -1.0),)),
    Case("log_normal", D.LogNormal, {"loc": 0.2, "scale": 0.6},
         lambda loc, scale: st.lognorm(scale, scale=math.exp(loc)),
         grid={"loc": [-30.0, 0.0, 30.0], "scale": [1e-6, 1e-2, 1.0, 3.0]},
         invalid=(("scale", -1.0),)),
    Case("truncated_normal", D.TruncatedNormal,
         {"loc": 0.3, "scale": 1.2, "low": -1.0, "high": 2.0},
         lambda loc, scale, low, high: st.truncnorm((low - loc) / scale, (high - loc) / scale,
                                                    loc, scale),
         grid={"loc": [-20.0, 0.0, 20.0], "scale": [1e-2, 1.0, 1e2], "low": [-INF, -1.0, 0.5],
               "high": [1.0, 3.0, INF]},
         invalid=(("scale", -1.0), ("high", -1.0), ("high", -2.0))),
    Case("truncated_normal_tail", D.TruncatedNormal,
         {"loc": 0.0, "scale": 1.0, "low": 3.0, "high": INF},
         lambda loc, scale, low, high: st.truncnorm((low - loc) / scale, (high - loc) / scale,
                                                    loc, scale)),
    Case("relaxed_bernoulli", D.RelaxedBernoulli, {"temperature": 0.7, "logits": 0.4},
         LogitLogisticRef, grid={"temperature": [1e-6, 1e-2, 1.0, 1e2], "logits": [-50, 0, 50]},
         invalid=(("temperature", -1.0), ("temperature", 0.0)),
         skip=frozenset({"mean", "variance", "entropy"})),
]
IDS = [c.id for c in CASES]
P = [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]


def make(case: Case, dtype=F64, **override) -> torch.distributions.Distribution:
    params = {**case.params, **override}
    return case.make(**{k: torch.as_tensor(v, dtype=dtype) for k, v in params.items()})


def close(actual, expected, rtol=1e-9, atol=1e-13):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), expected, rtol=rtol, atol=atol)


# 1. values against the reference ---------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_reference(case):
    d, ref = make(case), case.ref(**case.params)
    x = ref.ppf(np.array(P))
    xt = torch.tensor(x, dtype=F64)
    close(d.log_prob(xt), ref.logpdf(x))
    close(d.cdf(xt), ref.cdf(x))
    close(d.icdf(torch.tensor(P, dtype=F64)), x)
    for name, ref_name in (("mean", "mean"), ("variance", "var"), ("entropy", "entropy")):
        if name in case.skip:
            continue
        with np.errstate(invalid="ignore"):  # scipy's truncnorm entropy: inf * pdf(inf)
            expected = getattr(ref, ref_name)()
        if math.isnan(expected) and name == "entropy":  # no scipy value: quadrature
            expected = expectation(case, case.params, lambda x: -ref.logpdf(x))
        assert not math.isnan(expected), (name, expected)
        value = getattr(d, name)
        close((value() if callable(value) else value).detach(), expected)


# 2. samples against the reference CDF ----------------------------------------------------
@pytest.mark.parametrize("noise", ["mc", "antithetic", "sobol"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_samples_ks(case, noise):
    source = {"mc": MonteCarlo(torch.Generator().manual_seed(1)),
              "antithetic": Antithetic(MonteCarlo(torch.Generator().manual_seed(2))),
              "sobol": Sobol(seed=3)}[noise]
    z = make(case).rsample((20000 if noise == "mc" else 4096,), noise=source)
    assert z.shape[0] in (20000, 4096) and torch.isfinite(z).all()
    assert st.kstest(z.numpy(), case.ref(**case.params).cdf).pvalue > 1e-4


# 3. unbiased pathwise gradients ----------------------------------------------------------
def expectation(case: Case, params: dict, f) -> float:
    ref = case.ref(**params)
    if isinstance(ref, LogitLogisticRef):
        return ref.expect(f)
    lo, hi = ref.support()
    return integrate.quad(lambda x: f(x) * ref.pdf(x), lo, hi, epsabs=1e-13, epsrel=1e-12,
                          limit=400)[0]


def exact_gradient(case: Case, name: str, f, h: float = 1e-5) -> float:
    theta = case.params[name]
    step = h * max(1.0, abs(theta))
    up = expectation(case, {**case.params, name: theta + step}, f)
    down = expectation(case, {**case.params, name: theta - step}, f)
    return (up - down) / (2 * step)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pathwise_gradient_unbiased(case):
    n = 5000
    finite = [k for k, v in case.params.items() if math.isfinite(v)]
    for (fname, name) in itertools.product(case.fns, finite):
        f_torch, f_np = FNS[fname]
        theta = torch.full((n,), case.params[name], dtype=F64, requires_grad=True)
        other = {k: torch.tensor(v, dtype=F64) for k, v in case.params.items() if k != name}
        z = case.make(**other, **{name: theta}).rsample(
            noise=MonteCarlo(torch.Generator().manual_seed(4)))
        f_torch(z).sum().backward()
        g = theta.grad  # per-sample gradients d f(z_i) / d theta
        exact = exact_gradient(case, name, f_np)
        se = float(g.std()) / math.sqrt(n)
        assert abs(float(g.mean()) - exact) < 5 * se + 1e-6, (fname, name, float(g.mean()), exact, se)


# 4. float32: finite samples, log densities and gradients on a wide grid ---------------------------------
@pytest.mark.parametrize("case", [c for c in CASES if c.grid], ids=[c.id for c in CASES if c.grid])
def test_float32_finite_gradients(case):
    names = list(case.grid)
    for values in itertools.product(*case.grid.values()):
        point = dict(zip(names, values, strict=True))
        if "low" in point and "high" in point and point["low"] >= point["high"]:
            continue
        leaves = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True)
                  for k, v in {**case.params, **point}.items()}
        d = case.make(**leaves)
        z = d.rsample((256,), noise=MonteCarlo(torch.Generator().manual_seed(5)))
        log_p = d.log_prob(z)
        grads = torch.autograd.grad(z.sum() + log_p.sum(), list(leaves.values()), allow_unused=True)
        assert torch.isfinite(z).all() and torch.isfinite(log_p).all(), (point, z, log_p)
        for k, g in zip(leaves, grads, strict=True):
            assert g is not None and torch.isfinite(g).all(), (point, k, g)


# 5. invalid parameters --------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_invalid_parameters_raise(case):
    bad = list(case.invalid) + [(k, math.nan) for k in case.params]
    for name, value in bad:
        with pytest.raises(ValueError, match=f"'{name}'"):
            make(case, **{name: value})


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes_expand_and_dtype(case):
    d = make(case, dtype=torch.float32).expand((4, 3))
    z = d.rsample((2,))
    assert z.shape == (2, 4, 3) and z.dtype == torch.float32
    assert d.log_prob(z).shape == (2, 4, 3)
    assert d.sample((5,), noise=Sobol(seed=0)).shape == (5, 4, 3)
    assert d.has_rsample and isinstance(d, D.Reparameterized)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_of_sample_matches_plain_value(case):
    """``log_prob`` of the family's own samples matches the reference and equals that of a
    detached copy: nothing carried on a sample changes its density (issue #17)."""
    d = make(case)
    z = d.rsample((64,), noise=MonteCarlo(torch.Generator().manual_seed(6)))
    ref = case.ref(**case.params)
    close(d.log_prob(z).detach(), ref.logpdf(z.detach().numpy()))
    assert torch.equal(d.log_prob(z).detach(), d.log_prob(z.detach().clone()))


def test_no_family_carries_values_on_samples():
    """Samples are plain tensors: no attribute beyond torch's (a density never trusts one)."""
    plain = set(dir(torch.zeros(1)))
    for c in CASES:
        extra = set(dir(make(c).rsample((2,)))) - plain
        assert not extra, (c.id, extra)


# KLs registered with torch, against quadrature ---------------------------------------------
KL_CASES = [
    (D.Laplace, (0.3, 1.2), (-0.5, 2.0), st.laplace(0.3, 1.2), st.laplace(-0.5, 2.0)),
    (D.Cauchy, (0.3, 1.2), (-0.5, 2.0), st.cauchy(0.3, 1.2), st.cauchy(-0.5, 2.0)),
    (D.Gumbel, (0.3, 1.2), (-0.5, 2.0), st.gumbel_r(0.3, 1.2), st.gumbel_r(-0.5, 2.0)),
    (D.Uniform, (0.0, 1.0), (-1.0, 2.0), st.uniform(0, 1), st.uniform(-1, 3)),
    (D.Exponential, (1.5,), (0.4,), st.expon(scale=1 / 1.5), st.expon(scale=1 / 0.4)),
    (D.HalfNormal, (1.5,), (0.7,), st.halfnorm(scale=1.5), st.halfnorm(scale=0.7)),
    (D.Weibull, (1.3, 2.2), (0.9, 1.5), st.weibull_min(2.2, scale=1.3),
     st.weibull_min(1.5, scale=0.9)),
    (D.Pareto, (1.5, 3.0), (1.0, 2.0), st.pareto(3.0, scale=1.5), st.pareto(2.0, scale=1.0)),
    (D.LogNormal, (0.2, 0.6), (-0.3, 1.1), st.lognorm(0.6, scale=math.exp(0.2)),
     st.lognorm(1.1, scale=math.exp(-0.3))),
]


@pytest.mark.parametrize("cls,p,q,rp,rq", KL_CASES, ids=[c[0].__name__ for c in KL_CASES])
def test_kl_against_quadrature(cls, p, q, rp, rq):
    lo, hi = rp.support()
    def integrand(x):
        px = rp.pdf(x)
        return px * (rp.logpdf(x) - rq.logpdf(x)) if px > 0 else 0.0

    exact = integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-11, limit=400)[0]
    dp, dq = (cls(*[torch.tensor(v, dtype=F64) for v in args]) for args in (p, q))
    close(kl_divergence(dp, dq), exact, rtol=1e-8)


def test_kl_outside_support_is_infinite():
    assert kl_divergence(D.Uniform(-1.0, 2.0), D.Uniform(0.0, 1.0)) == INF
    assert kl_divergence(D.Pareto(1.0, 2.0), D.Pareto(1.5, 2.0)) == INF
