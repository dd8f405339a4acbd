"""Every estimator passes check_unbiased (5-sigma z-test) on >= 3 (distribution, f) pairs."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_cases import ANY, D64, GAUSSIAN, REPARAMETERIZED, N

from reparam.diagnostics import check_unbiased
from reparam.estimators import (
    EMA,
    STL,
    Auto,
    ControlVariate,
    DReG,
    Learned,
    LeaveOneOut,
    MeasureValued,
    Pathwise,
    ScoreFunction,
)

ESTIMATORS = {
    "pathwise": (Pathwise, REPARAMETERIZED),
    "score": (ScoreFunction, ANY),
    "score-ema": (lambda: ScoreFunction(EMA()), ANY),
    "score-loo": (lambda: ScoreFunction(LeaveOneOut()), ANY),
    "score-nvil": (lambda: ScoreFunction(Learned()), ANY),
    "score-cv": (lambda: ScoreFunction(ControlVariate()), ANY),
    "measure-valued": (MeasureValued, GAUSSIAN),
    "auto": (Auto, ANY),
}
PAIRS = [(name, case) for name, (_, cases) in ESTIMATORS.items() for case in cases]


def _reference(case, entropy=False):
    out = {}
    for name, g in case.grad.items():
        g = torch.as_tensor(g, dtype=D64)
        if entropy:
            g = g - torch.as_tensor(case.entropy_grad[name], dtype=D64)
        out[name] = g.expand(case.params[name].shape)
    return out


def _assert(result):
    assert result.passed, {k: v.abs().max().item() for k, v in result.z.items()}


@pytest.mark.parametrize("name,make_case", PAIRS, ids=[f"{n}-{c.__name__}" for n, c in PAIRS])
def test_unbiased(name, make_case):
    case, est = make_case(), ESTIMATORS[name][0]()
    res = check_unbiased(lambda: est(case.f, case.dist(), 4).sum(), case.params,
                         _reference(case), repeats=4, warmup=3, replica_dim=0)
    _assert(res)


@pytest.mark.parametrize("make_case", GAUSSIAN, ids=[c.__name__ for c in GAUSSIAN])
def test_stl_unbiased_for_negative_elbo(make_case):
    """STL estimates grad E[f + log q] = grad E[f] - grad H(q)."""
    case, est = make_case(), STL()
    res = check_unbiased(lambda: est(case.f, case.dist(), 4).sum(), case.params,
                         _reference(case, entropy=True), repeats=4, replica_dim=0)
    _assert(res)


def _iwae_pathwise(f, dist, K):
    z = dist.rsample((K,))
    lp = dist.log_prob(z)
    log_w = -f(z) - (lp.sum(-1) if lp.dim() > 2 else lp)
    return -(torch.logsumexp(log_w, 0) - math.log(K))


@pytest.mark.parametrize("make_case", GAUSSIAN[:3], ids=[c.__name__ for c in GAUSSIAN[:3]])
def test_dreg_unbiased_for_iwae(make_case):
    """DReG vs the plain pathwise gradient of the IWAE bound (K = 4), both Monte Carlo."""
    case, K = make_case(), 4

    def f(z):  # -log p(x, z) for an unnormalised Gaussian target N(0.2, 0.9^2)
        return 0.5 * ((z - 0.2) / 0.9) ** 2

    ref = check_unbiased(lambda: _iwae_pathwise(f, case.dist(), K).sum(), case.params,
                         {k: torch.zeros(()) for k in case.params}, repeats=8, replica_dim=0)
    mean = {k: s.mean for k, s in ref.stats.params.items()}
    se = {k: s.mean_se for k, s in ref.stats.params.items()}
    est = DReG()
    res = check_unbiased(lambda: est(f, case.dist(), K).sum(), case.params,
                         {k: v.expand(N) for k, v in mean.items()}, repeats=4, replica_dim=0,
                         reference_se={k: v.expand(N) for k, v in se.items()})
    assert (res.stats.params[next(iter(case.params))].variance > 0).all()
    _assert(res)


def test_check_unbiased_detects_bias():
    """A biased estimator (pathwise with a wrong constant factor) fails the z-test."""
    case, est = GAUSSIAN[0](), Pathwise()
    res = check_unbiased(lambda: 1.05 * est(case.f, case.dist(), 4).sum(), case.params,
                         _reference(case), repeats=4, replica_dim=0)
    assert not res.passed
