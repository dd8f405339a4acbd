"""Closed-form KL divergences, registered with ``torch.distributions.kl_divergence``."""

from __future__ import annotations

import torch
import torch.distributions as td
from torch.distributions.kl import register_kl

from .normal import Normal


def kl_normal_standard(loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(loc, exp(logvar)) || N(0, 1)) = (loc^2 + expm1(logvar) - logvar) / 2``.

    ``expm1`` keeps the result exact near ``logvar = 0`` (no ``exp`` then ``log``), and the
    formula is stable for ``logvar`` in [-30, 30] and beyond.
    """
    return 0.5 * (loc.pow(2) + torch.expm1(logvar) - logvar)


def kl_normal_normal(loc_p: torch.Tensor, logvar_p: torch.Tensor, loc_q: torch.Tensor,
                     logvar_q: torch.Tensor) -> torch.Tensor:
    """``KL(N_p || N_q) = (expm1(d) - d + (loc_p - loc_q)^2 exp(-logvar_q)) / 2``,
    ``d = logvar_p - logvar_q``."""
    d = logvar_p - logvar_q
    return 0.5 * (torch.expm1(d) - d + (loc_p - loc_q).pow(2) * torch.exp(-logvar_q))


def _logvar(dist) -> torch.Tensor:
    return dist.logvar if isinstance(dist, Normal) else 2.0 * torch.log(dist.scale)


@register_kl(Normal, Normal)
@register_kl(Normal, td.Normal)
@register_kl(td.Normal, Normal)
def _kl_normal(p, q) -> torch.Tensor:
    return kl_normal_normal(p.loc, _logvar(p), q.loc, _logvar(q))
