"""Memory-mapped .npy data: the same values as in memory, and each shard touches only its pages."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reparam.data import load_dataset
from reparam.data.mmap import MappedRows, column_mean, concat_rows
from reparam.data.user import MMAP_MIN_BYTES, advise_random, load_arrays
from reparam.parallel import GlobalBatchSampler, split_blocks

SMAPS = Path("/proc/self/smaps")


@pytest.mark.parametrize("make", [
    lambda r: r.random((60, 16), dtype=np.float32),  # (D,) square -> 1 x 4 x 4
    lambda r: r.integers(0, 256, (60, 5, 4, 3), dtype=np.uint8),  # channels last
    lambda r: r.random((60, 3, 4)) > 0.5,  # bool, (H, W)
])
def test_mapped_splits_equal_the_in_memory_ones(tmp_path, make):
    x = make(np.random.default_rng(0))
    np.save(tmp_path / "x.npy", x)
    for binarize in ("none", "threshold"):
        ram = load_arrays(tmp_path / "x.npy", binarize=binarize, seed=3, valid_fraction=0.2)
        mapped = load_arrays(tmp_path / "x.npy", binarize=binarize, seed=3, valid_fraction=0.2,
                             mmap=True)
        assert isinstance(mapped.test, MappedRows) and mapped.image_shape == ram.image_shape
        assert mapped.binary == ram.binary or x.dtype == np.uint8  # 0/1 only known in memory
        for split in ("train", "valid", "test"):
            a, b = getattr(ram, split), getattr(mapped, split)
            assert b.shape == a.shape and torch.equal(b[:], a)
            assert torch.equal(b[torch.tensor([4, 0, 2])], a[[4, 0, 2]])
            assert torch.equal(b.narrow(0, 2, 5)[1:3], a[3:5]) and torch.equal(b[1], a[1])


def test_a_folder_of_npy_files_is_mapped_by_split(tmp_path):
    rng = np.random.default_rng(1)
    parts = {"train": rng.random((30, 2, 3), dtype=np.float32),
             "test": rng.random((10, 2, 3), dtype=np.float32)}
    for k, v in parts.items():
        np.save(tmp_path / f"{k}.npy", v)
    np.save(tmp_path / "test_labels.npy", np.arange(10))
    data = load_dataset(f"npy:{tmp_path}", mmap=True)
    assert torch.equal(data.test[:], torch.from_numpy(parts["test"].reshape(10, -1)))
    assert data.test_labels.tolist() == list(range(10)) and data.valid is None
    assert not isinstance(load_dataset(f"npy:{tmp_path}").test, MappedRows)  # small: in memory
    with pytest.raises(ValueError, match="dynamic"):
        load_arrays(tmp_path, binarize="dynamic", mmap=True)


def test_mapped_values_are_checked_when_read(tmp_path):
    x = np.zeros((20, 4), np.float32)
    x[13, 1] = 2.5
    np.save(tmp_path / "x.npy", x)
    data = load_arrays(tmp_path / "x.npy", mmap=True, test_fraction=0.5)
    rows = [data.train, data.test]
    bad = next(r for r in rows if 13 in r.rows)
    with pytest.raises(ValueError, match="x.npy"):
        bad[:]
    with pytest.raises(ValueError, match="out of range"):
        bad.narrow(0, 5, 100)
    np.savez(tmp_path / "x.npz", x=x)
    with pytest.raises(ValueError, match="npz"):
        load_arrays(tmp_path / "x.npz", mmap=True)


def _mapping_rss(array: np.ndarray) -> int:
    """Resident bytes of the mapping that holds ``array`` (from /proc/self/smaps)."""
    address, inside = array.ctypes.data, False
    for line in SMAPS.read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "Rss:":
            return int(line.split()[1]) * 1024
    raise AssertionError("mapping not found")


def _evict(path: Path) -> None:
    """Drop ``path`` from the page cache, so a mapping's resident pages are those it read
    (pages cached by the write come back in large folios that map megabytes at a time)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    """train.npy (small) and test.npy of ~300 MB: 24000 rows of 56 x 56 float32."""
    folder = tmp_path_factory.mktemp("big")
    if not SMAPS.is_file() or shutil.disk_usage(folder).free < 2 * 2**30:
        pytest.skip("needs /proc/self/smaps and 2 GiB of free disk")
    np.save(folder / "train.npy", np.zeros((100, 56, 56), np.float32))
    test = np.lib.format.open_memmap(folder / "test.npy", "w+", np.float32, (24000, 56, 56))
    for i in range(0, 24000, 2000):
        test[i:i + 2000] = (np.arange(i, i + 2000, dtype=np.float32) % 7 / 7)[:, None, None]
    test.flush()
    del test
    return folder


def test_a_rank_reads_only_its_evaluation_shard(big_folder):
    _evict(big_folder / "test.npy")
    data = load_dataset(f"npy:{big_folder}")  # over MMAP_MIN_BYTES: mapped by default
    x = data.test
    assert isinstance(x, MappedRows) and x.nbytes >= MMAP_MIN_BYTES
    part = split_blocks(len(x), 100, rank=1, world=2)
    mine = x.narrow(0, part.start, part.size)
    before = _mapping_rss(x.array)
    total = 0.0
    for s in range(0, len(mine), 100):  # what log_likelihood does with its rows
        total += float(mine[s:s + 100].sum())
    grown = _mapping_rss(x.array) - before
    assert total == pytest.approx(float(sum(i % 7 / 7 for i in range(12000, 24000))) * 3136,
                                  rel=1e-4)
    # the other rank's half (150 MB) stays untouched; a few MiB of slack for fault-around
    assert 0.95 * mine.nbytes <= grown <= mine.nbytes + 4 * 2**20, (grown, mine.nbytes)


def test_sampler_slices_touch_only_their_pages(big_folder):
    _evict(big_folder / "test.npy")
    x = load_arrays(big_folder, mmap=True).test
    sampler = GlobalBatchSampler(len(x), 200, seed=0, rank=0, world=2)
    before = _mapping_rss(x.array)
    rows = []
    for _, batch in zip(range(5), sampler.batches(0)):
        assert x[batch.indices].shape == (100, 3136)
        rows.append(batch.indices)
    grown = _mapping_rss(x.array) - before
    row_bytes, window = 3136 * 4, 2**16  # fault-around maps at most 64 KiB around a fault
    first = (np.concatenate(rows) * row_bytes).astype(np.int64)
    windows = {w for f in first for w in range(f // window, (f + row_bytes - 1) // window + 1)}
    assert grown <= len(windows) * window + 2**20, (grown, len(windows))
    assert grown < 0.05 * x.nbytes  # 500 of 24000 rows
    assert advise_random(x.array) and not advise_random(np.zeros(3))


def test_take_concat_and_column_mean_read_lazily(tmp_path):
    x = np.random.default_rng(1).random((40, 6), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    data = load_arrays(tmp_path / "x.npy", binarize="none", seed=0, valid_fraction=0.25, mmap=True)
    train, valid = data.train, data.valid
    picked = train.take(torch.tensor([3, 0, 7]))
    assert isinstance(picked, MappedRows) and torch.equal(picked[:], train[[3, 0, 7]])
    assert torch.equal(picked.take(np.array([2]))[:], train[[7]])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        picked.take(np.array([3]))
    both = concat_rows(train, valid)
    assert len(both) == len(train) + len(valid)
    assert torch.equal(both[:], torch.cat([train[:], valid[:]]))
    assert torch.allclose(column_mean(both), both[:].mean(0), atol=1e-6)
    assert torch.allclose(column_mean(train, chunk=7), train[:].mean(0), atol=1e-6)
    np.save(tmp_path / "y.npy", x)
    other = load_arrays(tmp_path / "y.npy", binarize="none", seed=0, mmap=True).train
    with pytest.raises(ValueError, match="x.npy.*y.npy|separate files"):
        concat_rows(train, other)
