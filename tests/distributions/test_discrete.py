"""Bernoulli / Categorical / OneHotCategorical latents: law, noise sources, drop-in behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st
import torch
from torch import distributions as td

from reparam.distributions import Bernoulli, Categorical, OneHotCategorical
from reparam.noise import Antithetic, MonteCarlo, Sobol

F64 = torch.float64
LOGITS = torch.tensor([-2.0, -0.3, 0.0, 0.7, 3.0], dtype=F64)


def _gen(seed: int) -> MonteCarlo:
    return MonteCarlo(torch.Generator().manual_seed(seed))


def _z(freq: torch.Tensor, p: torch.Tensor, n: int) -> torch.Tensor:
    return (freq - p) / (p * (1 - p) / n).sqrt()


@pytest.mark.parametrize("noise", [None, "mc", "antithetic", "sobol"])
def test_bernoulli_frequencies(noise):
    source = {None: None, "mc": _gen(0), "antithetic": Antithetic(_gen(1)),
              "sobol": Sobol(seed=2)}[noise]
    q, n = Bernoulli(logits=LOGITS), 20000
    b = q.sample((n,), noise=source)
    assert b.shape == (n, 5) and b.dtype == F64 and set(b.unique().tolist()) <= {0.0, 1.0}
    p = torch.from_numpy(sp.expit(LOGITS.numpy()))
    assert _z(b.mean(0), p, n).abs().max() < 5


def test_bernoulli_antithetic_pairs_are_the_arm_coupling():
    """``b = 1[u < p]``, ``b~ = 1[1 - u < p]``: for p < 1/2 never both 1, for p > 1/2 never
    both 0 (the coupling ARM and DisARM use)."""
    q, n = Bernoulli(logits=LOGITS), 4000
    b = q.sample((n,), noise=Antithetic(_gen(3)))
    first, second = b[: n // 2], b[n // 2:]
    low, high = LOGITS < 0, LOGITS > 0
    assert not ((first + second)[:, low] == 2).any()
    assert not ((first + second)[:, high] == 0).any()
    u = torch.rand(7, 5, dtype=F64)
    assert torch.equal(q.from_uniform(u), (u < torch.sigmoid(LOGITS)).to(F64))


def test_bernoulli_density_entropy_kl_match_torch_and_scipy():
    q, r = Bernoulli(logits=LOGITS), Bernoulli(probs=torch.full((5,), 0.3, dtype=F64))
    p = sp.expit(LOGITS.numpy())
    for v in (0.0, 1.0):
        x = torch.full((5,), v, dtype=F64)
        want = st.bernoulli.logpmf(v, p)
        assert torch.allclose(q.log_prob(x), torch.from_numpy(want), atol=1e-12)
    assert torch.allclose(q.entropy(), torch.from_numpy(st.bernoulli.entropy(p)), atol=1e-12)
    kl = p * (np.log(p) - math.log(0.3)) + (1 - p) * (np.log1p(-p) - math.log(0.7))
    assert torch.allclose(td.kl_divergence(q, r), torch.from_numpy(kl), atol=1e-12)
    assert torch.allclose(td.kl_divergence(q, r), td.kl_divergence(td.Bernoulli(logits=LOGITS),
                                                                   td.Bernoulli(probs=r.probs)))


def test_bernoulli_expand_and_validation():
    q = Bernoulli(logits=LOGITS).expand((3, 5))
    assert isinstance(q, Bernoulli) and q.sample((2,), noise=_gen(0)).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="probs"):
        Bernoulli(probs=torch.tensor([0.5, 1.5]), validate_args=True)


CAT_LOGITS = torch.tensor([[0.2, -1.0, 1.5, 0.0], [2.0, 0.0, 0.0, -3.0]], dtype=F64)


@pytest.mark.parametrize("noise", [None, "antithetic", "sobol"])
def test_categorical_gumbel_max_frequencies(noise):
    source = {None: None, "antithetic": Antithetic(_gen(4)), "sobol": Sobol(seed=5)}[noise]
    n = 20000
    p = torch.softmax(CAT_LOGITS, -1)
    k = Categorical(logits=CAT_LOGITS).sample((n,), noise=source)
    assert k.shape == (n, 2) and k.dtype == torch.int64
    freq = torch.stack([(k == j).to(F64).mean(0) for j in range(4)], -1)
    assert _z(freq, p, n).abs().max() < 5
    h = OneHotCategorical(logits=CAT_LOGITS).sample((n,), noise=source)
    assert h.shape == (n, 2, 4) and torch.equal(h.sum(-1), torch.ones(n, 2, dtype=F64))
    assert _z(h.mean(0), p, n).abs().max() < 5


def test_categorical_density_entropy_kl():
    c, h = Categorical(logits=CAT_LOGITS), OneHotCategorical(logits=CAT_LOGITS)
    p = sp.softmax(CAT_LOGITS.numpy(), -1)
    k = torch.tensor([2, 0])
    assert torch.allclose(c.log_prob(k), torch.log(torch.from_numpy(p[[0, 1], [2, 0]])))
    assert torch.allclose(h.log_prob(torch.eye(4, dtype=F64)[k]), c.log_prob(k))
    want = torch.from_numpy(st.entropy(p, axis=-1))
    assert torch.allclose(c.entropy(), want) and torch.allclose(h.entropy(), want)
    other = Categorical(logits=torch.zeros(2, 4, dtype=F64))
    kl = torch.from_numpy((p * (np.log(p) + math.log(4))).sum(-1))
    assert torch.allclose(td.kl_divergence(c, other), kl)
    u = torch.rand(3, 2, 4, dtype=F64)
    assert torch.equal(c.from_uniform(u), (CAT_LOGITS - torch.log(-torch.log(u))).argmax(-1))


def test_bernoulli_kl_broadcasts_and_survives_extreme_logits():
    q = Bernoulli(logits=torch.tensor([[-40.0, 0.0, 40.0]] * 4, dtype=F64))
    prior = Bernoulli(logits=torch.tensor([0.5, -0.5, 1.0], dtype=F64))
    kl = td.kl_divergence(q, prior)
    assert kl.shape == (4, 3) and torch.isfinite(kl).all()
    want = td.kl_divergence(td.Bernoulli(logits=q.logits[0]), td.Bernoulli(logits=prior.logits))
    assert torch.allclose(kl[0], want, atol=1e-12)
