"""The container every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Dataset:
    """Splits of a dataset; rows are flattened images with values in [0, 1].

    ``train``/``test`` (and optional ``valid``) are ``float32`` tensors of shape (N, D);
    labels are ``int64`` of shape (N,) or ``None``; ``image_shape`` is (C, H, W) and a row
    is the image flattened in (C, H, W) order. ``binary`` says whether values are exactly
    0/1 (Bernoulli likelihood is exact). ``binarization`` says how they became 0/1:
    ``"none"`` (grayscale kept), ``"threshold"`` (x >= 0.5), ``"static"`` (fixed files,
    e.g. Larochelle's binarized MNIST) or ``"dynamic"`` (Bernoulli draws from grayscale).

    For ``"dynamic"``, ``train`` holds one seeded draw and ``train_probs`` the grayscale
    probabilities: call :meth:`resample_train` once per epoch (or ``torch.bernoulli`` on a
    batch of ``train_probs``) for fresh draws; ``valid``/``test`` are one fixed seeded draw.
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
    binarization: str = "none"
    train_probs: torch.Tensor | None = None
    classes: tuple[str, ...] | None = None

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    def resample_train(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh draw ``x ~ Bernoulli(train_probs)`` when dynamic, else ``train`` itself."""
        if self.train_probs is None:
            return self.train
        return torch.bernoulli(self.train_probs, generator=generator)
