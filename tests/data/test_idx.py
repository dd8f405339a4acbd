"""IDX reader and the MNIST-family loaders, on synthetic files and the real MNIST test set."""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest
import torch

from reparam.data import DataFileError, MissingDataError, load_dataset
from reparam.data import idx as idx_mod
from reparam.data.idx import parse_idx, read_idx, read_images_labels

from .conftest import idx_bytes, write_mnist_like


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_parse_idx_round_trip_every_dtype(dtype):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5)
    a = (a % 200 if dtype == "u1" else a).astype(dtype)
    out = parse_idx(idx_bytes(a))
    assert out.shape == (2, 3, 5) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_read_idx_gzipped_or_not(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(4, 6)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), read_idx(tmp_path / "a.gz"))


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(4, 6))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an IDX file"),
        (b"\x1f\x8b" + GOOD[2:], "not an IDX file"),  # wrong magic
        (GOOD[:2] + b"\x07" + GOOD[3:], "not an IDX file"),  # unknown dtype code
        (GOOD[:3] + b"\x00" + GOOD[4:], "not an IDX file"),  # zero dimensions
        (GOOD[:6], "header truncated"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
    ],
)
def test_parse_idx_rejects_malformed(data, message):
    with pytest.raises(DataFileError, match=message):
        parse_idx(data, "f")


def test_truncated_gzip_is_an_error(tmp_path):
    blob = gzip.compress(GOOD * 100)
    (tmp_path / "x.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFileError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "x.gz")


def test_images_and_labels_must_agree(tmp_path):
    x = np.zeros((5, 28, 28), np.uint8)
    (tmp_path / "x").write_bytes(idx_bytes(x))
    (tmp_path / "y").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataFileError, match="expected 5 labels"):
        read_images_labels(tmp_path / "x", tmp_path / "y")
    (tmp_path / "y").write_bytes(idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(DataFileError, match="0..9"):
        read_images_labels(tmp_path / "x", tmp_path / "y")


@pytest.fixture
def tiny_mnist(monkeypatch):
    """Let the "mnist" loader accept 60/20-image files (the real sizes are checked otherwise)."""
    spec = dataclasses.replace(idx_mod.IDX_DATASETS["mnist"], sizes=(60, 20))
    monkeypatch.setitem(idx_mod.IDX_DATASETS, "mnist", spec)


def test_loader_on_local_files(tmp_path, tiny_mnist):
    raw = write_mnist_like(tmp_path / "mnist", 60, 20, gz=False)  # uncompressed also works
    ds = load_dataset("mnist", data_dir=tmp_path, download=False, valid_size=10)
    xtr, ytr = raw["train"]
    assert ds.train.shape == (50, 784) and ds.valid.shape == (10, 784) and ds.test.shape == (20, 784)
    assert ds.image_shape == (1, 28, 28) and ds.binarization == "none" and not ds.binary
    torch.testing.assert_close(ds.train, torch.from_numpy(xtr[:50].reshape(50, -1) / 255.0).float())
    assert torch.equal(ds.valid_labels, torch.from_numpy(ytr[50:].astype(np.int64)))


def test_loader_rejects_wrong_sizes(tmp_path):
    write_mnist_like(tmp_path / "mnist", 60, 20)
    with pytest.raises(DataFileError, match=r"must have shape \(60000, 28, 28\)"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_binarize_options(tmp_path, tiny_mnist):
    write_mnist_like(tmp_path, 60, 20)  # flat layout: files directly in the root
    thr = load_dataset("mnist", data_dir=tmp_path, download=False, binarize="threshold")
    gray = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert thr.binary and torch.equal(thr.train, (gray.train >= 0.5).float())
    with pytest.raises(ValueError, match="binarize must be one of"):
        load_dataset("mnist", data_dir=tmp_path, download=False, binarize="sometimes")


def test_missing_files_offline_names_them(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "fashion-mnist") in msg


def test_real_mnist_test_set(real_mnist_root):
    x, y = read_images_labels(real_mnist_root / "mnist/t10k-images-idx3-ubyte.gz",
                              real_mnist_root / "mnist/t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(x.mean() / 255 - 0.13251) < 5e-5  # the README's test mean pixel value
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


def test_real_mnist_without_train_set_says_what_is_missing(real_mnist_root):
    with pytest.raises(MissingDataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", data_dir=real_mnist_root, download=False)
