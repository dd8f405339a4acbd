r"""Discrete problems small enough to enumerate, with their exact gradients.

Each problem is vectorised over ``N`` replicas (the first batch dim) and has a nonlinear
cost that also accepts relaxed inputs (so REBAR, RELAX and the relaxations apply):

- ``bernoulli10``: 10 Bernoulli variables (1024 states),
  ``f(z) = (z . w - 1)^2 + sin(3 z . v)``;
- ``categorical3x4``: 3 one-hot categoricals of 4 classes (64 states),
  ``f(z) = (sum z * W - 1)^2 + sin(2 sum z * V)``;
- ``bernoulli4-iw3`` / ``categorical2x3-iw3``: the negative multi-sample bound
  ``-E[log mean_k w_k]``,
  ``log w = -f(z) - log q(z)``, ``K = 3`` (``16^3`` / ``9^3`` joint states).

Exact gradients: ``E[f] = sum_z q(z) f(z)`` (or the bound's expectation over all ``K``-tuples)
in float64, differentiated by autograd.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import distributions as td

from ..distributions.discrete import Bernoulli, OneHotCategorical

D64 = torch.float64


@dataclass
class Problem:
    name: str
    logits: torch.Tensor                   # one replica's logits
    cost: Callable[[torch.Tensor], torch.Tensor]  # (S, N, *event) -> (S, N)
    kind: str                              # "bernoulli" or "categorical"
    multi_sample: int = 0                  # K of the bound, 0 for E[f]

    def dist(self, logits: torch.Tensor) -> td.Distribution:
        if self.kind == "bernoulli":
            return td.Independent(Bernoulli(logits=logits), 1)
        return td.Independent(OneHotCategorical(logits=logits), 1)

    def replicas(self, n: int) -> torch.Tensor:
        """``n`` copies of the logits as one leaf ``(n, *shape)``."""
        return self.logits.expand(n, *self.logits.shape).clone().requires_grad_()

    def states(self) -> torch.Tensor:
        """Every value of one replica's latent: ``(M, *event)``."""
        if self.kind == "bernoulli":
            d = self.logits.shape[-1]
            return torch.tensor(list(itertools.product((0.0, 1.0), repeat=d)), dtype=D64)
        n, k = self.logits.shape
        eye = torch.eye(k, dtype=D64)
        return torch.stack([eye[list(c)] for c in itertools.product(range(k), repeat=n)])

    def exact(self) -> tuple[float, torch.Tensor]:
        """``(value, gradient)`` of what an estimator's surrogate estimates: ``E[f]``, or the
        negative expected bound ``-E[log mean_k w_k]`` for a multi-sample problem."""
        phi = self.logits.clone().requires_grad_()
        z = self.states()
        log_q = self.dist(phi).log_prob(z)   # (M,)
        f = self.cost(z.unsqueeze(1)).squeeze(1)
        if not self.multi_sample:
            value = (log_q.exp() * f).sum()
        else:
            value = -_expected_bound(log_q, -f - log_q, self.multi_sample)
        (grad,) = torch.autograd.grad(value, phi)
        return float(value.detach()), grad


def _expected_bound(log_q: torch.Tensor, log_w: torch.Tensor, K: int) -> torch.Tensor:
    """``sum_{z_1..K} prod_k q(z_k) log mean_k w(z_k)`` over all ``M^K`` tuples."""
    M = log_q.shape[0]
    idx = torch.cartesian_prod(*[torch.arange(M)] * K).reshape(-1, K)
    weight = log_q[idx].sum(1).exp()
    bound = torch.logsumexp(log_w[idx], 1) - math.log(K)
    return (weight * bound).sum()


def _bernoulli_cost(w, v):
    def cost(z):
        return (z @ w - 1.0) ** 2 + torch.sin(3.0 * (z @ v))
    return cost


def _categorical_cost(W, V):
    def cost(z):
        return ((z * W).sum((-1, -2)) - 1.0) ** 2 + torch.sin(2.0 * (z * V).sum((-1, -2)))
    return cost


def _bernoulli(d: int, K: int = 0) -> Problem:
    g = torch.Generator().manual_seed(d)
    logits = torch.linspace(-1.5, 1.5, d, dtype=D64) + 0.3 * torch.randn(d, generator=g, dtype=D64)
    w = torch.randn(d, generator=g, dtype=D64) / math.sqrt(d)
    v = torch.randn(d, generator=g, dtype=D64) / math.sqrt(d)
    name = f"bernoulli{d}" + (f"-iw{K}" if K else "")
    return Problem(name, logits, _bernoulli_cost(w, v), "bernoulli", K)


def _categorical(n: int, k: int, K: int = 0) -> Problem:
    g = torch.Generator().manual_seed(10 * n + k)
    logits = torch.randn(n, k, generator=g, dtype=D64)
    W = torch.randn(n, k, generator=g, dtype=D64) / math.sqrt(n)
    V = torch.randn(n, k, generator=g, dtype=D64) / math.sqrt(n)
    name = f"categorical{n}x{k}" + (f"-iw{K}" if K else "")
    return Problem(name, logits, _categorical_cost(W, V), "categorical", K)


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "bernoulli10": lambda: _bernoulli(10),
    "categorical3x4": lambda: _categorical(3, 4),
    "bernoulli4-iw3": lambda: _bernoulli(4, 3),
    "categorical2x3-iw3": lambda: _categorical(2, 3, 3),
}

#: Unbiased estimators for each kind of problem, with the samples per estimate used.
UNBIASED: dict[str, dict[str, int]] = {
    "bernoulli": {"score": 2, "score-ema": 2, "rloo": 2, "score-nvil": 2, "score-cv": 2,
                  "arm": 2, "disarm": 2, "rebar": 1, "relax": 1},
    "categorical": {"score": 2, "score-ema": 2, "rloo": 2, "score-nvil": 2, "score-cv": 2,
                    "rebar": 1, "relax": 1},
    "bernoulli-iw": {"vimco": 3, "disarm-iw": 3},
    "categorical-iw": {"vimco": 3},
}
BIASED = {"gumbel": 2, "straight-through": 2}
#: Evaluations of ``f`` per sample.
EVALS_PER_SAMPLE = {"rebar": 3, "relax": 3, "disarm-iw": 2}


def estimators_for(problem: Problem) -> dict[str, int]:
    key = problem.kind + ("-iw" if problem.multi_sample else "")
    return UNBIASED[key]
