"""Every KL pair torch registers, for reparam/reparam, reparam/torch and torch/reparam.

For each ``(P, Q)`` in torch's KL registry where reparam has a twin of ``P`` or ``Q``, the
value with reparam classes on either or both sides equals torch's own value (1e-12 relative
in float64; in float32 within 1e-6 of the float64 value, or closer than torch's float32),
finite and infinite alike, with no registration-ambiguity warning.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.distributions as td
import torch.distributions.kl as td_kl
from torch.distributions.kl import kl_divergence

import reparam.distributions as D

F64 = torch.float64


def _t(*v):
    return torch.tensor(v, dtype=F64)


# Parameters per torch family (two batch entries, chosen so that both finite and, for
# support-mismatched pairs, infinite values occur where torch gives them).
PARAMS = {
    td.Normal: (_t(0.3, -1.0), _t(1.2, 0.5)),
    td.Laplace: (_t(0.1, 2.0), _t(0.7, 1.5)),
    td.Cauchy: (_t(0.1, 2.0), _t(0.7, 1.5)),
    td.Gumbel: (_t(0.2, -0.5), _t(1.1, 0.6)),
    td.Uniform: (_t(0.1, -3.0), _t(0.8, 3.0)),
    td.Exponential: (_t(0.8, 2.5),),
    td.Gamma: (_t(1.5, 0.7), _t(2.0, 0.9)),
    td.Beta: (_t(1.5, 0.7), _t(2.0, 0.9)),
    td.Pareto: (_t(0.5, 2.0), _t(3.0, 4.0)),
    td.HalfNormal: (_t(0.8, 1.7),),
    td.Weibull: (_t(0.8, 1.7), _t(1.5, 0.6)),
    td.Kumaraswamy: (_t(0.8, 1.7), _t(1.5, 0.6)),
    td.LogNormal: (_t(0.2, -0.4), _t(0.9, 1.3)),
    td.Dirichlet: (_t(1.5, 0.7, 3.0),),
    td.StudentT: (_t(3.0, 7.0), _t(0.1, 0.4), _t(1.2, 0.5)),
    td.VonMises: (_t(0.1, 0.4), _t(1.2, 0.5)),
    td.ContinuousBernoulli: (_t(0.3, 0.8),),
    td.MultivariateNormal: (_t(0.1, -0.3), _t([[2.0, 0.3], [0.3, 1.0]])),
    td.LowRankMultivariateNormal: (_t(0.2, 0.4), _t([[0.5], [-1.0]]), _t(1.0, 0.5)),
}
SECOND = {  # a second parameter set, so that p and q differ within one family
    td.Normal: (_t(-0.4, 0.2), _t(0.6, 1.5)),
    td.Laplace: (_t(0.6, -1.0), _t(1.3, 0.4)),
    td.Cauchy: (_t(0.6, -1.0), _t(1.3, 0.4)),
    td.Gumbel: (_t(0.6, -1.0), _t(1.3, 0.4)),
    td.Uniform: (_t(0.0, -2.0), _t(1.0, 2.0)),
    td.Exponential: (_t(1.7, 0.3),),
    td.Gamma: (_t(0.6, 2.2), _t(0.7, 1.9)),
    td.Beta: (_t(0.6, 2.2), _t(0.7, 1.9)),
    td.Pareto: (_t(0.3, 2.5), _t(2.0, 1.5)),
    td.HalfNormal: (_t(1.3, 0.6),),
    td.Weibull: (_t(1.3, 0.6), _t(0.9, 2.0)),
    td.Kumaraswamy: (_t(1.3, 0.6), _t(0.9, 2.0)),
    td.LogNormal: (_t(-0.6, 0.5), _t(1.4, 0.7)),
    td.Dirichlet: (_t(0.5, 2.0, 1.0),),
    td.MultivariateNormal: (_t(-0.2, 0.5), _t([[1.0, -0.2], [-0.2, 0.7]])),
    td.LowRankMultivariateNormal: (_t(-0.1, 0.3), _t([[0.2], [0.8]]), _t(0.5, 1.5)),
}


NAMED = [(td.Normal, td.Gumbel), (td.Uniform, td.Beta), (td.Normal, td.Laplace)]


def _torch_kl_pairs() -> list:
    """Every pair torch registers (its registry is private: where a release renames it, the
    pairs named in issue #17)."""
    registry = getattr(td_kl, "_KL_REGISTRY", None)
    return list(registry) if isinstance(registry, dict) else NAMED


def _twin(cls):
    return getattr(D, cls.__name__, None) if cls.__module__.startswith("torch.") else None


PAIRS = sorted(
    ((p, q) for p, q in _torch_kl_pairs() if p in PARAMS and q in PARAMS
     and (_twin(p) is not None or _twin(q) is not None)),
    key=lambda pq: (pq[0].__name__, pq[1].__name__))


def _build(cls, lib, dtype, second):
    args = (SECOND if second and cls in SECOND else PARAMS)[cls]
    args = tuple(a.to(dtype) for a in args)
    return (_twin(cls) if lib == "reparam" else cls)(*args)


def _kl(p_cls, q_cls, p_lib, q_lib, dtype):
    p = _build(p_cls, p_lib, dtype, second=False)
    q = _build(q_cls, q_lib, dtype, second=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return kl_divergence(p, q)


def _combos(p_cls, q_cls):
    out = []
    for p_lib in ("reparam", "torch"):
        for q_lib in ("reparam", "torch"):
            if (p_lib, q_lib) == ("torch", "torch"):
                continue
            if (p_lib == "reparam" and _twin(p_cls) is None) or (
                    q_lib == "reparam" and _twin(q_cls) is None):
                continue
            out.append((p_lib, q_lib))
    return out


CASES = [(p, q, pl, ql) for p, q in PAIRS for pl, ql in _combos(p, q)]


@pytest.mark.parametrize("p_cls,q_cls,p_lib,q_lib", CASES,
                         ids=[f"{p.__name__}-{q.__name__}-{pl}-{ql}" for p, q, pl, ql in CASES])
def test_kl_pair_equals_torch(p_cls, q_cls, p_lib, q_lib):
    expected = _kl(p_cls, q_cls, "torch", "torch", F64)
    got = _kl(p_cls, q_cls, p_lib, q_lib, F64)
    assert got.dtype == F64 and got.shape == expected.shape
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    fin = torch.isfinite(expected)
    torch.testing.assert_close(got[fin], expected[fin], rtol=1e-12, atol=1e-13)
    got32 = _kl(p_cls, q_cls, p_lib, q_lib, torch.float32).double()
    torch32 = _kl(p_cls, q_cls, "torch", "torch", torch.float32).double()
    assert torch.equal(torch.isinf(got32), torch.isinf(expected))
    err_ours = (got32[fin] - expected[fin]).abs()
    err_torch = (torch32[fin] - expected[fin]).abs()
    assert bool((err_ours <= torch.maximum(1e-6 * expected[fin].abs() + 1e-7, 2 * err_torch)).all())


def test_pairs_cover_the_named_findings():
    assert set(NAMED) <= set(PAIRS)
    assert len(CASES) > 100 or _torch_kl_pairs() == NAMED


@pytest.mark.parametrize("p,q", [
    (lambda: D.Normal(torch.zeros(2), logvar=torch.tensor([0.3, -2.0])),
     lambda: td.Laplace(torch.zeros(2), torch.ones(2))),
    (lambda: D.Normal(torch.zeros(2), logvar=torch.tensor([0.3, -2.0])),
     lambda: D.Gumbel(torch.zeros(2), torch.ones(2))),
])
def test_logvar_normal_dispatches_like_scale_normal(p, q):
    pd, qd = p(), q()
    twin = td.Normal(pd.loc, pd.scale)
    torch.testing.assert_close(kl_divergence(pd, qd), kl_divergence(twin, qd))


def test_unregistered_pair_raises_not_implemented():
    with pytest.raises(NotImplementedError):
        kl_divergence(D.Gumbel(0.0, 1.0), D.HalfNormal(1.0))
    with pytest.raises(NotImplementedError):
        kl_divergence(td.Gumbel(0.0, 1.0), td.HalfNormal(1.0))
    assert math.isinf(float(kl_divergence(D.Normal(0.0, 1.0), D.Uniform(0.0, 1.0))))

