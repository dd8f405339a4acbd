"""Encoders: networks that return the approximate posterior q(z|x).

Every posterior has ``.mean`` and either ``rsample(sample_shape, noise)`` + ``log_prob`` (a
``torch.distributions`` object) or ``rsample_with_log_prob(sample_shape, noise)`` (flows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MultivariateNormal

from ..distributions import Normal, VonMisesFisher
from ..noise import NoiseSource
from ..noise import resolve as resolve_noise
from .flows import FlowPosterior


class GaussianEncoder(nn.Module):
    """``q(z|x) = N(mu(x), diag(exp(logvar(x))))``; ``net`` outputs ``2 L`` numbers per row."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Normal:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return Normal(mu, logvar=logvar, validate_args=False)


class FullCovNormal(MultivariateNormal):
    """``torch``'s ``MultivariateNormal`` drawing ``z = loc + L eps`` from a noise source."""

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = resolve_noise(noise).normal(shape, self.loc.dtype, self.loc.device)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise)


class FullCovEncoder(nn.Module):
    r"""``q(z|x) = N(mu(x), L(x) L(x)^T)`` with ``L`` lower triangular:
    ``net`` outputs ``L + L + L (L - 1) / 2`` numbers: ``mu``, the raw diagonal ``d`` (the
    diagonal is ``softplus(d) + min_scale``) and the strictly lower entries.
    """

    def __init__(self, net: nn.Module, latent_dim: int, min_scale: float = 1e-4) -> None:
        super().__init__()
        self.net, self.latent_dim, self.min_scale = net, int(latent_dim), float(min_scale)
        self.register_buffer("_rows", torch.tril_indices(latent_dim, latent_dim, -1),
                             persistent=False)

    @staticmethod
    def out_dim(latent_dim: int) -> int:
        return 2 * latent_dim + latent_dim * (latent_dim - 1) // 2

    def forward(self, x: torch.Tensor) -> FullCovNormal:
        L = self.latent_dim
        mu, d, off = self.net(x).split([L, L, L * (L - 1) // 2], dim=-1)
        tril = mu.new_zeros(*mu.shape, L)
        tril[..., self._rows[0], self._rows[1]] = off
        tril = tril + torch.diag_embed(F.softplus(d) + self.min_scale)
        return FullCovNormal(mu, scale_tril=tril, validate_args=False)


class FlowEncoder(nn.Module):
    """``net`` outputs ``2 L + C`` numbers: ``mu``, ``logvar`` of the base Gaussian and a
    context ``h`` (C numbers, after ``tanh``) that parameterizes the flow ``layers``."""

    def __init__(self, net: nn.Module, latent_dim: int, context_dim: int,
                 layers: nn.ModuleList) -> None:
        super().__init__()
        self.net, self.layers = net, layers
        self.latent_dim, self.context_dim = int(latent_dim), int(context_dim)

    def forward(self, x: torch.Tensor) -> FlowPosterior:
        L = self.latent_dim
        mu, logvar, h = self.net(x).split([L, L, self.context_dim], dim=-1)
        return FlowPosterior(Normal(mu, logvar=logvar, validate_args=False), self.layers,
                             torch.tanh(h))


class VMFEncoder(nn.Module):
    r"""Hyperspherical posterior (Davidson et al. 2018): ``q(z|x) = vMF(mu(x), kappa(x))`` on
    the unit sphere in ``R^L``; ``net`` outputs ``L + 1`` numbers, ``mu = h / |h|`` and
    ``kappa = softplus(k) + 1``. Pair it with the uniform prior on the sphere (or a VampPrior)."""

    def __init__(self, net: nn.Module, latent_dim: int) -> None:
        super().__init__()
        if int(latent_dim) < 2:
            raise ValueError(f"VMFEncoder: 'latent_dim' must be >= 2, got {latent_dim}")
        self.net, self.latent_dim = net, int(latent_dim)

    def forward(self, x: torch.Tensor) -> VonMisesFisher:
        h, k = self.net(x).split([self.latent_dim, 1], dim=-1)
        return VonMisesFisher(F.normalize(h, dim=-1), F.softplus(k.squeeze(-1)) + 1,
                              validate_args=False)
