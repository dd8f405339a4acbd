"""Larochelle's .amat binarized MNIST: parser, checks, and the real files when present."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from reparam.data import DataFileError, MissingDataError, load_dataset
from reparam.data.amat import canonical_md5, parse_amat, read_amat

from .conftest import amat_text

X = (np.random.default_rng(0).random((7, 784)) < 0.3).astype(np.uint8)


@pytest.mark.parametrize(
    "sep, end, tail",
    [(" ", "\n", ""), ("\t", "\r\n", ""), ("  ", " \n", "\n\n"), (" ", "\n", "   ")],
)
def test_parse_any_white_space(sep, end, tail):
    data = amat_text(X, sep, end) + tail.encode()
    np.testing.assert_array_equal(parse_amat(data, rows=7), X)


def test_canonical_md5_ignores_white_space_but_not_pixels():
    reference = canonical_md5(X)
    import hashlib

    assert reference == hashlib.md5(amat_text(X)).hexdigest()  # independent serialisation
    assert canonical_md5(parse_amat(amat_text(X, "\t", "\r\n"))) == reference
    flipped = X.copy()
    flipped[3, 100] ^= 1
    assert canonical_md5(flipped) != reference


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace(b"1", b"2", 1), "unexpected byte"),
        (lambda t: t.replace(b"0 1", b"0.1", 1), "unexpected byte"),
        (lambda t: t.replace(b"1 ", b"11 ", 1), "several digits"),
        (lambda t: t[: len(t) // 2], "values, expected 784"),  # truncated mid-line
        (lambda t: t.replace(b"0 ", b"", 1), "line 1 has 783 values"),
    ],
)
def test_parse_rejects_malformed(edit, message):
    with pytest.raises(DataFileError, match=message):
        parse_amat(edit(amat_text(X)), "f")


def test_fast_path_falls_back_on_irregular_later_lines():
    text = amat_text(X)
    last = text.rfind(b"0")
    with pytest.raises(DataFileError, match="line 7: unexpected byte"):
        parse_amat(text[:last] + b"2" + text[last + 1:])
    tabbed = text[:-4] + text[-4:].replace(b" ", b"\t")  # one line with another separator
    np.testing.assert_array_equal(parse_amat(tabbed), X)


def test_row_count_checked():
    with pytest.raises(DataFileError, match="7 rows, expected 8"):
        parse_amat(amat_text(X), "f", rows=8)
    lines = amat_text(X).splitlines(keepends=True)
    with pytest.raises(DataFileError, match="6 rows, expected 7"):  # truncated at a line end
        parse_amat(b"".join(lines[:-1]), "f", rows=7)


def test_read_amat_gzip_and_truncated_gzip(tmp_path):
    blob = gzip.compress(amat_text(X))
    (tmp_path / "a.amat.gz").write_bytes(blob)
    np.testing.assert_array_equal(read_amat(tmp_path / "a.amat.gz"), X)
    (tmp_path / "b.amat.gz").write_bytes(blob[:-20])
    with pytest.raises(DataFileError, match="truncated gzip"):
        read_amat(tmp_path / "b.amat.gz")


def test_static_set_refuses_other_binarizations(tmp_path):
    with pytest.raises(ValueError, match="use 'mnist' with binarize='dynamic'"):
        load_dataset("binarized-mnist", data_dir=tmp_path, binarize="dynamic")


def test_missing_offline_names_the_three_files(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_dataset("binarized-mnist", data_dir=tmp_path, download=False)
    for split in ("train", "valid", "test"):
        assert f"binarized_mnist_{split}.amat" in str(err.value)


def test_real_binarized_mnist(real_amat_root):
    t0 = time.perf_counter()
    ds = load_dataset("binarized-mnist", data_dir=real_amat_root, download=False)
    seconds = time.perf_counter() - t0
    print(f"binarized-mnist: 70k rows parsed and md5-verified in {seconds:.2f} s")
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (50_000, 10_000, 10_000)
    assert ds.binary and ds.binarization == "static" and ds.image_shape == (1, 28, 28)
    assert abs(ds.train.mean().item() - 0.13056) < 5e-6  # README's mean pixel values
    assert abs(ds.test.mean().item() - 0.13251) < 5e-6
    assert set(ds.test.unique().tolist()) == {0.0, 1.0}
