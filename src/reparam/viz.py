"""Every figure, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def tile(images: torch.Tensor, image_shape: tuple[int, int, int], ncol: int) -> np.ndarray:
    """Rows of flattened images (N, C*H*W) -> one (rows*H, ncol*W[, C]) array with 1-px gaps."""
    c, h, w = image_shape
    x = images.detach().float().cpu().reshape(-1, c, h, w).clamp(0, 1).numpy()
    n = x.shape[0]
    nrow = -(-n // ncol)
    canvas = np.ones((c, nrow * (h + 1) - 1, ncol * (w + 1) - 1), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        canvas[:, r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = x[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def _save_grid(path: str | Path, grid: np.ndarray, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(4, grid.shape[1] / 12), max(2, grid.shape[0] / 12)))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_reconstructions(path: str | Path, x: torch.Tensor, x_rec: torch.Tensor,
                         image_shape: tuple[int, int, int]) -> None:
    """Inputs in the first row, their reconstructions in the row below."""
    n = x.shape[0]
    _save_grid(path, tile(torch.cat([x, x_rec]), image_shape, ncol=n),
               "inputs (top) and reconstructions (bottom)")


def save_samples(path: str | Path, samples: torch.Tensor, image_shape: tuple[int, int, int],
                 ncol: int = 10) -> None:
    """Decoded samples ``z ~ p(z)``."""
    _save_grid(path, tile(samples, image_shape, ncol), "samples from the prior")


def save_loss_curves(path: str | Path, history: list[dict[str, float]]) -> None:
    """Train and test negative ELBO per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [-row["train_elbo"] for row in history], label="train -ELBO")
    ax.plot(epochs, [-row["test_elbo"] for row in history], label="test -ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
