"""The VAE: an encoder that returns q(z|x), a decoder that returns p(x|z), and a prior p(z).

Models return distributions; losses live in :mod:`reparam.vae.objectives`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent
from torch.distributions import Normal as TorchNormal

from ..distributions import Normal
from .networks import mlp


class VAE(nn.Module):
    """MLP VAE with Gaussian posterior ``q(z|x) = N(mu(x), exp(logvar(x)))``, standard normal
    prior and Bernoulli likelihood ``p(x|z) = Bernoulli(sigmoid(decoder(z)))``.

    ``z = mu + exp(logvar / 2) * eps`` is drawn by :class:`reparam.distributions.Normal`.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 8,
        hidden: Sequence[int] = (256, 256),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("latent_dim", latent_dim)):
            if int(value) < 1:
                raise ValueError(f"VAE: {name} must be a positive integer, got {value}")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"VAE: hidden sizes must be positive integers, got {list(hidden)}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        self.encoder = mlp(data_dim, hidden, 2 * latent_dim, activation)
        self.decoder = mlp(latent_dim, tuple(reversed(hidden)), data_dim, activation)

    def encode(self, x: torch.Tensor) -> Normal:
        """``q(z|x)``: batch shape (B, L)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return Normal(mu, logvar=logvar, validate_args=False)

    def decode(self, z: torch.Tensor) -> Independent:
        """``p(x|z)``: independent Bernoullis over the D pixels; ``z`` may have sample dims."""
        return Independent(Bernoulli(logits=self.decoder(z), validate_args=False), 1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` summed over pixels, shape ``z.shape[:-1]`` (fast path of ``decode``)."""
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)

    def prior(self) -> Independent:
        """``p(z) = N(0, I)`` over the L latent dimensions."""
        p = next(self.parameters())
        zeros = torch.zeros(self.latent_dim, dtype=p.dtype, device=p.device)
        return Independent(TorchNormal(zeros, torch.ones_like(zeros)), 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel means ``sigmoid(decoder(z))`` for ``z ~ p(z)``: shape (n, D)."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, dtype=p.dtype, device=p.device, generator=generator)
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel means of ``p(x | z = E_q[z])``."""
        return torch.sigmoid(self.decoder(self.encode(x).mean))
