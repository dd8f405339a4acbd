"""The VAE: an encoder that returns q(z|x), a decoder that returns p(x|z), and a prior p(z).

Models return distributions; losses live in :mod:`reparam.vae.objectives`. The three parts
are separate modules so that each can be swapped (see ``encoders``, ``likelihoods``,
``priors``):

    encoder: x -> q(z|x)        (a distribution with ``rsample`` and ``log_prob``)
    decoder: z -> p(x|z)        (network + likelihood)
    prior:   () -> p(z)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import TrainConfig
from .encoders import GaussianEncoder
from .likelihoods import BernoulliLikelihood, Likelihood
from .networks import mlp
from .priors import StandardNormalPrior

_DEFAULTS = TrainConfig.defaults()


class Decoder(nn.Module):
    """``p(x|z) = likelihood(net(z))``."""

    def __init__(self, net: nn.Module, likelihood: Likelihood) -> None:
        super().__init__()
        self.net, self.likelihood = net, likelihood

    def forward(self, z: torch.Tensor) -> torch.distributions.Distribution:
        return self.likelihood(self.net(z))

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` summed over pixels; shape ``z.shape[:-1]``."""
        return self.likelihood.log_prob(self.net(z), x)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        return self.likelihood.mean(self.net(z))


class VAE(nn.Module):
    """A VAE from its parts; ``VAE(data_dim, latent_dim, hidden)`` builds the MLP default:
    Gaussian posterior ``q(z|x) = N(mu(x), exp(logvar(x)))`` sampled as
    ``z = mu + exp(logvar / 2) * eps``, standard normal prior, Bernoulli likelihood.
    """

    def __init__(
        self,
        data_dim: int | None = None,
        latent_dim: int = _DEFAULTS["latent_dim"],
        hidden: Sequence[int] = tuple(_DEFAULTS["hidden"]),
        activation: str = _DEFAULTS["activation"],
        *,
        encoder: nn.Module | None = None,
        decoder: Decoder | None = None,
        prior: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if encoder is None or decoder is None:
            if data_dim is None:
                raise ValueError("VAE: give data_dim, or both encoder= and decoder=")
            for name, value in (("data_dim", data_dim), ("latent_dim", latent_dim)):
                if int(value) < 1:
                    raise ValueError(f"VAE: {name} must be a positive integer, got {value}")
            if any(int(h) < 1 for h in hidden):
                raise ValueError(f"VAE: hidden sizes must be positive integers, got {list(hidden)}")
        if encoder is None:
            encoder = GaussianEncoder(mlp(data_dim, hidden, 2 * latent_dim, activation))
        if decoder is None:
            decoder = Decoder(mlp(latent_dim, tuple(reversed(hidden)), data_dim, activation),
                              BernoulliLikelihood())
        self.encoder, self.decoder = encoder, decoder
        self.prior_module = prior if prior is not None else StandardNormalPrior(latent_dim)
        self.latent_dim = self.prior_module.latent_dim

    def encode(self, x: torch.Tensor) -> torch.distributions.Distribution:
        """``q(z|x)``: batch shape (B, L) (or (B,) with event (L,) for joint posteriors)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.distributions.Distribution:
        """``p(x|z)``: a distribution over x with event shape (D,); ``z`` may have sample dims."""
        return self.decoder(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` summed over pixels, shape ``z.shape[:-1]`` (fast path of ``decode``)."""
        return self.decoder.log_prob(x, z)

    def prior(self) -> torch.distributions.Distribution:
        """``p(z)`` with event shape (L,)."""
        return self.prior_module()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoded means ``E[x|z]`` for ``z ~ p(z)``: shape (n, D)."""
        return self.decoder.mean(self.prior_module.sample(n, generator))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded means at the posterior mean ``E_q[z]``."""
        return self.decoder.mean(self.encode(x).mean)
