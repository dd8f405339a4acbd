"""scikit-learn's 8x8 handwritten digits (1797 images, shipped inside scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Dataset


def load_digits(seed: int = 0, test_fraction: float = 1 / 6, binarize: bool = True) -> Dataset:
    """Digits scaled to [0, 1] (``pixel / 16``), binarized at 0.5 unless ``binarize=False``.

    A seeded permutation splits 1797 images into train (~1498) and test (~299).
    """
    from sklearn.datasets import load_digits as _sk_load

    bunch = _sk_load()
    x = bunch.data.astype(np.float32) / 16.0
    if binarize:
        x = (x >= 0.5).astype(np.float32)
    y = bunch.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    return Dataset(
        name="digits",
        train=torch.from_numpy(x[train_idx]),
        test=torch.from_numpy(x[test_idx]),
        train_labels=torch.from_numpy(y[train_idx]),
        test_labels=torch.from_numpy(y[test_idx]),
        image_shape=(1, 8, 8),
        binary=binarize,
    )
