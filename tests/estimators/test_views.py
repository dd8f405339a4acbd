"""detach_params / parameters / rebuild across reparam and torch families."""

from __future__ import annotations

import pytest
import torch
import torch.distributions as td

import reparam.distributions as rd
from reparam.distributions import Normal
from reparam.estimators import detach_params, parameters, rebuild


def _leaf(*values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


FAMILIES = {
    "Normal(scale)": lambda: Normal(_leaf(0.1, 1.0), _leaf(0.5, 2.0)),
    "Normal(logvar)": lambda: Normal(_leaf(0.1, 1.0), logvar=_leaf(-0.3, 0.4)),
    "td.Normal": lambda: td.Normal(_leaf(0.1, 1.0), _leaf(0.5, 2.0)),
    "td.Gamma": lambda: td.Gamma(_leaf(2.0, 3.0), _leaf(1.0, 0.5)),
    "td.Beta": lambda: td.Beta(_leaf(2.0, 3.0), _leaf(1.0, 0.5)),
    "td.Bernoulli(probs)": lambda: td.Bernoulli(probs=_leaf(0.2, 0.7)),
    "td.Bernoulli(logits)": lambda: td.Bernoulli(logits=_leaf(0.2, -0.7)),
    "td.Categorical": lambda: td.Categorical(logits=_leaf(0.2, -0.7, 1.0)),
    "td.MultivariateNormal": lambda: td.MultivariateNormal(
        _leaf(0.1, 1.0), scale_tril=torch.tensor([[1.0, 0.0], [0.5, 2.0]],
                                                 dtype=torch.float64, requires_grad=True)),
    "td.Independent(Normal)": lambda: td.Independent(Normal(_leaf(0.1, 1.0), _leaf(0.5, 2.0)), 1),
    "td.RelaxedBernoulli": lambda: td.RelaxedBernoulli(torch.tensor(0.5, dtype=torch.float64),
                                                       logits=_leaf(0.2, -0.7)),
    "td.Binomial": lambda: td.Binomial(5, probs=_leaf(0.2, 0.7)),
    "Laplace": lambda: rd.Laplace(_leaf(0.1, 1.0), _leaf(0.5, 2.0)),
    "Gamma": lambda: rd.Gamma(_leaf(2.0, 3.0), _leaf(1.0, 0.5)),
    "Beta": lambda: rd.Beta(_leaf(2.0, 3.0), _leaf(1.0, 0.5)),
    "Kumaraswamy": lambda: rd.Kumaraswamy(_leaf(2.0, 3.0), _leaf(1.0, 0.5)),
    "TruncatedNormal": lambda: rd.TruncatedNormal(_leaf(0.1, 1.0), _leaf(0.5, 2.0),
                                                  _leaf(-1.0, -1.0), _leaf(2.0, 3.0)),
    "MultivariateNormal": lambda: rd.MultivariateNormal(
        _leaf(0.1, 1.0), scale_tril=torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64,
                                                 requires_grad=True)),
    "RelaxedOneHotCategorical": lambda: rd.RelaxedOneHotCategorical(
        torch.tensor(0.5, dtype=torch.float64), logits=_leaf(0.2, -0.7, 0.1)),
    "VonMisesFisher": lambda: rd.VonMisesFisher(_leaf(0.6, 0.8), _leaf(2.0)),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_detached_view_same_density_no_parameter_gradient(name):
    dist = FAMILIES[name]()
    z = dist.sample((3,))
    if name == "td.RelaxedBernoulli":
        z = z.clamp(1e-6, 1 - 1e-6)
    view = detach_params(dist)
    assert type(view) is type(dist)
    torch.testing.assert_close(view.log_prob(z), dist.log_prob(z))
    assert not view.log_prob(z).requires_grad
    assert any(p.requires_grad for p in parameters(dist).values())
    assert not any(p.requires_grad for p in parameters(view).values())


def test_detached_view_keeps_path_through_sample():
    """log q_stop(z(theta)) still depends on theta through z: the STL gradient."""
    loc, logvar = _leaf(0.3), _leaf(0.2)
    q = Normal(loc, logvar=logvar)
    z = q.rsample((5,))
    g = torch.autograd.grad(detach_params(q).log_prob(z).sum(), [loc, logvar])
    eps = (z - loc) / q.scale
    # d/dz log q = -(z - loc) / var; dz/dloc = 1 (loc held fixed in q_stop)
    torch.testing.assert_close(g[0], (-(z - loc) / q.variance).sum().detach().reshape(1))
    assert torch.isfinite(g[1]).all() and eps.requires_grad


def test_given_parameterisation_is_kept():
    q = Normal(_leaf(0.0), logvar=_leaf(0.5))
    _ = q.scale  # computes the lazy alternative
    assert set(parameters(q)) == {"loc", "logvar"} and q.parameterization == "logvar"
    s = Normal(_leaf(0.0), _leaf(0.5))
    _ = s.logvar
    assert set(parameters(s)) == {"loc", "scale"} and s.parameterization == "scale"
    assert s.expand((3,)).parameterization == "scale"
    assert q.expand((3,)).parameterization == "logvar"
    b = td.Bernoulli(probs=_leaf(0.3))
    _ = b.logits
    assert set(parameters(b)) == {"probs"}


def test_rebuild_replaces_parameters_and_reports_failures():
    q = td.Gamma(_leaf(2.0), _leaf(1.0))
    r = rebuild(q, {"concentration": torch.tensor([4.0], dtype=torch.float64)})
    assert r.mean.item() == pytest.approx(4.0)
    with pytest.raises(TypeError, match="cannot rebuild Gamma"):
        rebuild(q, {"bogus": torch.ones(1)})
