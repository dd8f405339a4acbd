"""Discrete estimators against exact gradients by enumeration (5-sigma z-tests).

Every unbiased estimator passes ``check_unbiased`` on the enumerable problems of
:mod:`reparam.compare.discrete_problems` (10 Bernoulli variables, a 3 x 4 categorical, and
the multi-sample bound on 4 Bernoulli / 2 x 3 categorical variables with K = 3), for the
logits and for a parameter inside ``f``; the relaxations and a DisARM with a dropped term
fail the same test.
"""

from __future__ import annotations

import pytest
import torch

from reparam.compare.discrete_problems import BIASED, PROBLEMS, estimators_for
from reparam.diagnostics import check_unbiased
from reparam.distributions import Bernoulli, Categorical, OneHotCategorical
from reparam.estimators import ESTIMATORS, DisARM, get

N = 1000
CASES = [(p, e) for p in PROBLEMS for e in estimators_for(PROBLEMS[p]())]
EXACT = {name: make().exact() for name, make in PROBLEMS.items()}


def _check(problem, est, num_samples, scale=None, repeats=4):
    """z-test of the logits' gradient (and of ``a`` in ``f = a * cost`` when ``scale``)."""
    value, grad = EXACT[problem.name]
    logits = problem.replicas(N)
    params, ref = {"logits": logits}, {"logits": grad.expand_as(logits)}
    f = problem.cost
    if scale is not None:  # single-sample problems: f = a * cost, d/da E[f] = E[cost]
        a = torch.full((N,), scale, dtype=logits.dtype, requires_grad=True)
        params["a"], ref["a"] = a, torch.full((N,), value)
        ref["logits"] = ref["logits"] * scale
        f = lambda z: problem.cost(z) * a  # noqa: E731
    return check_unbiased(lambda: est(f, problem.dist(logits), num_samples).sum(), params, ref,
                          repeats=repeats, warmup=3, replica_dim=0)


@pytest.mark.parametrize("problem,name", CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_unbiased_against_enumeration(problem, name):
    p = PROBLEMS[problem]()
    res = _check(p, get(name), estimators_for(p)[name])
    assert res.passed, res.max_abs_z
    assert (res.stats.params["logits"].variance > 0).all()


@pytest.mark.parametrize("name", ["rloo", "disarm", "rebar", "relax"])
def test_parameters_inside_f_get_their_plain_gradient(name):
    """``f = a * cost``: ``d/da E[f] = E[cost]``; REBAR/RELAX's relaxed evaluations of ``f``
    must not leak into ``a``."""
    p = PROBLEMS["bernoulli10"]()
    res = _check(p, get(name), estimators_for(p)[name], scale=1.7)
    assert res.passed, {k: float(v.abs().max()) for k, v in res.z.items()}


def test_surrogate_value_estimates_the_expectation():
    p = PROBLEMS["bernoulli10"]()
    value, _ = EXACT[p.name]
    for name in ("arm", "disarm", "rebar", "straight-through"):
        torch.manual_seed(0)
        v = torch.cat([get(name)(p.cost, p.dist(p.replicas(N)), 2).detach() for _ in range(4)])
        assert abs(float(v.mean()) - value) < 5 * float(v.std()) / len(v) ** 0.5, name


@pytest.mark.parametrize("problem", ["bernoulli10", "categorical3x4"])
@pytest.mark.parametrize("name", list(BIASED))
def test_relaxations_are_biased(problem, name):
    torch.manual_seed(1)
    p = PROBLEMS[problem]()
    assert not _check(p, get(name), BIASED[name]).passed


class _DroppedWeight(DisARM):
    """DisARM without its sigma(|phi|) factor: a dropped term, biased."""

    def weight(self, logits):
        return torch.ones_like(logits)


def test_broken_disarm_fails_the_same_test():
    torch.manual_seed(2)
    p = PROBLEMS["bernoulli10"]()
    res = _check(p, _DroppedWeight(), 2)
    assert not res.passed and res.max_abs_z > 10


def test_rebar_trains_its_control_variate():
    torch.manual_seed(3)
    p, est = PROBLEMS["bernoulli10"](), get("relax")
    logits = p.replicas(200)
    for _ in range(30):
        est(p.cost, p.dist(logits), 1).sum().backward()
    assert est.temperature != pytest.approx(0.5) and float(est.eta.detach()) != pytest.approx(1.0)
    assert all(torch.isfinite(q).all() for q in est.cv_parameters())
    assert est.net is not None and est.net[0].weight.grad is not None


def test_bad_inputs_name_the_problem():
    q = Bernoulli(logits=torch.zeros(3))
    with pytest.raises(ValueError, match="even num_samples"):
        get("disarm")(lambda z: z.sum(-1), q, 3)
    with pytest.raises(ValueError, match="Bernoulli"):
        get("arm")(lambda z: z.sum(-1), Categorical(logits=torch.zeros(3)), 2)
    with pytest.raises(ValueError, match="OneHotCategorical"):
        get("gumbel")(lambda z: z.float(), Categorical(logits=torch.zeros(3)), 2)
    with pytest.raises(ValueError, match="temperature"):
        get("rebar").__class__(temperature=0.0)


def test_noise_sources_reach_the_discrete_samplers():
    """Antithetic noise: ARM-type pairs always; VIMCO through Independent; Sobol for REBAR."""
    from reparam.noise import Antithetic, Sobol
    p = PROBLEMS["bernoulli4-iw3"]()
    q = p.dist(p.replicas(6))
    seen = []
    get("vimco")(lambda z: seen.append(z) or p.cost(z), q, 4, noise=Antithetic())
    b = seen[0]
    probs = torch.sigmoid(p.logits)
    assert not ((b[:2] + b[2:])[..., probs < 0.5] == 2).any()   # (u, 1 - u) pairs
    out = get("rebar")(p.cost, q, 4, noise=Sobol(seed=0))
    assert out.shape == (6,) and torch.isfinite(out).all()


def test_registry_and_flags():
    for name in ("rloo", "vimco", "arm", "disarm", "disarm-iw", "rebar", "relax", "gumbel",
                 "straight-through"):
        assert name in ESTIMATORS
    assert get("vimco").multi_sample and get("disarm-iw").includes_log_q
    assert not get("disarm").multi_sample and not get("relax").includes_log_q


def test_conditional_resamples_match_the_direct_formula_and_their_b():
    """``z~ = phi + logit(u~)`` (Bernoulli) and the truncated Gumbels (categorical) in the
    log-space forms equal the textbook forms in float64 and give back ``b``."""
    from reparam.estimators.rebar import _BernoulliCoupling, _OneHotCoupling
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(2000, dtype=torch.float64, generator=g) * 3
    u, v = (torch.rand(2000, dtype=torch.float64, generator=g) for _ in range(2))
    bern = _BernoulliCoupling()
    b, _ = bern.sample(phi, u)
    theta = torch.sigmoid(phi)
    u_t = torch.where(b > 0, 1 - theta + v * theta, v * (1 - theta))
    torch.testing.assert_close(bern.conditional(phi, b, v), phi + torch.logit(u_t))
    logits = torch.randn(500, 4, dtype=torch.float64, generator=g) * 2
    u, v = (torch.rand(500, 4, dtype=torch.float64, generator=g) for _ in range(2))
    cat = _OneHotCoupling()
    b, _ = cat.sample(logits, u)
    theta = torch.softmax(logits, -1)
    log_vb = (torch.log(v) * b).sum(-1, keepdim=True)
    direct = torch.where(b > 0, -torch.log(-torch.log(v)),
                         -torch.log(-torch.log(v) / theta - log_vb))
    z_t = cat.conditional(logits, b, v)
    torch.testing.assert_close(z_t, direct)
    assert torch.equal(torch.nn.functional.one_hot(z_t.argmax(-1), 4).double(), b)


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_saturated_float32_logits_keep_gradients_finite(name):
    """A float32 logit of 17 rounds sigmoid to 1: the rare b = 0 / tiny-v draws used to give
    a NaN gradient and NaN control-variate parameters (a 200k-step run stopped on it)."""
    torch.manual_seed(0)
    logits = torch.tensor([-90.0, -30.0, -17.0, 0.0, 17.0, 30.0, 90.0]).repeat(2000)
    logits.requires_grad_()
    est = get(name)
    for _ in range(3):
        est(lambda z: (z - 0.3).pow(2).sum(-1), Bernoulli(logits=logits), 1).sum().backward()
        assert torch.isfinite(logits.grad).all()
    assert all(torch.isfinite(q).all() for q in est.cv_parameters())
    cat_logits = torch.tensor([[-100.0, 0.0, 30.0], [0.0, -60.0, 0.0]]).repeat(1000, 1)
    cat_logits.requires_grad_()
    cost = torch.tensor([1.0, -2.0, 0.5])
    get(name)(lambda z: (z * cost).sum(-1), OneHotCategorical(logits=cat_logits), 1).sum().backward()
    assert torch.isfinite(cat_logits.grad).all()
