"""The generic rejection-sampling reparameterization mechanism."""

from __future__ import annotations

import math

import pytest
import torch

from reparam.distributions import RejectionSample, rejection_rsample
from reparam.distributions.rejection import gather


def test_surrogate_keeps_value_and_adds_correction():
    theta = torch.tensor(2.0, requires_grad=True)
    rs = RejectionSample(value=theta * torch.ones(3), log_weight=theta * torch.arange(3.0))
    cost = rs.value ** 2
    s = rs.surrogate(cost)
    torch.testing.assert_close(s, cost)
    (g,) = torch.autograd.grad(s.sum(), theta)
    # pathwise 2 theta * 3 + correction sum_i cost_i * i = 4 * (0 + 1 + 2)
    assert g.item() == pytest.approx(12.0 + 12.0)


def test_score_only_rejection_is_unbiased():
    """Target Exp(rate) from proposals z = h(eps) = eps / c (Exp(c), c < rate, fixed), accepted
    with probability exp(-(rate - c) z): the pathwise part is zero, the whole gradient
    ``d E[z] / d rate = -1 / rate^2`` comes from the correction term."""
    from reparam.noise import MonteCarlo

    n, rate0, c = 40000, 1.5, 0.5
    src = MonteCarlo(torch.Generator().manual_seed(0))
    rate = torch.full((n,), rate0, dtype=torch.float64, requires_grad=True)
    rs = rejection_rsample(
        propose=lambda source, sh: -torch.log(source.uniform(sh, torch.float64,
                                                             torch.device("cpu"))),
        log_accept=lambda eps, idx: -(gather(rate.detach(), (n,), idx) - c) * eps / c,
        transform=lambda eps: eps / c,
        log_target=lambda z: torch.log(rate) - rate * z,
        log_abs_dh=lambda eps: torch.full_like(eps, -math.log(c)), shape=torch.Size([n]),
        noise=src)
    assert abs(rs.value.mean().item() - 1 / rate0) < 5 / rate0 / math.sqrt(n)
    (g,) = torch.autograd.grad(rs.surrogate(rs.value).sum(), rate)
    assert abs(g.mean().item() + 1 / rate0**2) < 5 * g.std().item() / math.sqrt(n)
    assert not rs.value.requires_grad  # without the correction there is no gradient at all


def test_gives_up_after_max_rounds():
    with pytest.raises(RuntimeError, match="rounds"):
        rejection_rsample(lambda src, sh: torch.zeros(sh), lambda e, i: torch.full_like(e, -math.inf),
                          lambda e: e, lambda z: z, lambda e: e, torch.Size([2]), max_rounds=3)
