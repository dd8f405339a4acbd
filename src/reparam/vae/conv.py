"""Convolutional encoder and decoder for images of shape (C, H, W), H and W divisible by 4
(28x28 grayscale, 32x32 colour). Both take and return flat rows, like the MLPs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .networks import make_activation


class ConvEncoder(nn.Module):
    """``x (.., C*H*W) -> conv(4, stride 2) x2 -> flatten -> Linear(hidden) -> Linear(out_dim)``."""

    def __init__(self, image_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (32, 64),
                 hidden: int = 256, activation: str = "relu") -> None:
        super().__init__()
        C, H, W = image_shape
        if H % 4 or W % 4:
            raise ValueError(f"ConvEncoder: image height and width must be divisible by 4, "
                             f"got image_shape {tuple(image_shape)}")
        c1, c2 = channels
        self.image_shape = (C, H, W)
        self.net = nn.Sequential(
            nn.Conv2d(C, c1, 4, 2, 1), make_activation(activation),
            nn.Conv2d(c1, c2, 4, 2, 1), make_activation(activation),
            nn.Flatten(), nn.Linear(c2 * (H // 4) * (W // 4), hidden), make_activation(activation),
            nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        out = self.net(x.reshape(-1, *self.image_shape))
        return out.reshape(*lead, out.shape[-1])


class ConvDecoder(nn.Module):
    """``z (.., L) -> Linear(hidden) -> Linear(c2 * H/4 * W/4) -> deconv x2 -> (.., k*C*H*W)``
    with ``k = params_per_dim`` output maps per image channel (channel blocks first)."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], params_per_dim: int = 1,
                 channels: Sequence[int] = (32, 64), hidden: int = 256,
                 activation: str = "relu") -> None:
        super().__init__()
        C, H, W = image_shape
        if H % 4 or W % 4:
            raise ValueError(f"ConvDecoder: image height and width must be divisible by 4, "
                             f"got image_shape {tuple(image_shape)}")
        c1, c2 = channels
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), make_activation(activation),
            nn.Linear(hidden, c2 * (H // 4) * (W // 4)), make_activation(activation),
            nn.Unflatten(1, (c2, H // 4, W // 4)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), make_activation(activation),
            nn.ConvTranspose2d(c1, params_per_dim * C, 4, 2, 1), nn.Flatten())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, out.shape[-1])
