"""Likelihoods p(x|z): map decoder outputs to a distribution over the pixels.

Each likelihood has ``log_prob(params, x)`` (summed over the D pixels, the fast path used
in training), ``mean(params)`` (for pictures) and ``__call__(params)`` -> a
``torch.distributions`` object with event shape (D,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent


class Likelihood(nn.Module):
    def forward(self, params: torch.Tensor):
        raise NotImplementedError

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """``p(x|z) = prod_d sigmoid(l_d)^x_d (1 - sigmoid(l_d))^(1 - x_d)`` from logits ``l``."""

    def forward(self, logits: torch.Tensor) -> Independent:
        return Independent(Bernoulli(logits=logits, validate_args=False), 1)

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)
