"""scikit-learn's 8x8 handwritten digits (1797 images, shipped inside scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Dataset
from .binarize import binarize_splits


def load_digits(
    seed: int = 0, test_fraction: float = 1 / 6, binarize: bool | str | None = True
) -> Dataset:
    """Digits scaled to [0, 1] (``pixel / 16``), binarized at 0.5 unless ``binarize=False``.

    ``binarize`` also takes "none", "threshold" (same as ``True``) or "dynamic".
    A seeded permutation splits 1797 images into train (~1498) and test (~299).
    """
    from sklearn.datasets import load_digits as _sk_load

    bunch = _sk_load()
    x = torch.from_numpy(bunch.data.astype(np.float32) / 16.0)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    n_test = int(round(len(x) * test_fraction))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    b = binarize_splits(x[train_idx], None, x[test_idx], binarize, seed)
    return Dataset(
        name="digits",
        train=b.train,
        test=b.test,
        train_labels=y[train_idx],
        test_labels=y[test_idx],
        image_shape=(1, 8, 8),
        binary=b.binary,
        binarization=b.mode,
        train_probs=b.train_probs,
        classes=tuple("0123456789"),
    )
