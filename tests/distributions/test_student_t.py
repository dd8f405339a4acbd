"""StudentT with learnable degrees of freedom: exact gradient in df through a Gamma."""

from __future__ import annotations

import math

import mpmath
import pytest
import scipy.stats as st
import torch

from reparam.distributions import StudentT
from reparam.noise import MonteCarlo

mpmath.mp.dps = 40


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("df0", [0.3, 2.5, 200.0, 1000.0])
def test_sample_gradients(df0):
    """``t = eps sqrt(df / (2 G))``: ``dt/ddf = t (1 / (2 df) - (d log G / d alpha) / 4)`` with
    the implicit ``d log G / d alpha = -(dP/dalpha)(alpha, G) / (G p(G))`` (40-digit mpmath),
    ``eps`` replayed from the seeded source, ``G`` recovered from ``t``."""
    df = torch.tensor(df0, dtype=torch.float64, requires_grad=True)
    loc = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    z = StudentT(df, loc, scale).rsample((12,), noise=_gen(0))
    eps = _gen(0).normal((12,), torch.float64, torch.device("cpu"))
    alpha = df0 / 2
    for i in range(0, 12, 3):
        gd, gl, gs = torch.autograd.grad(z[i], (df, loc, scale), retain_graph=True)
        t = (z[i].item() - 1.0) / 2.0
        g = mpmath.mpf(df0) * mpmath.mpf(eps[i].item()) ** 2 / (2 * mpmath.mpf(t) ** 2)
        dP = mpmath.diff(lambda s, g=g: mpmath.gammainc(s, 0, g, regularized=True), alpha)
        dlog_g = -dP / mpmath.exp(alpha * mpmath.log(g) - g - mpmath.loggamma(alpha))
        ref = 2 * mpmath.mpf(t) * (1 / mpmath.mpf(2 * df0) - dlog_g / 4)
        assert gd.item() == pytest.approx(float(ref), rel=1e-9)
        assert gl.item() == 1.0 and gs.item() == pytest.approx(t, rel=1e-12)


def test_infinite_df_is_the_normal():
    df = torch.tensor([math.inf, 3.0], requires_grad=True)
    z = StudentT(df).rsample((2000,), noise=_gen(5))
    eps = _gen(5).normal((2000, 2), torch.float32, torch.device("cpu"))
    assert torch.equal(z[:, 0], eps[:, 0]) and bool(torch.isfinite(z).all())
    (g,) = torch.autograd.grad(z.sum(), df)
    assert g[0].item() == 0.0 and math.isfinite(g[1].item())


def test_gradient_is_unbiased():
    """``d Var / d df = -2 / (df - 2)^2`` for ``z ~ t_df`` (``E z^2 = df / (df - 2)``)."""
    n, df0 = 20000, 9.0
    df = torch.full((n,), df0, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(StudentT(df).rsample(noise=_gen(1)).pow(2).sum(), df)
    assert abs(g.mean().item() + 2 / (df0 - 2) ** 2) < 5 * g.std().item() / math.sqrt(n)


def test_small_df_finite_and_distribution():
    df = torch.tensor([0.1, 1.0], requires_grad=True)
    z = StudentT(df).rsample((3000,), noise=_gen(2))
    assert bool(torch.isfinite(z).all())
    (g,) = torch.autograd.grad(z.clamp(-10, 10).sum(), df)
    assert bool(torch.isfinite(g).all())
    assert st.kstest(z[:, 1].detach().double().numpy(), st.t(1.0).cdf).pvalue > 1e-4
    with pytest.raises(ValueError, match="df"):
        StudentT(torch.tensor(-1.0))
