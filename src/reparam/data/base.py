"""The container every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Dataset:
    """Splits of a dataset; rows are flattened images with values in [0, 1].

    ``train``/``test`` (and optional ``valid``) are ``float32`` tensors of shape (N, D);
    labels are ``int64`` of shape (N,) or ``None``; ``image_shape`` is (C, H, W).
    ``binary`` says whether values are exactly 0/1 (Bernoulli likelihood is exact).
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    image_shape: tuple[int, int, int]
    valid: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    valid_labels: torch.Tensor | None = None
    binary: bool = True

    @property
    def dim(self) -> int:
        return self.train.shape[1]
