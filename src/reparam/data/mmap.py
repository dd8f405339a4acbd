"""Memory-mapped splits: data larger than memory, read row by row on demand.

A ``.npy`` file opened with ``np.load(path, mmap_mode="r")`` costs no memory until rows are
read; :class:`MappedRows` stands in for a split's (N, D) float32 tensor: indexing it (an
int, a slice, an index array or tensor) reads only those rows from the file and returns
them as a float32 tensor in [0, 1]; :meth:`MappedRows.narrow` takes a lazy contiguous part
(a process's shard) without reading anything. So a process that evaluates its shard, or
takes its slice of each global batch, touches only its own rows' pages.

Scale of a mapped array is set by its dtype alone (reading every value to find the
maximum would touch the whole file): ``bool`` is 0/1, integers are 0..255 (divided by 255),
floats must hold values in [0, 1]. Values are checked on every read (finite, in range).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def rows_to_unit(block: np.ndarray, source: str, scale: float) -> np.ndarray:
    """float32 ``block / scale``, checked to lie in [0, 1] (finite) without a float64 copy."""
    x = np.array(block, dtype=np.float32)  # a copy: never a tensor aliasing the read-only map
    if scale != 1.0:
        if block.dtype.kind in "iu" and (block.min() < 0 or block.max() > scale):
            raise ValueError(f"{source}: integer values must lie in 0..255, got range "
                             f"[{block.min()}, {block.max()}]")
        return x / np.float32(scale)
    lo, hi = float(x.min()), float(x.max())  # nan propagates into both
    if not (lo >= 0 and hi <= 1):
        raise ValueError(f"{source}: values must be finite and in [0, 1] (a float array), "
                         f"got range [{lo:g}, {hi:g}]")
    return x


def mapped_scale(array: np.ndarray, source: str) -> float:
    """1 for bool and float arrays, 255 for integer ones (see the module docstring)."""
    kinds = {"b": 1.0, "f": 1.0, "u": 255.0, "i": 255.0}
    if array.dtype.kind not in kinds:
        raise ValueError(f"{source}: expected a numeric array, got dtype {array.dtype}")
    return kinds[array.dtype.kind]


class MappedRows:
    """Rows ``rows`` (all when ``None``) of a memory-mapped array of examples (N, ...), read
    on access as float32 rows of ``D`` values in (C, H, W) order, ``x / scale``, thresholded
    at 0.5 when ``threshold``. Duck-types the (N, D) tensor of a :class:`Dataset` split for
    ``len``, ``shape``, ``dtype``, indexing and ``narrow(0, start, length)``."""

    dtype = torch.float32
    device = torch.device("cpu")  # rows are read into CPU tensors

    def __init__(self, array: np.ndarray, source: str, *, rows: np.ndarray | None = None,
                 channels_last: bool = False, threshold: bool = False,
                 scale: float | None = None) -> None:
        self.array, self.source, self.rows = array, source, rows
        self.channels_last, self.threshold = channels_last, threshold
        self.scale = mapped_scale(array, source) if scale is None else scale

    def __len__(self) -> int:
        return len(self.array) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), math.prod(self.array.shape[1:])))

    @property
    def nbytes(self) -> int:
        """Bytes of the file that the rows cover (what reading them all would touch)."""
        return len(self) * math.prod(self.array.shape[1:]) * self.array.dtype.itemsize

    def narrow(self, dim: int, start: int, length: int) -> MappedRows:
        """Rows ``[start, start + length)`` without reading them (as ``Tensor.narrow``)."""
        if dim != 0 or length < 0 or not 0 <= start <= start + length <= len(self):
            raise ValueError(f"narrow: rows [{start}, {start + length}) of dim {dim} are out of "
                             f"range for {len(self)} rows (only dim 0)")
        array, rows = self.array, self.rows
        if rows is None:
            array = array[start:start + length]  # a view of the map, nothing read
        else:
            rows = rows[start:start + length]
        return MappedRows(array, self.source, rows=rows, channels_last=self.channels_last,
                          threshold=self.threshold, scale=self.scale)

    def take(self, indices: torch.Tensor | np.ndarray) -> MappedRows:
        """Rows ``indices`` (in that order) without reading them: a lazy ``x[indices]``."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= len(self))):
            raise ValueError(f"take: row indices must be a 1-d array in [0, {len(self)})")
        rows = idx if self.rows is None else self.rows[idx]
        return MappedRows(self.array, self.source, rows=rows, channels_last=self.channels_last,
                          threshold=self.threshold, scale=self.scale)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        single = isinstance(index, (int, np.integer))
        if isinstance(index, slice):
            block = self.array[index] if self.rows is None else self.array[self.rows[index]]
        else:  # an index array: numpy reads exactly those rows of the map
            idx = np.atleast_1d(np.asarray(index))
            block = self.array[idx if self.rows is None else self.rows[idx]]
        if len(block) == 0:
            return torch.zeros(0, self.shape[1])
        x = np.moveaxis(block, -1, 1) if self.channels_last else block
        x = rows_to_unit(x, self.source, self.scale).reshape(len(x), -1)
        out = torch.from_numpy(x >= 0.5).float() if self.threshold else torch.from_numpy(x)
        return out[0] if single else out

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """All rows as a tensor (reads the whole split: meant for small ones)."""
        return self[:].to(*args, **kwargs)

    def __repr__(self) -> str:
        return f"MappedRows({self.source}, {len(self)} rows of {self.shape[1]})"


def concat_rows(a: MappedRows, b: MappedRows) -> MappedRows:
    """The rows of ``a`` then those of ``b``, lazily; both must map the same array (the
    splits of one ``.npy`` file), else a ValueError names the two sources."""
    if a.array is not b.array:
        raise ValueError(f"cannot join memory-mapped {a.source} and {b.source} (separate files): "
                         "load the data with mmap=False, or keep both splits in one .npy file")
    rows = [np.arange(len(x)) if x.rows is None else x.rows for x in (a, b)]
    return MappedRows(a.array, a.source, rows=np.concatenate(rows), channels_last=a.channels_last,
                      threshold=a.threshold, scale=a.scale)


def column_mean(x: torch.Tensor | MappedRows, chunk: int = 4096) -> torch.Tensor:
    """Mean row of ``x`` (float32, ``(D,)``), read ``chunk`` rows at a time from a map."""
    if isinstance(x, torch.Tensor):
        return x.float().mean(0)
    if len(x) == 0:
        raise ValueError(f"{x.source}: no rows to average")
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), chunk):
        total += x[start:start + chunk].double().sum(0)
    return (total / len(x)).float()
