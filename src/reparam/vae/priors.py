"""Priors p(z): modules (so learnable priors train with the model) returning a distribution."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent
from torch.distributions import Normal as TorchNormal


class StandardNormalPrior(nn.Module):
    """``p(z) = N(0, I_L)``."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    def forward(self) -> Independent:
        zeros = self._zero.expand(self.latent_dim)
        return Independent(TorchNormal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, dtype=self._zero.dtype, device=self._zero.device,
                           generator=generator)
