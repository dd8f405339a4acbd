"""StudentT with learnable degrees of freedom: exact implicit gradient in df."""

from __future__ import annotations

import math

import pytest
import scipy.stats as st
import torch

from reparam.distributions import StudentT
from reparam.noise import MonteCarlo


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("df0", [0.3, 2.5, 200.0])
def test_sample_gradients(df0):
    df = torch.tensor(df0, dtype=torch.float64, requires_grad=True)
    loc = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    z = StudentT(df, loc, scale).rsample((12,), noise=_gen(0))
    for i in range(0, 12, 3):
        gd, gl, gs = torch.autograd.grad(z[i], (df, loc, scale), retain_graph=True)
        t = (z[i].item() - 1.0) / 2.0
        h = 1e-5 * df0
        dF = (st.t(df0 + h).cdf(t) - st.t(df0 - h).cdf(t)) / (2 * h)
        assert gd.item() == pytest.approx(-2.0 * dF / st.t(df0).pdf(t), rel=1e-5, abs=1e-12)
        assert gl.item() == 1.0 and gs.item() == pytest.approx(t, rel=1e-12)


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
