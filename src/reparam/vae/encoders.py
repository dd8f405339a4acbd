"""Encoders: networks that return the approximate posterior q(z|x)."""

from __future__ import annotations

import torch
from torch import nn

from ..distributions import Normal


class GaussianEncoder(nn.Module):
    """``q(z|x) = N(mu(x), diag(exp(logvar(x))))``; ``net`` outputs ``2 L`` numbers per row."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Normal:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return Normal(mu, logvar=logvar, validate_args=False)
