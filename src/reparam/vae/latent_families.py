"""Non-Gaussian latent variables trained end to end by implicit reparameterization:
a Dirichlet latent on the simplex and a Gamma latent on the positive orthant.

``z ~ q(z|x)`` is drawn with ``rsample``; ``dz/dalpha = -(dF/dalpha)(z) / p(z)`` carries the
gradient back to the encoder (see :mod:`reparam.distributions.implicit`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import Dirichlet, Gamma
from ..noise import MonteCarlo, NoiseSource

MIN_CONCENTRATION = 1e-3


def _source(generator: torch.Generator | None, noise: NoiseSource | None) -> NoiseSource:
    return noise if noise is not None else MonteCarlo(generator)


class DirichletEncoder(nn.Module):
    """``q(z|x) = Dir(softplus(net(x)) + 1e-3)``: event shape (K,), z on the simplex."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Dirichlet:
        return Dirichlet(F.softplus(self.net(x)) + MIN_CONCENTRATION, validate_args=False)


class GammaEncoder(nn.Module):
    """``q(z|x) = prod_k Gamma(z_k; a_k(x), b_k(x))``; ``net`` outputs ``2 K`` numbers."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Gamma:
        a, b = (F.softplus(self.net(x)) + MIN_CONCENTRATION).chunk(2, dim=-1)
        return Gamma(a, b, validate_args=False)


class DirichletPrior(nn.Module):
    """``p(z) = Dir(alpha0 * 1_K)``; ``alpha0 < 1`` favours sparse mixtures (topic-model style)."""

    def __init__(self, latent_dim: int, alpha0: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.register_buffer("concentration", torch.full((self.latent_dim,), float(alpha0)),
                             persistent=False)

    def forward(self) -> Dirichlet:
        return Dirichlet(self.concentration, validate_args=False)

    def sample(self, n: int, generator: torch.Generator | None = None,
               noise: NoiseSource | None = None) -> torch.Tensor:
        """``n`` draws ``(n, K)`` from ``noise`` (default ``MonteCarlo(generator)``)."""
        return self().sample((n,), noise=_source(generator, noise))


class GammaPrior(nn.Module):
    """``p(z) = prod_k Gamma(z_k; a0, b0)`` (event shape (K,) through ``Independent``)."""

    def __init__(self, latent_dim: int, concentration: float = 1.0, rate: float = 1.0) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.register_buffer("params", torch.tensor([concentration, rate]), persistent=False)

    def forward(self) -> torch.distributions.Independent:
        a = self.params[0].expand(self.latent_dim)
        b = self.params[1].expand(self.latent_dim)
        return torch.distributions.Independent(Gamma(a, b, validate_args=False), 1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               noise: NoiseSource | None = None) -> torch.Tensor:
        """``n`` draws ``(n, K)`` from ``noise`` (default ``MonteCarlo(generator)``)."""
        return self().base_dist.sample((n,), noise=_source(generator, noise))
