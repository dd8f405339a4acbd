"""A user's own arrays and image folders, the registry's names, and binarization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reparam.data import DATASETS, DataFileError, MissingDataError, load_dataset
from reparam.data.binarize import binarize_splits

RNG = np.random.default_rng(0)


def test_npy_in_unit_interval_kept_and_split(tmp_path):
    x = RNG.random((60, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ds = load_dataset(f"npy:{tmp_path / 'x.npy'}", test_fraction=0.25, valid_fraction=0.1)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (39, 6, 15)
    assert ds.image_shape == (1, 28, 28) and not ds.binary and ds.train_labels is None
    rows = {r.tobytes() for r in x.reshape(60, -1)}  # a partition of the original rows
    got = torch.cat([ds.train, ds.valid, ds.test]).numpy()
    assert {r.tobytes() for r in got} == rows and len(got) == 60
    again = load_dataset(f"npy:{tmp_path / 'x.npy'}", test_fraction=0.25, valid_fraction=0.1)
    assert torch.equal(again.test, ds.test)  # the seeded split is reproducible


def test_uint8_scaled_by_255_and_binary_detected(tmp_path):
    x = RNG.integers(0, 256, (30, 64), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", train=x[:20], test=x[20:], train_labels=np.arange(20),
             test_labels=np.arange(10))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.image_shape == (1, 8, 8)
    torch.testing.assert_close(ds.test, torch.from_numpy(x[20:] / 255.0).float())
    assert ds.test_labels.tolist() == list(range(10))
    np.savez(tmp_path / "b.npz", train=x[:20] > 128, test=x[20:] > 128)  # bool 0/1
    assert load_dataset(f"npy:{tmp_path / 'b.npz'}").binary


def test_one_scale_for_all_splits(tmp_path):
    x = np.zeros((10, 4), np.uint8)
    x[:8, 0] = 200  # train has 0..255 values, test has only 0s and 1s
    x[8:, 1] = 1
    np.savez(tmp_path / "s.npz", train=x[:8], test=x[8:])
    ds = load_dataset(f"npy:{tmp_path / 's.npz'}")
    torch.testing.assert_close(ds.test, torch.from_numpy(x[8:] / 255.0).float())
    dark = RNG.integers(0, 2, (6, 3, 3), dtype=np.uint8)  # an image folder always divides by 255
    for i, a in enumerate(dark):
        _png(tmp_path / "dark" / f"{i}.png", a)
    assert load_dataset(f"folder:{tmp_path / 'dark'}", test_fraction=0.5).train.max() <= 1 / 255


def test_channels_last_is_moved_to_chw(tmp_path):
    x = RNG.integers(0, 256, (12, 4, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(12) % 3)
    ds = load_dataset(f"npy:{tmp_path / 'c.npz'}", test_fraction=0.5)
    assert ds.image_shape == (3, 4, 5)
    chw = torch.from_numpy(np.stack([a.transpose(2, 0, 1).ravel() for a in x]) / 255.0).float()
    for row, label in zip(ds.train, ds.train_labels.tolist(), strict=True):
        match = torch.nonzero((chw == row).all(dim=1)).ravel().tolist()
        assert len(match) == 1 and match[0] % 3 == label


@pytest.mark.parametrize(
    "x, message",
    [
        (np.full((10, 4), 256.0), "integers in 0..255"),
        (np.full((10, 4), 1.5), "integers in 0..255"),
        (np.full((10, 4), -0.1), "finite and >= 0"),
        (np.full((10, 4), np.nan), "finite and >= 0"),
        (np.zeros((10, 4, 4, 4, 4)), "cannot read examples"),
        (np.zeros(10), "array of examples"),
    ],
)
def test_bad_arrays_are_rejected(tmp_path, x, message):
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=message):
        load_dataset(f"npy:{tmp_path / 'x.npy'}")


def test_bad_files_and_keys(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataFileError, match="not a readable"):
        load_dataset(f"npy:{tmp_path / 'junk.npy'}")
    np.savez(tmp_path / "k.npz", a=np.zeros((4, 4)), b=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="got keys"):
        load_dataset(f"npy:{tmp_path / 'k.npz'}")
    np.savez(tmp_path / "t.npz", train=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="must include 'test'"):
        load_dataset(f"npy:{tmp_path / 't.npz'}")
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(DataFileError):  # pickled objects are never loaded
        load_dataset(f"npy:{tmp_path / 'o.npz'}")


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_splits_and_classes(tmp_path):
    imgs = RNG.integers(0, 256, (8, 6, 5), dtype=np.uint8)
    for i, a in enumerate(imgs):
        split, cls = ("train" if i < 6 else "test"), ("cat" if i % 2 else "dog")
        _png(tmp_path / split / cls / f"{i}.png", a)
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.image_shape == (1, 6, 5) and ds.classes == ("cat", "dog")
    assert len(ds.train) == 6 and len(ds.test) == 2 and ds.test_labels.tolist() == [0, 1]
    torch.testing.assert_close(ds.test[0], torch.from_numpy(imgs[7].ravel() / 255.0).float())


def test_image_folder_colour_split_and_errors(tmp_path):
    imgs = RNG.integers(0, 256, (12, 4, 4, 3), dtype=np.uint8)
    for i, a in enumerate(imgs):
        _png(tmp_path / "rgb" / f"{i:02d}.png", a)
    ds = load_dataset(f"folder:{tmp_path / 'rgb'}", test_fraction=0.25)
    assert ds.image_shape == (3, 4, 4) and len(ds.test) == 3 and ds.train_labels is None
    gray = load_dataset(f"folder:{tmp_path / 'rgb'}", test_fraction=0.25, color=False)
    assert gray.image_shape == (1, 4, 4)
    big = load_dataset(f"folder:{tmp_path / 'rgb'}", size=(8, 8))
    assert big.image_shape == (3, 8, 8)
    _png(tmp_path / "rgb" / "odd.png", imgs[0, :3])
    with pytest.raises(ValueError, match="differs from"):
        load_dataset(f"folder:{tmp_path / 'rgb'}")
    (tmp_path / "rgb" / "odd.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFileError, match="not a readable image"):
        load_dataset(f"folder:{tmp_path / 'rgb'}")


def test_registry_names_and_errors(tmp_path):
    assert {"digits", "mnist", "fashion-mnist", "kmnist", "binarized-mnist"} <= set(DATASETS)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match=f"npy:{tmp_path}"):
        load_dataset(str(tmp_path))  # an existing path without a scheme: say which to use
    with pytest.raises(MissingDataError):  # seed is dropped for the static set, not an error
        load_dataset("binarized-mnist", data_dir=tmp_path, download=False, seed=3)
    ds = load_dataset("digits", data_dir=tmp_path)  # location keywords are ignored by digits
    assert ds.image_shape == (1, 8, 8) and ds.binary and ds.binarization == "threshold"
    assert not load_dataset("digits", binarize=False).binary


def test_dynamic_binarization_is_seeded_and_unbiased():
    p = torch.rand(400, 64, generator=torch.Generator().manual_seed(1))
    a = binarize_splits(p, None, p[:50], "dynamic", seed=3)
    b = binarize_splits(p, None, p[:50], "dynamic", seed=3)
    assert a.binary and a.mode == "dynamic" and torch.equal(a.train, b.train)
    assert set(a.train.unique().tolist()) == {0.0, 1.0} and a.train_probs is p
    draws = torch.stack([a.train] + [torch.bernoulli(p) for _ in range(9)])
    sigma = (p * (1 - p)).sum().sqrt() / p.numel() / draws.shape[0] ** 0.5
    assert abs(draws.mean() - p.mean()) < 5 * sigma  # E[Bernoulli(p)] = p


def test_dataset_resample_train_draws_fresh_bits():
    ds = load_dataset("digits", binarize="dynamic", seed=0)
    assert ds.binarization == "dynamic" and ds.train_probs is not None
    g = torch.Generator().manual_seed(0)
    one, two = ds.resample_train(g), ds.resample_train(g)
    assert not torch.equal(one, two) and set(one.unique().tolist()) <= {0.0, 1.0}
    static = load_dataset("digits")
    assert static.resample_train() is static.train
