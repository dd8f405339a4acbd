"""Noise sources: ranges, antithetic mirroring, Sobol stratification, unbiasedness, variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

import reparam.distributions as D
from reparam import noise
from reparam.noise import Antithetic, MonteCarlo, Sobol

CPU = torch.device("cpu")
SOURCES = {"mc": lambda: MonteCarlo(torch.Generator().manual_seed(0)),
           "antithetic": lambda: Antithetic(MonteCarlo(torch.Generator().manual_seed(0))),
           "sobol": lambda: Sobol(seed=0)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SOURCES)
def test_shapes_dtypes_and_open_interval(name, dtype):
    src = SOURCES[name]()
    u = src.uniform((4096, 3, 2), dtype, CPU)
    e = src.normal((4096, 3, 2), dtype, CPU)
    assert u.shape == e.shape == (4096, 3, 2) and u.dtype == e.dtype == dtype
    assert (u > 0).all() and (u < 1).all() and torch.isfinite(e).all()
    assert st.kstest(u.flatten().double().numpy(), "uniform").pvalue > 1e-4
    assert st.kstest(e.flatten().double().numpy(), "norm").pvalue > 1e-4


def test_antithetic_pairs_and_even_count():
    src = Antithetic(MonteCarlo(torch.Generator().manual_seed(1)))
    e = src.normal((6, 2), torch.float64, CPU)
    torch.testing.assert_close(e[3:], -e[:3])
    u = src.uniform((6, 2), torch.float64, CPU)
    torch.testing.assert_close(u[3:], 1 - u[:3])
    with pytest.raises(ValueError, match="even"):
        src.normal((5,), torch.float64, CPU)


def test_antithetic_uniform_never_reaches_one():
    class Tiny(noise.NoiseSource):  # the smallest value MonteCarlo can return
        def uniform(self, shape, dtype, device):
            return torch.full(shape, torch.finfo(dtype).tiny, dtype=dtype, device=device)

    u = Antithetic(Tiny()).uniform((4,), torch.float32, CPU)
    assert (u < 1).all() and torch.isfinite(D.Exponential(torch.tensor(1.0)).icdf(u)).all()


@pytest.mark.parametrize("m", [6, 8])
def test_sobol_points_are_stratified(m):
    """Every 1-D projection of 2^m scrambled Sobol points has one point per cell of width 2^-m."""
    n = 2**m
    u = Sobol(seed=3).uniform((n, 5), torch.float64, CPU)
    cells = torch.floor(u * n).long()
    for j in range(5):
        assert torch.equal(torch.sort(cells[:, j]).values, torch.arange(n))


def test_sobol_reproducible_yet_fresh_per_call():
    a, b = Sobol(seed=4), Sobol(seed=4)
    u1, u2 = a.uniform((16, 2), torch.float64, CPU), a.uniform((16, 2), torch.float64, CPU)
    assert torch.equal(u1, b.uniform((16, 2), torch.float64, CPU))
    assert not torch.equal(u1, u2)
    with pytest.raises(ValueError, match="coordinates"):
        a.uniform((2, Sobol.MAX_DIM + 1), torch.float64, CPU)


def _gradient_estimates(source, reps: int, n: int = 256) -> np.ndarray:
    """``d/d loc E[sin z + z^2 / 4]`` for ``z ~ N(loc, 1)`` in 4 coordinates, ``reps`` times."""
    out = []
    for _ in range(reps):
        loc = torch.full((4,), 0.3, dtype=torch.float64, requires_grad=True)
        z = D.Normal(loc, torch.ones(4, dtype=torch.float64)).rsample((n,), noise=source)
        (torch.sin(z) + z.pow(2) / 4).mean(0).sum().backward()
        out.append(loc.grad.numpy().copy())
    return np.array(out)


@pytest.mark.parametrize("name", SOURCES)
def test_unbiased_gradient_estimates(name):
    """Mean over independent randomizations agrees with ``cos(loc) e^{-1/2} + loc / 2``."""
    g = _gradient_estimates(SOURCES[name](), reps=60)
    exact = math.cos(0.3) * math.exp(-0.5) + 0.15
    se = g.std(0, ddof=1) / math.sqrt(len(g))
    assert np.all(np.abs(g.mean(0) - exact) < 5 * se + 1e-12)


def test_sobol_beats_monte_carlo_variance():
    var_mc = _gradient_estimates(SOURCES["mc"](), reps=60).var(0, ddof=1).mean()
    var_qmc = _gradient_estimates(SOURCES["sobol"](), reps=60).var(0, ddof=1).mean()
    assert var_mc / var_qmc > 20, var_mc / var_qmc


def test_resolve():
    assert noise.resolve(None) is noise.DEFAULT_NOISE
    src = Sobol(seed=0)
    assert noise.resolve(src) is src
    with pytest.raises(TypeError, match="NoiseSource"):
        noise.resolve("sobol")


@pytest.mark.parametrize("family", [
    D.Laplace(0.0, 1.0), D.Gumbel(0.0, 1.0), D.Exponential(1.0), D.Kumaraswamy(2.0, 3.0),
    D.TruncatedNormal(0.0, 1.0, -1.0, 2.0), D.RelaxedBernoulli(0.5, logits=torch.tensor(0.3)),
])
def test_every_family_takes_every_source(family):
    for make in SOURCES.values():
        z = family.rsample((64,), noise=make())
        assert z.shape == (64,) and torch.isfinite(z).all()
