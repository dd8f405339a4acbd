"""Figures: the latent scatter with and without labels (no colour map without labels)."""

import warnings

import torch

from reparam.viz import save_latent_scatter


def test_latent_scatter_with_and_without_labels(tmp_path):
    means = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No data for colormapping"
        save_latent_scatter(tmp_path / "unlabelled.png", means, None)
        save_latent_scatter(tmp_path / "labelled.png", means, torch.arange(50) % 10)
    for name in ("unlabelled.png", "labelled.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
