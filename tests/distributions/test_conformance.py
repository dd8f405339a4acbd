"""reparam vs torch.distributions, family by family, from one table (``conformance.CASES``).

Every twinned row builds the family in torch and in reparam from the same arguments and
compares: the constructor signature, every method and property in ``READERS`` (values to
1e-10 relative in float64, or the same error type; reparam may add a method torch lacks),
``arg_constraints``, the error type for invalid parameters and values. Every row (twinned
or not) checks densities outside the support (-inf / cdf 0 or 1 with validation off),
that a density never depends on which distribution drew the sample, and that samples lie
in the support.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.distributions as td
from conformance import CASES, READERS, TWINNED, Case, outcome, perturbed, same_value

import reparam.distributions as D

FAMILIES = sorted({c.family for c in TWINNED})


def _ids(cases):
    return [c.id for c in cases]


@pytest.mark.parametrize("family", FAMILIES)
def test_signature_matches_torch(family):
    """torch's parameters come first, in torch's order, with torch's names and defaults;
    anything reparam adds is keyword-only."""
    ours = inspect.signature(getattr(D, family).__init__).parameters
    theirs = inspect.signature(getattr(td, family).__init__).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name, p in theirs.items():
        assert ours[name].kind == p.kind, name
        if p.default is not inspect.Parameter.empty:
            assert ours[name].default == p.default, name
    extra = [p for n, p in ours.items() if n not in theirs]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra), extra


# reparam has these where torch has not (documented in docs/families.md).
EXTRAS = {("VonMises", "has_rsample")}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", TWINNED, ids=_ids(TWINNED))
def test_method_matches_torch(case: Case, reader: str):
    read = READERS[reader]
    kind_t, theirs = outcome(lambda: read(case.build("torch"), case))
    kind_r, ours = outcome(lambda: read(case.build("reparam"), case))
    if kind_t == "error":
        if kind_r == "value":  # an extra reparam has (e.g. a cdf torch cannot compute)
            assert theirs is NotImplementedError, f"torch raised {theirs}, reparam did not"
            return
        assert ours is theirs, f"torch raised {theirs.__name__}, reparam {ours.__name__}"
        return
    assert kind_r == "value", f"torch gave {theirs}, reparam raised {ours}"
    if (case.family, reader) in EXTRAS:
        return
    assert same_value(ours, theirs), f"reparam {ours} vs torch {theirs}"


@pytest.mark.parametrize("case", TWINNED, ids=_ids(TWINNED))
def test_arg_constraints_and_class(case: Case):
    theirs, ours = case.build("torch"), case.build("reparam")
    assert set(theirs.arg_constraints) <= set(ours.arg_constraints)
    for name, c in theirs.arg_constraints.items():
        assert isinstance(ours.arg_constraints[name], type(c)), name
        assert same_value(getattr(ours, name), getattr(theirs, name)), name
    assert isinstance(ours, getattr(td, case.family))
    assert type(ours.support) is type(theirs.support)
    for value in (case.inside, case.below, case.above):
        if value is not None:
            assert torch.equal(ours.support.check(value), theirs.support.check(value)), value


@pytest.mark.parametrize("case", [c for c in TWINNED if c.invalid], ids=_ids(
    [c for c in TWINNED if c.invalid]))
def test_invalid_parameters_same_error(case: Case):
    for args, kwargs in case.invalid:
        bad = Case(case.id, case.family, args, kwargs)
        kind_t, err_t = outcome(lambda b=bad: b.build("torch", validate_args=True))
        kind_r, err_r = outcome(lambda b=bad: b.build("reparam", validate_args=True))
        assert kind_t == "error", "torch accepted it: the table is wrong"
        assert (kind_r, err_r) == ("error", err_t)


@pytest.mark.parametrize("case", TWINNED, ids=_ids(TWINNED))
def test_invalid_values_same_error(case: Case):
    """With validation on, a value outside the support or of a shape that does not broadcast
    gives torch's error (a ``ValueError`` where torch's own formula crashes with a
    ``RuntimeError``); a Python number is accepted as torch accepts it for some families."""
    bad_values = [v for v in (case.below, case.above) if v is not None]
    bad_values += [torch.zeros(5, 7, dtype=torch.float64)]
    for value in bad_values:
        for method in ("log_prob", "cdf"):
            kind_t, res_t = outcome(lambda m=method, v=value: getattr(
                case.build("torch", True), m)(v))
            kind_r, res_r = outcome(lambda m=method, v=value: getattr(
                case.build("reparam", True), m)(v))
            if kind_t == "error" and res_t is NotImplementedError:
                continue
            assert kind_r == kind_t, (method, value, res_t, res_r)
            if kind_t == "error":
                assert res_r is res_t or (res_r is ValueError and res_t in (
                    RuntimeError, AttributeError, TypeError)), (method, value, res_t, res_r)


@pytest.mark.parametrize("case", TWINNED, ids=_ids(TWINNED))
def test_python_number_values(case: Case):
    """A Python number gives the value of the same number as a tensor."""
    if case.inside.dim() > 0 and case.inside.numel() > 1 and case.build("torch").event_shape:
        return
    number = float(case.inside.flatten()[0])
    d = case.build("reparam", True)
    for method in ("log_prob", "cdf"):
        kind, res = outcome(lambda m=method: getattr(d, m)(number))
        kind_t, res_t = outcome(lambda m=method: getattr(d, m)(
            torch.tensor(number, dtype=case.inside.dtype)))
        assert kind == kind_t, (method, res, res_t)
        if kind == "value":
            assert same_value(res.to(res_t.dtype), res_t), method


def _with_bounds(cases):
    return [c for c in cases if c.below is not None or c.above is not None]


@pytest.mark.parametrize("case", _with_bounds(CASES), ids=_ids(_with_bounds(CASES)))
def test_outside_support_validation_off(case: Case):
    """``log_prob = -inf``, ``cdf = 0`` below and ``1`` above the support (as torch)."""
    d = case.build("reparam", validate_args=False)
    for value, cdf_value in ((case.below, 0.0), (case.above, 1.0)):
        if value is None:
            continue
        lp = d.log_prob(value)
        assert bool((lp == -math.inf).all()), f"log_prob {lp} outside the support"
        if d.event_shape:
            continue
        kind, c = outcome(lambda v=value: d.cdf(v))
        if kind == "value":
            assert bool((c == cdf_value).all()), f"cdf {c} at {value}"


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_density_ignores_the_sampler(case: Case):
    """``q.log_prob(z)`` for ``z`` drawn from another distribution ``p`` equals
    ``q.log_prob`` of a fresh copy of ``z`` (nothing cached on the sample is trusted)."""
    q = case.build("reparam", validate_args=False)
    p = perturbed(case).build("reparam", validate_args=False)
    torch.manual_seed(1)
    for draw in (p.rsample, p.sample):
        z = draw((6,))
        expected = q.log_prob(z.detach().clone())
        assert same_value(q.log_prob(z), expected, rtol=1e-12)
        if case.twin:
            twin = case.build("torch", validate_args=False)
            assert same_value(expected, twin.log_prob(z.detach().clone()))


EDGE = [  # float32 parameters that push samples onto the ends of the support
    ("Beta", (torch.tensor(0.01), torch.tensor(0.01)), {}),
    ("Beta", (torch.tensor(1e-3), torch.tensor(5.0)), {}),
    ("Dirichlet", (torch.full((3,), 0.01),), {}),
    ("Kumaraswamy", (torch.tensor(0.05), torch.tensor(0.05)), {}),
    ("Gamma", (torch.tensor(1e-3), torch.tensor(1.0)), {}),
    ("Weibull", (torch.tensor(1.0), torch.tensor(0.05)), {}),
    ("RelaxedBernoulli", (torch.tensor(0.01),), {"logits": torch.tensor(0.0)}),
    ("RelaxedOneHotCategorical", (torch.tensor(0.01),), {"logits": torch.zeros(3)}),
    ("LogNormal", (torch.tensor(0.0), torch.tensor(30.0)), {}),
]


@pytest.mark.parametrize("family,args,kwargs", EDGE, ids=[e[0] for e in EDGE])
def test_samples_stay_in_the_support(family, args, kwargs):
    """Float32 samples never land where their own ``log_prob`` is infinite or NaN."""
    torch.manual_seed(0)
    d = getattr(D, family)(*args, **kwargs)
    z = d.sample((10000,))
    assert bool(d.support.check(z).all())
    lp = d.log_prob(z)
    assert bool(torch.isfinite(lp).all()), f"{int((~torch.isfinite(lp)).sum())} non-finite"


@pytest.mark.parametrize("case", TWINNED, ids=_ids(TWINNED))
def test_validate_args_semantics(case: Case):
    """``validate_args`` None / True / False gives torch's sample-validation flag, ``expand``
    keeps it, and the global default is followed when it is None."""
    for flag in (None, True, False):
        ours, theirs = case.build("reparam", flag), case.build("torch", flag)
        assert ours._validate_args == theirs._validate_args, flag
        grown = ours.expand((3,) + ours.batch_shape)
        assert grown._validate_args == ours._validate_args, flag
    default = td.Distribution._validate_args
    try:
        td.Distribution.set_default_validate_args(not default)
        assert case.build("reparam")._validate_args == case.build("torch")._validate_args
    finally:
        td.Distribution.set_default_validate_args(default)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_samples_in_support_with_finite_density(case: Case):
    d = case.build("reparam", validate_args=True)
    torch.manual_seed(3)
    z = d.rsample((200,))
    assert z.shape == (200,) + d.batch_shape + d.event_shape
    assert bool(d.support.check(z).all())
    assert bool(torch.isfinite(d.log_prob(z)).all())


def test_the_reported_findings():
    """The cases a user hit when swapping torch.distributions for reparam.distributions."""
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    torch.testing.assert_close(D.MultivariateNormal(torch.zeros(2), cov).covariance_matrix, cov)
    prec = torch.linalg.inv(cov)
    torch.testing.assert_close(D.MultivariateNormal(torch.zeros(2), precision_matrix=prec)
                               .covariance_matrix, cov)
    pairs = [((D.Normal, td.Normal, (0.0, 1.0)), (D.Gumbel, td.Gumbel, (0.5, 2.0))),
             ((D.Uniform, td.Uniform, (0.0, 1.0)), (D.Beta, td.Beta, (2.0, 3.0))),
             ((D.Normal, td.Normal, (0.0, 1.0)), (td.Laplace, td.Laplace, (0.5, 2.0)))]
    for (p_ours, p_torch, p_args), (q_ours, q_torch, q_args) in pairs:
        expected = td.kl_divergence(p_torch(*p_args), q_torch(*q_args))
        assert torch.equal(td.kl_divergence(p_ours(*p_args), q_ours(*q_args)), expected)
    alpha = torch.tensor([0.5, 2.0, 3.0])
    torch.testing.assert_close(D.Dirichlet(alpha).mode, td.Dirichlet(alpha).mode)
    r = D.RelaxedOneHotCategorical(torch.tensor(0.5), probs=torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(r.probs, torch.tensor([1 / 6, 2 / 6, 3 / 6]))
    torch.manual_seed(0)
    x = D.Beta(torch.tensor(0.01), torch.tensor(0.01)).sample((10000,))
    assert int(((x == 0) | (x == 1)).sum()) == 0
    z = D.Kumaraswamy(2.0, 3.0).rsample((100,))
    q = D.Kumaraswamy(0.5, 0.8)
    assert torch.equal(q.log_prob(z), q.log_prob(z.clone()))
    h = D.HalfNormal(1.0, validate_args=False)
    assert float(h.cdf(torch.tensor(-1.0))) == 0.0 and float(h.log_prob(torch.tensor(-1.0))) == -math.inf
