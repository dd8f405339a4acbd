"""A user's own data: ``.npy`` / ``.npz`` arrays (``load_dataset("npy:<path>")``).

Values must be in [0, 1], or in 0..255 (integers; divided by 255), one scale for all
splits. Integer arrays whose maximum is at most 1 are taken as 0/1. Array shapes per
example: (D,) (a square D is read as a 1 x s x s image), (H, W), (C, H, W) or (H, W, C)
with C in {1, 3}; rows are flattened in (C, H, W) order. ``.npz`` keys: ``train``,
``test`` (optional ``valid``, ``train_labels``, ``test_labels``, ``valid_labels``); or a
single array / ``x`` (with optional ``y`` labels) split by a seeded permutation.
Nothing is unpickled.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from .base import Dataset
from .binarize import binarize_splits
from .download import DataFileError

_LABEL_KEYS = {"train": "train_labels", "valid": "valid_labels", "test": "test_labels"}


def to_unit(x: np.ndarray, source: str, scale: float) -> np.ndarray:
    """float32 ``x / scale`` in [0, 1]; ``scale`` 255 needs integers in 0..255."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{source}: expected a numeric array, got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"{source}: the array is empty")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all() or xf.min() < 0:
        raise ValueError(f"{source}: values must be finite and >= 0 (in [0, 1] or 0..255)")
    if xf.max() > scale or (scale == 255 and (xf != np.round(xf)).any()):
        raise ValueError(f"{source}: values above 1 must be integers in 0..255, "
                         f"got range [{xf.min():g}, {xf.max():g}]")
    return (xf / scale).astype(np.float32)


def image_shape(example_shape: tuple[int, ...], source: str) -> tuple[tuple[int, int, int], bool]:
    """(C, H, W) of one example and whether it is stored channels-last (H, W, C)."""
    s = tuple(example_shape)
    if len(s) == 1:
        side = math.isqrt(s[0])
        return ((1, side, side) if side * side == s[0] else (1, 1, s[0])), False
    if len(s) == 2:
        return (1, *s), False
    if len(s) == 3 and s[0] in (1, 3):
        return s, False  # type: ignore[return-value]
    if len(s) == 3 and s[2] in (1, 3):
        return (s[2], s[0], s[1]), True
    raise ValueError(f"{source}: cannot read examples of shape {s} as images; expected "
                     "(D,), (H, W), (C, H, W) or (H, W, C) with C in {1, 3}")


def split(n: int, test_fraction: float, valid_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded permutation of ``range(n)`` cut into test / valid / train index arrays."""
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1 - test_fraction):
        raise ValueError("test_fraction must be in (0, 1) and valid_fraction in "
                         f"[0, 1 - test_fraction), got {test_fraction}, {valid_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * test_fraction), round(n * valid_fraction)
    if n_test < 1 or n - n_test - n_valid < 1:
        raise ValueError(f"{n} examples are too few for test_fraction={test_fraction}")
    return {"test": perm[:n_test], "valid": perm[n_test:n_test + n_valid],
            "train": perm[n_test + n_valid:]}


def build(
    name: str,
    parts: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    binarize: str | bool | None,
    seed: int,
    classes: tuple[str, ...] | None = None,
    scale: float | None = None,
) -> Dataset:
    """A :class:`Dataset` from per-split example arrays (N, ...) and optional labels.

    Pixels are divided by ``scale``; ``None`` picks 255 if any split has a value above 1,
    else 1 (one choice for all splits, so they are never scaled differently).
    """
    for k, v in parts.items():  # before any arithmetic (a string array has no max)
        if v.dtype.kind not in "biuf":
            raise DataFileError(f"{name} [{k}]: expected a numeric array, got dtype {v.dtype}")
    shapes = {k: v.shape[1:] for k, v in parts.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{name}: splits have different example shapes {shapes}")
    shape, last = image_shape(next(iter(shapes.values())), name)
    if scale is None:
        scale = 255.0 if any(v.size and v.max() > 1 for v in parts.values()) else 1.0
    x = {}
    for k, v in parts.items():
        v = np.moveaxis(v, -1, 1) if last else v
        x[k] = torch.from_numpy(to_unit(v, f"{name} [{k}]", scale).reshape(len(v), -1))
    y = {}
    for k, v in labels.items():
        if v.ndim != 1 or len(v) != len(parts[k]) or v.dtype.kind not in "iub":
            raise ValueError(f"{name}: {k} labels must be integers, one per example "
                             f"({len(parts[k])}), got {v.dtype} {v.shape}")
        y[k] = torch.from_numpy(v.astype(np.int64))
    b = binarize_splits(x["train"], x.get("valid"), x["test"], binarize, seed)
    return Dataset(name=name, train=b.train, valid=b.valid, test=b.test, image_shape=shape,
                   train_labels=y.get("train"), valid_labels=y.get("valid"),
                   test_labels=y.get("test"), binary=b.binary, binarization=b.mode,
                   train_probs=b.train_probs, classes=classes)


def load_arrays(
    path: str | Path,
    binarize: str | bool | None = None,
    seed: int = 0,
    test_fraction: float = 1 / 6,
    valid_fraction: float = 0.0,
) -> Dataset:
    """Examples from a ``.npy`` or ``.npz`` file (see the module docstring for the keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no array file at {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"x": loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataFileError(f"{path}: not a readable .npy/.npz file ({err})") from None
    return _from_arrays(f"npy:{path}", arrays, binarize, seed, test_fraction, valid_fraction)


def _from_arrays(name, arrays, binarize, seed, test_fraction, valid_fraction) -> Dataset:
    keys = set(arrays)
    if "train" in keys:
        allowed = {"train", "test", "valid", *_LABEL_KEYS.values()}
        if not keys <= allowed or "test" not in keys:
            raise ValueError(f"{name}: with a 'train' array the keys must include 'test' and lie "
                             f"in {sorted(allowed)}, got {sorted(keys)}")
        parts = {k: arrays[k] for k in ("train", "valid", "test") if k in keys}
        labels = {k: arrays[_LABEL_KEYS[k]] for k in parts if _LABEL_KEYS[k] in keys}
        return build(name, parts, labels, binarize, seed)
    if len(keys) == 1:
        x, y = arrays[next(iter(keys))], None
    elif keys <= {"x", "y"} and "x" in keys:
        x, y = arrays["x"], arrays.get("y")
    else:
        raise ValueError(f"{name}: expected one array, 'x' (+ 'y'), or 'train'/'test' arrays; "
                         f"got keys {sorted(keys)}")
    if x.ndim < 2:
        raise ValueError(f"{name}: expected an array of examples (N, ...), got shape {x.shape}")
    idx = split(len(x), test_fraction, valid_fraction, seed)
    idx = {k: v for k, v in idx.items() if len(v)}
    if y is not None and len(y) != len(x):
        raise ValueError(f"{name}: {len(y)} labels for {len(x)} examples")
    labels = {} if y is None else {k: y[v] for k, v in idx.items()}
    return build(name, {k: x[v] for k, v in idx.items()}, labels, binarize, seed)
