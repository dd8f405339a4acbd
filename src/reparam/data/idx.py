"""IDX files (MNIST, Fashion-MNIST, KMNIST), parsed with numpy, validated strictly.

Layout: magic ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then
``prod(sizes)`` big-endian items. Any mismatch (magic, header, byte count) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .base import Dataset
from .binarize import binarize_splits
from .download import DataFileError, ensure_files, read_bytes

_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Array of an IDX file's bytes (native byte order); :class:`DataFileError` if malformed."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
        raise DataFileError(f"{source}: not an IDX file (magic bytes {data[:4].hex() or 'none'})")
    ndim, dtype = data[3], np.dtype(_DTYPES[data[2]])
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{source}: IDX header truncated ({len(data)} < {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataFileError(
            f"{source}: IDX shape {shape} of {dtype} needs {expected} bytes, file has "
            f"{len(data)} ({'truncated' if len(data) < expected else 'trailing bytes'})"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file, gzipped or not."""
    return parse_idx(read_bytes(Path(path)), str(path))


def read_images_labels(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W) and int64 labels (N,) in 0..9, checked against each other."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataFileError(f"{images}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataFileError(f"{labels}: expected {len(x)} labels (one per image), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataFileError(f"{labels}: labels must lie in 0..9, got {y.min()}..{y.max()}")
    return x, y.astype(np.int64)


@dataclass(frozen=True)
class IdxSpec:
    title: str
    subdir: str
    homes: tuple[str, ...]
    md5: dict[str, str]  # of the published .gz files
    classes: tuple[str, ...]
    sizes: tuple[int, int] = (60_000, 10_000)  # train, test
    image: tuple[int, int] = (28, 28)


_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_DATASETS = {
    "mnist": IdxSpec(
        "MNIST", "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        tuple("0123456789"),
    ),
    "fashion-mnist": IdxSpec(
        "Fashion-MNIST", "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"),
    ),
    "kmnist": IdxSpec(
        "Kuzushiji-MNIST", "kmnist",
        ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
         "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        {"train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
         "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
         "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
         "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134"},
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}  # fmt: skip


def load_idx_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    binarize: str | bool | None = None,
    seed: int = 0,
    valid_size: int = 0,
    mirror: str | None = None,
) -> Dataset:
    """MNIST-style dataset ``name`` (60k train / 10k test, 28x28 grayscale / 255).

    ``valid_size`` moves the *last* examples of train into ``valid`` (10000 gives the
    50k/10k split of binarized MNIST). ``binarize``: "none" | "threshold" | "dynamic".
    """
    spec = IDX_DATASETS[name]
    names = [f for pair in _FILES.values() for f in pair]
    paths = ensure_files(names, spec.subdir, spec.homes, spec.md5, None, data_dir, download, mirror)
    (xtr, ytr), (xte, yte) = (read_images_labels(*(paths[f] for f in _FILES[s])) for s in _FILES)
    for x, n, split in ((xtr, spec.sizes[0], "train"), (xte, spec.sizes[1], "test")):
        if x.shape != (n, *spec.image):
            raise DataFileError(f"{paths[_FILES[split][0]]}: {spec.title} {split} images must "
                                f"have shape {(n, *spec.image)}, got {x.shape}")
    if not 0 <= valid_size < len(xtr):
        raise ValueError(f"valid_size must lie in [0, {len(xtr)}), got {valid_size}")
    cut = len(xtr) - valid_size

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    b = binarize_splits(t(xtr[:cut]), t(xtr[cut:]) if valid_size else None, t(xte), binarize, seed)
    return Dataset(
        name=name, train=b.train, valid=b.valid, test=b.test, image_shape=(1, *xtr.shape[1:]),
        train_labels=torch.from_numpy(ytr[:cut]), test_labels=torch.from_numpy(yte),
        valid_labels=torch.from_numpy(ytr[cut:]) if valid_size else None,
        binary=b.binary, binarization=b.mode, train_probs=b.train_probs, classes=spec.classes,
    )


LOADERS = {name: partial(load_idx_dataset, name) for name in IDX_DATASETS}
