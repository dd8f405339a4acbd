r"""A VAE / sigmoid belief network with binary latents, trained through any estimator.

``q(z | x) = prod_i Bernoulli(z_i; sigmoid(enc(x - mean)))``, ``p(z) = prod_i
Bernoulli(z_i; sigmoid(prior_logits))`` (learned), ``p(x | z) = prod_j Bernoulli(x_j;
sigmoid(dec(z)))``. Architectures of the REBAR / RELAX / DisARM papers: ``"linear"``
(one linear layer each way) and ``"nonlinear"`` (two hidden layers of 200 tanh units
each way). The decoder's output bias starts at the logit of the training mean.

Objectives (:func:`loss`): single-sample estimators estimate ``E_q[-log p(x | z)]``
and the KL to the prior is exact, ``-ELBO = E_q[-log p(x|z)] + KL(q || p)``;
multi-sample ones (``est.multi_sample``) take ``f = -log p(x, z)`` and return the negative
K-sample bound.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as td
from torch import nn

from ..distributions.discrete import Bernoulli
from ..estimators import Estimator

ARCHS = ("linear", "nonlinear")


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class BernoulliLatentVAE(nn.Module):
    """Encoder, decoder and prior logits for ``latent_dim`` binary latents."""

    def __init__(self, data_dim: int = 784, latent_dim: int = 200, arch: str = "linear",
                 hidden: int = 200, train_mean: torch.Tensor | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        mid = [] if arch == "linear" else [hidden, hidden]
        self.encoder = _mlp([data_dim, *mid, latent_dim])
        self.decoder = _mlp([latent_dim, *mid, data_dim])
        self.prior_logits = nn.Parameter(torch.zeros(latent_dim))
        mean = torch.full((data_dim,), 0.5) if train_mean is None else train_mean.float()
        self.register_buffer("mean", mean.clone())
        with torch.no_grad():
            m = mean.clamp(1e-3, 1 - 1e-3)
            self.decoder[-1].bias.copy_(torch.log(m) - torch.log1p(-m))

    def posterior(self, x: torch.Tensor) -> td.Distribution:
        """``q(z | x)``, batch ``(B,)``, event ``(latent_dim,)``."""
        return td.Independent(Bernoulli(logits=self.encoder(x - self.mean)), 1)

    def prior(self) -> td.Distribution:
        return td.Independent(Bernoulli(logits=self.prior_logits), 1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` for ``z`` of shape ``(S, B, latent)`` (relaxed allowed): ``(S, B)``."""
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x, z) = log p(x | z) + log p(z)``, shape ``(S, B)``."""
        pl = self.prior_logits
        log_prior = (z * pl - F.softplus(pl)).sum(-1)
        return self.log_likelihood(x, z) + log_prior

    def kl(self, q: td.Distribution) -> torch.Tensor:
        """``KL(q(z | x) || p(z))`` in closed form, shape ``(B,)``."""
        return td.kl_divergence(q, self.prior())


def loss(model: BernoulliLatentVAE, x: torch.Tensor, est: Estimator,
         num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scalar to minimise, per-example objective value (B,))``: the negative ELBO, or
    the negative ``num_samples``-sample bound for a multi-sample estimator."""
    q = model.posterior(x)
    if getattr(est, "multi_sample", False):
        per = est(lambda z: -model.log_joint(x, z), q, num_samples)
    else:
        per = est(lambda z: -model.log_likelihood(x, z), q, num_samples) + model.kl(q)
    return per.mean(), per.detach()


@torch.no_grad()
def elbo(model: BernoulliLatentVAE, x: torch.Tensor, chunk: int = 5000) -> torch.Tensor:
    """One-sample ELBO per example, ``log p(x | z) - KL``, ``z ~ q(z | x)`` (shape ``(N,)``)."""
    out = []
    for xb in x.split(chunk):
        q = model.posterior(xb)
        out.append(model.log_likelihood(xb, q.sample((1,)))[0] - model.kl(q))
    return torch.cat(out)


@torch.no_grad()
def importance_bound(model: BernoulliLatentVAE, x: torch.Tensor, k: int,
                     chunk: int = 50_000) -> torch.Tensor:
    """``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)``, per example: the
    k-sample bound (``k = 100``) or the NLL estimate ``-bound`` (``k = 5000``). ``chunk``
    caps samples x examples per pass."""
    out = []
    per = max(1, chunk // k)
    for xb in x.split(per):
        q = model.posterior(xb)
        parts = []
        for s in range(0, k, max(1, chunk // len(xb))):
            n = min(k - s, max(1, chunk // len(xb)))
            z = q.sample((n,))
            parts.append(model.log_joint(xb, z) - q.log_prob(z))
        log_w = torch.cat(parts)
        out.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.cat(out)
