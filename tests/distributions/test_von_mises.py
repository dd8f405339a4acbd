"""VonMises with an rsample: exact implicit gradient in the concentration."""

from __future__ import annotations

import math

import pytest
import scipy.stats as st
import torch

from reparam.distributions import VonMises
from reparam.special import bessel_ratio


@pytest.mark.parametrize("kappa0", [1e-3, 2.0, 1e3])
def test_sample_gradients_match_cdf_differences(kappa0):
    torch.manual_seed(0)
    kappa = torch.tensor(kappa0, dtype=torch.float64, requires_grad=True)
    loc = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    z = VonMises(loc, kappa).rsample((8,))
    assert bool(((z > -math.pi) & (z <= math.pi)).all())
    for i in range(0, 8, 2):
        gk, gl = torch.autograd.grad(z[i], (kappa, loc), retain_graph=True)
        theta = math.remainder(z[i].item() - 3.0, 2 * math.pi)
        h = 1e-4 * kappa0
        cdf = lambda k, th=theta: st.vonmises(k).cdf(th)  # noqa: E731
        dF = (cdf(kappa0 + h) - cdf(kappa0 - h)) / (2 * h)
        assert gk.item() == pytest.approx(-dF / st.vonmises(kappa0).pdf(theta), rel=1e-5,
                                          abs=1e-9 / max(kappa0, 1))
        assert gl.item() == 1.0


@pytest.mark.parametrize("kappa0", [0.5, 8.0])
def test_gradient_is_unbiased(kappa0):
    """``d E[cos z] / d kappa = A'(kappa) = 1 - A^2 - A / kappa``, ``A = I_1 / I_0``."""
    torch.manual_seed(1)
    n = 20000
    kappa = torch.full((n,), kappa0, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(VonMises(torch.zeros(n, dtype=torch.float64), kappa)
                               .rsample().cos().sum(), kappa)
    a = bessel_ratio(0, torch.tensor(kappa0, dtype=torch.float64)).item()
    assert abs(g.mean().item() - (1 - a * a - a / kappa0)) < 5 * g.std().item() / math.sqrt(n)


def test_float32_and_validation():
    kappa = torch.tensor([1e-3, 50.0], requires_grad=True)
    z = VonMises(torch.zeros(2), kappa).rsample((100,))
    assert z.dtype == torch.float32
    (g,) = torch.autograd.grad(z.sin().sum(), kappa)
    assert bool(torch.isfinite(g).all())
    with pytest.raises(ValueError, match="concentration"):
        VonMises(0.0, torch.tensor(-1.0))
