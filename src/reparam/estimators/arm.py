r"""Antithetic estimators for Bernoulli latents: ARM, DisARM and multi-sample DisARM.

All draw antithetic uniforms ``(u, 1 - u)`` through the noise source
(:class:`~reparam.noise.Antithetic` around the one given) and form the coupled pair
``b = 1[u < sigma(phi)]``, ``b~ = 1[1 - u < sigma(phi)]`` (``phi`` the logits); both are
exact Bernoulli(sigma(phi)) draws. ``num_samples`` (even) counts evaluations of ``f``:
``num_samples / 2`` pairs.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..noise import Antithetic, NoiseSource, resolve
from ._base import (
    CostFn,
    Estimator,
    check_num_samples,
    costs_of,
    linear_term,
    pad_like,
    sum_to_costs,
)
from ._discrete import bernoulli_logits, uniforms


def _pairs(dist: Distribution, num_samples: int, noise: NoiseSource | None, who: str):
    """``(logits, u, b)``: ``u`` of shape ``(S, *P)`` whose second half is ``1 - u``."""
    if num_samples % 2:
        raise ValueError(f"{who} needs an even num_samples (antithetic pairs), got {num_samples}")
    logits = bernoulli_logits(dist, who)
    u = uniforms(Antithetic(resolve(noise)), (num_samples, *logits.shape), logits)
    b = (u < torch.sigmoid(logits.detach())).to(logits.dtype)
    return logits, u, b


class _Antithetic(Estimator):
    """``E[f]`` by the mean of all ``S`` costs; the logits get ``mean_pairs pair_gradient``."""

    multi_sample = False
    discrete_only = True  # Bernoulli latents only

    def pair_gradient(self, b, bt, fb, fbt, u, logits):  # (S/2, *P) each
        raise NotImplementedError

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 2, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        S = check_num_samples(num_samples, 2)
        logits, u, b = _pairs(dist, S, noise, type(self).__name__)
        costs = costs_of(f, b, S)
        c = pad_like(costs.detach(), b.dim())
        h = S // 2
        g = self.pair_gradient(b[:h], b[h:], c[:h], c[h:], u[:h], logits.detach()).mean(0)
        return costs.mean(0) + linear_term(g, logits, costs.dim() - 1)


class ARM(_Antithetic):
    r"""Augment-REINFORCE-merge (Yin & Zhou 2019):
    ``g = (f(b~) - f(b)) (u - 1/2)``, ``b~ = 1[u > sigma(-phi)]``, ``b = 1[u < sigma(phi)]``."""

    def pair_gradient(self, b: torch.Tensor, bt: torch.Tensor, fb: torch.Tensor, fbt: torch.Tensor,
                      u: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return (fbt - fb) * (u - 0.5)


class DisARM(_Antithetic):
    r"""DisARM (Dong, Mnih & Tucker 2020), ARM with the uniform integrated out:
    ``g = 1/2 (f(b) - f(b~)) 1[b != b~] (-1)^{b~} sigma(|phi|)``. Never worse than ARM."""

    def weight(self, logits: torch.Tensor) -> torch.Tensor:
        """``sigma(|phi|)``: the conditional expectation of ARM's ``u - 1/2`` factor."""
        return torch.sigmoid(logits.abs())

    def pair_gradient(self, b: torch.Tensor, bt: torch.Tensor, fb: torch.Tensor, fbt: torch.Tensor,
                      u: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sign = (b - bt)  # 1[b != b~] (-1)^{b~}: +1 for (1, 0), -1 for (0, 1), 0 when equal
        return 0.5 * (fb - fbt) * sign * self.weight(logits)


def _swap_bound(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``log mean_j exp(a_j)`` with ``a_k`` replaced by ``c_k``, for every ``k``: shape of ``a``.

    ``a``, ``c``: ``(K, *rest)``; builds the ``(K, K, *rest)`` matrix ``M[k, j] = a_j``
    (``j != k``), ``c_k`` (``j = k``) and reduces over ``j``.
    """
    K = a.shape[0]
    eye = torch.eye(K, dtype=torch.bool, device=a.device).reshape(K, K, *([1] * (a.dim() - 1)))
    m = torch.where(eye, c.unsqueeze(1), a.unsqueeze(0))
    return torch.logsumexp(m, 1) - math.log(K)


class DisARMIW(Estimator):
    r"""DisARM for the multi-sample (IWAE) bound, ``f = -log p(x, z)``, ``K = num_samples``.

    Draws ``K`` antithetic pairs ``(b_k, b~_k)`` (``2K`` evaluations of ``f``),
    ``log w = -f - log q``, ``L(z_{1:K}) = log mean_k w_k``. Sample ``k``'s learning signal
    is DisARM's difference of ``L`` conditional on the other samples, averaged over the two
    choices of the others (``b_{-k}`` as in Dong et al.'s local DisARM, and ``b~_{-k}``):
    ``d_k = 1/2 [L(b) - L(b with b_k -> b~_k) + L(b~ with b~_k -> b_k) - L(b~)]``;
    the logits get ``sum_k 1/2 d_k 1[b_k != b~_k] (-1)^{b~_k} sigma(|phi|)``, plus the
    explicit gradient of ``(L(b) + L(b~)) / 2`` (through ``log q`` and ``f``). Value:
    ``-(L(b) + L(b~)) / 2`` (the negative K-sample bound).
    """

    multi_sample = True
    includes_log_q = True
    discrete_only = True

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 2, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        K = check_num_samples(num_samples, 1)
        logits, _, z = _pairs(dist, 2 * K, noise, "DisARMIW")
        costs = costs_of(f, z, 2 * K)
        log_w = -costs - sum_to_costs(dist.log_prob(z), costs)  # (2K, *rest)
        a, c = log_w[:K].detach(), log_w[K:].detach()
        bound = lambda x: torch.logsumexp(x, 0) - math.log(K)  # noqa: E731
        d = 0.5 * (bound(a) - _swap_bound(a, c) + _swap_bound(c, a) - bound(c))  # (K, *rest)
        b, bt = z[:K], z[K:]
        g = (0.5 * pad_like(d, b.dim()) * (b - bt) * torch.sigmoid(logits.detach().abs())).sum(0)
        live = 0.5 * (bound(log_w[:K]) + bound(log_w[K:]))
        return -live - linear_term(g, logits, costs.dim() - 1)
