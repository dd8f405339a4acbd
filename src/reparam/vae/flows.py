"""Normalizing flows for richer posteriors q(z|x): planar flows and inverse autoregressive flows.

A flow layer maps ``(z, h) -> (z', log|det dz'/dz|)``: ``z`` of shape (S, B, L), the
context ``h`` (B, C) from the encoder (its parameters are amortized: computed from ``h``).
:class:`FlowPosterior` pushes a diagonal Gaussian through a stack of layers and tracks
``log q(z_K) = log q_0(z_0) - sum_t log|det J_t|``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import Normal
from ..noise import NoiseSource


class PlanarFlow(nn.Module):
    r"""Planar flow (Rezende & Mohamed 2015): ``f(z) = z + u' tanh(w^T z + b)``, with
    ``u' = u + (m(w^T u) - w^T u) w / |w|^2``, ``m(a) = -1 + softplus(a)``, so ``w^T u' > -1``
    and ``f`` is invertible. ``log|det| = log(1 + (1 - tanh^2(w^T z + b)) w^T u')``.
    ``u, w, b`` come from the context through a linear layer.
    """

    def __init__(self, latent_dim: int, context_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.params = nn.Linear(context_dim, 2 * latent_dim + 1)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.latent_dim
        u, w, b = self.params(h).split([L, L, 1], dim=-1)          # (B, L), (B, L), (B, 1)
        wu = (w * u).sum(-1, keepdim=True)
        u = u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
        a = torch.tanh((z * w).sum(-1, keepdim=True) + b)           # (S, B, 1)
        z = z + u * a
        logdet = torch.log1p((1 - a.pow(2)).squeeze(-1) * (w * u).sum(-1))
        return z, logdet


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 connectivity mask ``M`` (MADE)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class IAFStep(nn.Module):
    r"""One inverse autoregressive flow step (Kingma et al. 2016), numerically stable form:

    ``[m, s] = MADE(z, h)``, ``sigma = sigmoid(s)``, ``z' = sigma * z + (1 - sigma) * m``,
    ``log|det| = sum_i log sigma_i``. ``m_i, s_i`` depend on ``z_{<i}`` only (masks with
    degrees 1..L), and on the context ``h``; ``s`` starts near ``+forget_bias`` (sigma ~ 1).
    ``reverse`` runs the step on ``z`` in reversed order (stacked steps alternate orderings).
    """

    def __init__(self, latent_dim: int, context_dim: int, hidden: int = 64,
                 forget_bias: float = 1.0, reverse: bool = False) -> None:
        super().__init__()
        L, self.reverse = latent_dim, reverse
        d_in = torch.arange(1, L + 1)
        d_hid = torch.arange(hidden) % max(1, L - 1) + 1
        self.inp = MaskedLinear(L, hidden, (d_hid[:, None] >= d_in[None, :]))
        self.ctx = nn.Linear(context_dim, hidden)
        self.hid = MaskedLinear(hidden, hidden, (d_hid[:, None] >= d_hid[None, :]))
        out_mask = (d_in[:, None] > d_hid[None, :])
        self.out = MaskedLinear(hidden, 2 * L, torch.cat([out_mask, out_mask]))
        with torch.no_grad():
            self.out.bias[L:].fill_(forget_bias)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reverse:
            z = z.flip(-1)
        a = F.elu(self.inp(z) + self.ctx(h))
        a = F.elu(self.hid(a))
        m, s = self.out(a).chunk(2, dim=-1)
        log_sigma = F.logsigmoid(s)
        sigma = log_sigma.exp()
        z = sigma * z + (1 - sigma) * m
        return (z.flip(-1) if self.reverse else z), log_sigma.sum(-1)


class FlowPosterior:
    r"""``z_0 ~ N(mu, diag(exp(logvar)))``, ``z_K = f_K(... f_1(z_0))``;
    ``log q(z_K) = log q_0(z_0) - sum_t log|det df_t/dz|``.

    ``rsample_with_log_prob(sample_shape, noise)`` returns ``(z_K, log q(z_K))``; ``mean`` is
    the flow applied to the base mean (a point for reconstructions, not ``E[z_K]``).
    ``log q`` at a given ``z`` needs the flow's inverse, which planar flows lack, so STL and
    DReG (which evaluate ``log q`` at detached parameters) are not available here.
    """

    has_rsample = True

    def __init__(self, base: Normal, layers: Sequence[nn.Module], context: torch.Tensor) -> None:
        self.base, self.layers, self.context = base, list(layers), context

    def _push(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, logdet = layer(z, self.context)
            total = total + logdet
        return z, total

    def rsample_with_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                              noise: NoiseSource | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z0 = self.base.rsample(sample_shape, noise=noise)
        log_q0 = self.base.log_prob(z0).sum(-1)
        z, logdet = self._push(z0)
        return z, log_q0 - logdet

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        return self.rsample_with_log_prob(sample_shape, noise)[0]

    @property
    def mean(self) -> torch.Tensor:
        return self._push(self.base.mean)[0]


def planar_layers(latent_dim: int, context_dim: int, length: int, **_: object) -> nn.ModuleList:
    return nn.ModuleList(PlanarFlow(latent_dim, context_dim) for _ in range(length))


def iaf_layers(latent_dim: int, context_dim: int, length: int, hidden: int = 64) -> nn.ModuleList:
    return nn.ModuleList(IAFStep(latent_dim, context_dim, hidden, reverse=t % 2 == 1)
                         for t in range(length))


FLOWS = {"planar": planar_layers, "iaf": iaf_layers}
