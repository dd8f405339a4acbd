"""Flow posteriors: log q against a change-of-variables check with autograd Jacobians (float64)."""

import pytest
import torch
from torch.autograd.functional import jacobian

from reparam.distributions import Normal
from reparam.noise import NoiseSource
from reparam.vae.flows import FLOWS, FlowPosterior, IAFStep, PlanarFlow

D = torch.float64


class Fixed(NoiseSource):
    """Returns the given standard normal draws (reshaped to the asked shape)."""

    def __init__(self, eps: torch.Tensor) -> None:
        self.eps = eps

    def normal(self, shape, dtype, device):
        return self.eps.reshape(shape).to(dtype=dtype, device=device)


def _posterior(kind: str, L: int = 3, C: int = 4, length: int = 3) -> FlowPosterior:
    layers = FLOWS[kind](L, C, length, hidden=16).double()
    with torch.no_grad():  # stronger than the default init, so the flow is far from identity
        for p in layers.parameters():
            p.mul_(3.0)
    base = Normal(torch.randn(1, L, dtype=D), logvar=0.3 * torch.randn(1, L, dtype=D))
    return FlowPosterior(base, layers, torch.randn(1, C, dtype=D))


@pytest.mark.parametrize("kind", sorted(FLOWS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_q_is_the_change_of_variables_density(kind, seed):
    torch.manual_seed(seed)
    q = _posterior(kind)
    eps = torch.randn(3, dtype=D)
    z, log_q = q.rsample_with_log_prob((), noise=Fixed(eps))
    # z(eps) written out (the family's sampler gives no gradient to its noise)
    loc, sd = q.base.loc, q.base.scale
    J = jacobian(lambda e: q._push(loc + sd * e.reshape(1, 3))[0].reshape(-1), eps)  # (3, 3)
    torch.testing.assert_close(z, q._push(loc + sd * eps.reshape(1, 3))[0])
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum() - torch.linalg.slogdet(J)[1]
    torch.testing.assert_close(log_q.reshape(()), ref, rtol=1e-10, atol=1e-10)
    assert abs(torch.linalg.slogdet(J)[1].item()) > 1e-3  # a non-trivial volume change


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_sample_dims_and_mean(kind):
    q = _posterior(kind)
    q.base = Normal(torch.randn(4, 3, dtype=D), logvar=torch.zeros(4, 3, dtype=D))
    q.context = torch.randn(4, 4, dtype=D)
    z, log_q = q.rsample_with_log_prob((5,))
    assert z.shape == (5, 4, 3) and log_q.shape == (5, 4)
    assert q.mean.shape == (4, 3)


def test_iaf_step_is_autoregressive():
    for reverse in (False, True):
        step = IAFStep(4, 2, hidden=12, reverse=reverse).double()
        h = torch.randn(1, 2, dtype=D)
        z0 = torch.randn(1, 4, dtype=D)
        J = jacobian(lambda z, s=step, h=h: s(z.reshape(1, 4), h)[0].reshape(-1), z0.reshape(-1))
        tri = torch.triu(J, 1) if not reverse else torch.tril(J, -1)
        assert tri.abs().max() == 0  # z'_i depends on z_<i only (on z_>i when reversed)
        torch.testing.assert_close(torch.linalg.slogdet(J)[1], step(z0, h)[1].reshape(()))


def test_planar_constraint_keeps_the_map_invertible():
    flow = PlanarFlow(2, 1).double()
    with torch.no_grad():  # raw u pointing against w: without the fix 1 + h' w.u < 0
        flow.params.weight.zero_()
        flow.params.bias.copy_(torch.tensor([-5.0, 0.0, 1.0, 0.0, 0.0], dtype=D))
    z = torch.linspace(-3, 3, 101, dtype=D)[:, None, None] * torch.tensor([1.0, 0.0], dtype=D)
    out, logdet = flow(z, torch.zeros(1, 1, dtype=D))
    assert torch.isfinite(logdet).all()
    proj = out[..., 0].reshape(-1)  # along w the map must be strictly increasing
    assert (proj.diff() > 0).all()
