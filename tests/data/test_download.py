"""Locating files and downloading them, against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import socket

import numpy as np
import pytest
import torch

from reparam.data import DataFileError, MissingDataError, data_root, load_dataset
from reparam.data import amat as amat_mod
from reparam.data import idx as idx_mod
from reparam.data.download import cache_dir, ensure_files, fetch, locate

from .conftest import amat_text, write_mnist_like


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_data_root_precedence(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "xdg-cache" / "reparam"
    assert data_root() == cache_dir()
    monkeypatch.setenv("REPARAM_DATA_DIR", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "reparam"


def test_locate_accepts_sub_folder_flat_and_gz_or_not(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(b"x")
    (tmp_path / "b.bin.gz").write_bytes(b"x")
    assert locate(tmp_path, "sub", "a.bin.gz") == tmp_path / "sub" / "a.bin"
    assert locate(tmp_path, "sub", "b.bin") == tmp_path / "b.bin.gz"
    assert locate(tmp_path, "sub", "c.bin") is None


def test_fetch_verifies_md5_and_renames_atomically(http_dir, tmp_path):
    served, url = http_dir
    (served / "f.bin").write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "f.bin"
    fetch([url + "f.bin"], dest, md5(b"payload" * 1000))
    assert dest.read_bytes() == b"payload" * 1000
    assert leftovers(dest.parent) == ["f.bin"]  # no temporary file left behind


def test_checksum_mismatch_leaves_nothing(http_dir, tmp_path):
    served, url = http_dir
    (served / "f.bin").write_bytes(b"tampered")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(MissingDataError, match="ChecksumError"):
        fetch([url + "f.bin"], dest, md5(b"original"))
    assert leftovers(dest.parent) == []


def test_truncated_transfer_leaves_nothing(http_dir, tmp_path):
    served, url = http_dir
    (served / "f.bin").write_bytes(bytes(range(256)) * 400)
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(MissingDataError, match="truncated download"):
        fetch([url + "short/f.bin"], dest)  # no checksum: the length check alone catches it
    assert leftovers(dest.parent) == []


def test_falls_back_to_the_next_url(http_dir, tmp_path):
    served, url = http_dir
    (served / "f.bin").write_bytes(b"ok")
    fetch([url + "absent.bin", url + "f.bin"], tmp_path / "f.bin", md5(b"ok"))
    assert (tmp_path / "f.bin").read_bytes() == b"ok"


def test_unreachable_home_gives_the_placement_hint(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MissingDataError) as err:
        ensure_files(["a.gz"], "thing", [f"http://127.0.0.1:{port}/"], data_dir=tmp_path)
    msg = str(err.value)
    assert "missing data files ['a.gz']" in msg and str(tmp_path / "thing") in msg
    assert "URLError" in msg


@pytest.fixture
def served_mnist(http_dir, monkeypatch):
    """Synthetic MNIST files on the local server, with their md5s in the checksum table."""
    served, url = http_dir
    raw = write_mnist_like(served, 60, 20)
    sums = {p.name: md5(p.read_bytes()) for p in served.iterdir()}
    spec = dataclasses.replace(idx_mod.IDX_DATASETS["mnist"], sizes=(60, 20), md5=sums,
                               homes=(url,))
    monkeypatch.setitem(idx_mod.IDX_DATASETS, "mnist", spec)
    return served, url, raw


def test_mnist_downloads_into_the_cache_then_works_offline(served_mnist, tmp_path):
    served, _, raw = served_mnist
    ds = load_dataset("mnist")  # no data_dir, no env: the (temporary) cache
    target = tmp_path / "xdg-cache" / "reparam" / "mnist"
    assert leftovers(target) == sorted(p.name for p in served.iterdir())
    expected = torch.from_numpy(raw["t10k"][0].reshape(20, -1) / 255.0).float()
    torch.testing.assert_close(ds.test, expected)
    for p in served.iterdir():
        p.unlink()  # the server has nothing now: the cached copy must suffice
    again = load_dataset("mnist", download=False)
    assert torch.equal(again.train, ds.train)


def test_mnist_download_with_a_wrong_checksum_is_refused(served_mnist, tmp_path, monkeypatch):
    served, url, _ = served_mnist
    good = (served / "t10k-images-idx3-ubyte.gz").read_bytes()
    (served / "t10k-images-idx3-ubyte.gz").write_bytes(good[:-10] + bytes(10))
    with pytest.raises(MissingDataError, match="ChecksumError") as err:
        load_dataset("mnist", data_dir=tmp_path / "d")
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)
    assert "t10k-images-idx3-ubyte.gz" not in leftovers(tmp_path / "d" / "mnist")


def test_mirror_argument_is_tried_first(served_mnist, tmp_path, monkeypatch):
    served, url, _ = served_mnist
    spec = dataclasses.replace(idx_mod.IDX_DATASETS["mnist"], homes=("http://127.0.0.1:9/",))
    monkeypatch.setitem(idx_mod.IDX_DATASETS, "mnist", spec)
    ds = load_dataset("mnist", data_dir=tmp_path / "d", mirror=url)
    assert ds.train.shape == (60, 784)


def test_file_url_mirror_from_the_environment(served_mnist, tmp_path, monkeypatch):
    served, _, _ = served_mnist
    spec = dataclasses.replace(idx_mod.IDX_DATASETS["mnist"], homes=("http://127.0.0.1:9/",))
    monkeypatch.setitem(idx_mod.IDX_DATASETS, "mnist", spec)
    monkeypatch.setenv("REPARAM_DATA_MIRROR", served.as_uri())
    assert load_dataset("mnist", data_dir=tmp_path / "d").test.shape == (20, 784)


@pytest.fixture
def served_amat(http_dir, monkeypatch):
    """Tiny binarized-MNIST files served (uncompressed, as published), sizes/md5s patched."""
    served, url = http_dir
    rng = np.random.default_rng(1)
    xs = {s: (rng.random((n, 784)) < 0.2).astype(np.uint8)
          for s, n in (("train", 5), ("valid", 3), ("test", 4))}
    for s, x in xs.items():
        (served / f"binarized_mnist_{s}.amat").write_bytes(amat_text(x, " ", " \r\n"))
    monkeypatch.setattr(amat_mod, "HOMES", (url,))
    monkeypatch.setattr(amat_mod, "SPLITS", {s: len(x) for s, x in xs.items()})
    monkeypatch.setattr(amat_mod, "CANONICAL_MD5", {s: md5(amat_text(x)) for s, x in xs.items()})
    return served, xs


def test_amat_download_is_content_checked(served_amat, tmp_path):
    served, xs = served_amat
    ds = load_dataset("binarized-mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.valid.numpy(), xs["valid"])
    gz = tmp_path / "gz"
    (gz / "binarized_mnist").mkdir(parents=True)  # the layout of shared/data: gzipped files
    for s, x in xs.items():
        (gz / "binarized_mnist" / f"binarized_mnist_{s}.amat.gz").write_bytes(
            gzip.compress(amat_text(x)))
    assert torch.equal(load_dataset("binarized-mnist", data_dir=gz, download=False).test, ds.test)


def test_amat_download_with_a_changed_pixel_is_refused(served_amat, tmp_path):
    served, xs = served_amat
    bad = xs["test"].copy()
    bad[0, 0] ^= 1
    (served / "binarized_mnist_test.amat").write_bytes(amat_text(bad))
    with pytest.raises(MissingDataError, match="content differs"):
        load_dataset("binarized-mnist", data_dir=tmp_path)
    assert "binarized_mnist_test.amat" not in leftovers(tmp_path / "binarized_mnist")


def test_amat_truncated_download_is_refused(served_amat, tmp_path):
    served, xs = served_amat
    text = amat_text(xs["train"])
    (served / "binarized_mnist_train.amat").write_bytes(text[: len(text) * 3 // 4])
    with pytest.raises(MissingDataError, match="truncated or corrupt"):
        load_dataset("binarized-mnist", data_dir=tmp_path)
    assert "binarized_mnist_train.amat" not in leftovers(tmp_path / "binarized_mnist")


def test_local_amat_with_other_pixels_needs_verify_false(served_amat, tmp_path):
    served, xs = served_amat
    other = 1 - xs["train"]  # a different binarization, well-formed
    (tmp_path / "binarized_mnist").mkdir()
    for s, x in {**xs, "train": other}.items():
        (tmp_path / "binarized_mnist" / f"binarized_mnist_{s}.amat").write_bytes(amat_text(x))
    with pytest.raises(DataFileError, match="verify=False"):
        load_dataset("binarized-mnist", data_dir=tmp_path, download=False)
    ds = load_dataset("binarized-mnist", data_dir=tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(ds.train.numpy(), other)
