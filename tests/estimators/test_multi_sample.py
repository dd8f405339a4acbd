"""Multi-sample estimators: the contract (value = negative K-sample bound) and IWAE's gradient."""

import math

import pytest
import torch

from reparam.distributions import Normal
from reparam.estimators import ESTIMATORS, IWAE, DReG
from reparam.noise import MonteCarlo

D = torch.float64


def _problem():
    loc = torch.tensor([0.3, -0.2], dtype=D, requires_grad=True)
    log_scale = torch.tensor([0.1, -0.4], dtype=D, requires_grad=True)
    target = torch.tensor([1.0, 0.5], dtype=D, requires_grad=True)

    def f(z):  # -log p(x, z) for a Gaussian "joint", per sample and batch index: (K, 2)
        return 0.5 * (z - target) ** 2 + 0.5 * math.log(2 * math.pi)

    return f, loc, log_scale, target


def test_declared_attributes():
    for cls in (IWAE, DReG):
        assert cls.multi_sample is True and cls.includes_log_q is True
    assert "iwae" in ESTIMATORS and isinstance(ESTIMATORS["iwae"](), IWAE)


@pytest.mark.parametrize("K", [1, 5])
def test_iwae_value_and_gradient_are_those_of_the_bound(K):
    f, loc, log_scale, target = _problem()
    q = Normal(loc, log_scale.exp())
    out = IWAE()(f, q, K, noise=MonteCarlo(torch.Generator().manual_seed(3)))
    assert out.shape == (2,)
    grads = torch.autograd.grad(out.sum(), [loc, log_scale, target])
    # the same draws by hand: z = loc + scale * eps
    eps = MonteCarlo(torch.Generator().manual_seed(3)).normal((K, 2), D, loc.device)
    scale = log_scale.exp()
    z = loc + scale * eps
    log_q = -0.5 * eps**2 - log_scale - 0.5 * math.log(2 * math.pi)
    ref = -(torch.logsumexp(-f(z) - log_q, 0) - math.log(K))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, torch.autograd.grad(ref.sum(), [loc, log_scale, target])):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_dreg_and_iwae_have_the_same_value():
    f, loc, log_scale, _ = _problem()
    q = Normal(loc, log_scale.exp())
    a = IWAE()(f, q, 6, noise=MonteCarlo(torch.Generator().manual_seed(0)))
    b = DReG()(f, q, 6, noise=MonteCarlo(torch.Generator().manual_seed(0)))
    torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)
