"""A folder of images (``load_dataset("folder:<path>")``), read with Pillow.

Layouts: ``path/{train,test[,valid]}/...`` gives the splits; otherwise every image under
``path`` is split by a seeded permutation. Inside a split (or ``path``), images directly in
it are unlabelled; images in sub-folders are labelled by folder name (sorted, the same
mapping across splits). All images must share one size (or pass ``size=(H, W)`` to resize).
Colour is auto-detected: grayscale ("L") unless some image has colour ("RGB");
``color=True/False`` forces it. Pixels are divided by 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Dataset
from .download import DataFileError
from .user import build, split

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _images(folder: Path) -> list[tuple[Path, str | None]]:
    """Image files under ``folder``: (path, class folder name or None), sorted."""
    found = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."):
            rel = p.relative_to(folder).parts
            found.append((p, rel[0] if len(rel) > 1 else None))
    return found


def _read(files: list[Path], color: bool | None, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    opened = []
    try:
        for p in files:
            try:
                im = Image.open(p)
                im.load()
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise DataFileError(f"{p}: not a readable image ({err})") from None
            opened.append(im)
        if color is None:
            color = any(im.mode not in _GRAY_MODES for im in opened)
        mode, arrays = ("RGB" if color else "L"), []
        for p, im in zip(files, opened, strict=True):
            im = im.convert(mode)
            if size is not None:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
            if arrays and a.shape != arrays[0].shape:
                raise ValueError(f"{p}: image size {a.shape[:2]} differs from {files[0]} "
                                 f"{arrays[0].shape[:2]}; pass size=(H, W) to resize")
            arrays.append(a)
    finally:
        for im in opened:
            im.close()
    x = np.stack(arrays)
    return x if x.ndim == 4 else x[..., None]  # (N, H, W, C)


def load_image_folder(
    path: str | Path,
    binarize: str | bool | None = None,
    seed: int = 0,
    test_fraction: float = 1 / 6,
    valid_fraction: float = 0.0,
    color: bool | None = None,
    size: tuple[int, int] | None = None,
) -> Dataset:
    """Images under ``path`` as a :class:`Dataset` (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise ValueError(f"{root}: has train/ but no test/ folder")
        found = {s: _images(root / s) for s in ("train", "valid", "test") if (root / s).is_dir()}
    else:
        everything = _images(root)
        idx = split(len(everything), test_fraction, valid_fraction, seed)
        found = {s: [everything[i] for i in sorted(v)] for s, v in idx.items() if len(v)}
    for s, items in found.items():
        if not items:
            raise ValueError(f"{root}: no images ({', '.join(sorted(SUFFIXES))}) in split {s!r}")
    all_items = [it for items in found.values() for it in items]
    names = sorted({c for _, c in all_items if c is not None})
    if names and any(c is None for _, c in all_items):
        raise ValueError(f"{root}: mix of images in class folders and loose images")
    codes = {c: i for i, c in enumerate(names)}
    x = _read([p for p, _ in all_items], color, size)
    parts, labels, start = {}, {}, 0
    for s, items in found.items():
        parts[s] = x[start:start + len(items)]
        if names:
            labels[s] = np.array([codes[c] for _, c in items], dtype=np.int64)
        start += len(items)
    return build(f"folder:{root}", parts, labels, binarize, seed, tuple(names) or None, 255.0)
