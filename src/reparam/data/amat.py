"""Statically binarized MNIST (Larochelle & Murray 2011) from ``.amat`` text files.

One image per line: 784 white-space separated 0/1 values (row-major 28x28); 50,000
train / 10,000 valid / 10,000 test. Parsed from the raw bytes with numpy (no text
parsing per value). The published files carry no checksum; instead the parsed array is
re-serialised canonically ("0 1 ... 0\\n", one space, one newline per line) and its md5
compared with the reference md5s (those of the re-serialised copies in the project's
shared data), so any copy that differs only in white space is accepted and any
different pixel is rejected.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .base import Dataset
from .download import DataFileError, ensure_files, read_bytes

SUBDIR = "binarized_mnist"
HOMES = ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",)
SPLITS = {"train": 50_000, "valid": 10_000, "test": 10_000}
CANONICAL_MD5 = {
    "train": "db28b1a6ae0fe70cbd3da91acf46e477",
    "valid": "bf37822a04e94123630de6a7dfd9c9ef",
    "test": "14e41ae11040adba6ab8cb291eda0dd8",
}
_WIDTH = 784
_SPACE = np.zeros(256, bool)
_SPACE[[9, 10, 13, 32]] = True
_CLASS = bytes(np.select([np.arange(256) == 48, np.arange(256) == 49, np.arange(256) == 10,
                          _SPACE], [0, 1, 3, 2], 4).astype(np.uint8))


def _fixed_width(a: np.ndarray) -> np.ndarray | None:
    """Fast path when every line has the first line's layout (e.g. "v v ... v\\n").

    On the (N, line length) view, ``v ^ v[0]`` may only differ in bit 0 ('0' = 0x30,
    '1' = 0x31) at the value columns and must be 0 elsewhere: one XOR, one AND, no masks.
    """
    width = int(np.argmax(a == 10)) + 1 if len(a) else 0
    if width <= 1 or a[width - 1] != 10 or len(a) % width:
        return None
    v = a.reshape(-1, width)
    is_value = v[0] - np.uint8(48) <= 1
    cols = np.flatnonzero(is_value)
    if len(cols) != _WIDTH or not _SPACE[v[0, ~is_value]].all() or (np.diff(cols) < 2).any():
        return None
    if ((v ^ v[0]) & np.where(is_value, np.uint8(0xFE), np.uint8(0xFF))).any():
        return None
    step = int(cols[1] - cols[0])
    regular = (np.diff(cols) == step).all()
    return (v[:, cols[0]::step][:, :_WIDTH] if regular else v[:, cols]) - np.uint8(48)


def _general(data: bytes, source: str) -> np.ndarray:
    """Any white space between values: one byte-translation to classes, then masks and
    per-line value counts by ``np.add.reduceat``."""
    c = np.frombuffer(data.translate(_CLASS), np.uint8)  # 0/1 value, 2 blank, 3 \\n, 4 bad
    digit = c <= 1
    for bad, what in ((c == 4, "unexpected byte"),
                      (np.append(digit[1:] & digit[:-1], False), "a value with several digits")):
        if bad.any():
            i = int(np.argmax(bad))
            line = data.count(b"\n", 0, i) + 1
            raise DataFileError(f"{source}: line {line}: {what} "
                                f"{data[i:i + 2]!r} (values must be 0 or 1, white-space separated)")
    starts = np.concatenate(([0], np.flatnonzero(c == 3) + 1))
    starts = starts[starts < len(c)]
    counts = np.add.reduceat(digit.view(np.uint8), starts, dtype=np.uint32)
    wrong = np.flatnonzero((counts != 0) & (counts != _WIDTH))
    if len(wrong):
        raise DataFileError(f"{source}: line {wrong[0] + 1} has {counts[wrong[0]]} values, "
                            f"expected {_WIDTH} (truncated or corrupt)")
    return c[digit].reshape(-1, _WIDTH)


def parse_amat(data: bytes, source: str = "<bytes>", rows: int | None = None) -> np.ndarray:
    """uint8 array (N, 784) of 0/1 from ``.amat`` bytes; :class:`DataFileError` if malformed."""
    a = np.frombuffer(data, np.uint8)
    x = _fixed_width(a)
    if x is None:
        x = _general(data, source) if len(a) else np.zeros((0, _WIDTH), np.uint8)
    if rows is not None and len(x) != rows:
        raise DataFileError(f"{source}: {len(x)} rows, expected {rows} (truncated or corrupt)")
    return x


def canonical_md5(x: np.ndarray) -> str:
    """md5 of ``x`` (N, 784) of 0/1 written as "v v ... v\\n" per row."""
    text = np.full((len(x), 2 * x.shape[1]), 32, np.uint8)
    text[:, 0::2] = x + 48
    text[:, -1] = 10
    return hashlib.md5(text.tobytes(), usedforsecurity=False).hexdigest()


def read_amat(path: str | Path, split: str | None = None, verify: bool = True) -> np.ndarray:
    """Parse one split's file (gzipped or not); with ``split`` check its rows and md5."""
    x = parse_amat(read_bytes(Path(path)), str(path), SPLITS.get(split) if split is not None else None)
    if verify and split is not None and canonical_md5(x) != CANONICAL_MD5[split]:
        raise DataFileError(f"{path}: content differs from the reference binarized MNIST "
                            f"{split} split (md5 of the parsed pixels does not match; verify=False "
                            "accepts another binarization)")
    return x


def _file(split: str) -> str:
    return f"binarized_mnist_{split}.amat"


def load_binarized_mnist(
    data_dir: str | Path | None = None,
    download: bool = True,
    binarize: str | None = None,
    verify: bool = True,
    mirror: str | None = None,
) -> Dataset:
    """Larochelle's static binarization: 50k train / 10k valid / 10k test, no labels.

    The test file is sorted by digit class: evaluate the whole test set or a seeded random
    subset. ``verify`` checks the parsed pixels against the reference md5s.
    """
    if binarize not in (None, "none", "static"):
        raise ValueError(f"binarize must be None or 'static' for binarized-mnist (already "
                         f"binarized), got {binarize!r}; use 'mnist' with binarize='dynamic'")
    names = [_file(s) for s in SPLITS]
    split_of = dict(zip(names, SPLITS, strict=True))

    def check(name: str, tmp: Path) -> None:
        read_amat(tmp, split_of[name], verify=True)

    paths = ensure_files(names, SUBDIR, HOMES, None, check, data_dir, download, mirror)
    x = {s: torch.from_numpy(read_amat(paths[_file(s)], s, verify).astype(np.float32))
         for s in SPLITS}
    return Dataset(name="binarized-mnist", train=x["train"], valid=x["valid"], test=x["test"],
                   image_shape=(1, 28, 28), binary=True, binarization="static")
