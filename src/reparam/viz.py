"""Every figure, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

#: A decoder's mean: latents (N, L) -> flattened images (N, C*H*W) in [0, 1].
Decode = Callable[[torch.Tensor], torch.Tensor]


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


def save_traversals(path: str | Path, decode: Decode, center: torch.Tensor, image_shape: tuple[int, int, int],
                    span: float = 3.0, steps: int = 9, max_dims: int = 10) -> None:
    """One row per latent dimension: decode ``center + t e_d`` for t in [-span, span]."""
    dims = min(center.shape[-1], max_dims)
    t = torch.linspace(-span, span, steps, device=center.device, dtype=center.dtype)
    z = center.expand(dims, steps, -1).clone()
    for d in range(dims):
        z[d, :, d] = center[d] + t
    _save_grid(path, tile(decode(z.reshape(dims * steps, -1)), image_shape, steps),
               f"latent traversals (rows: first {dims} dimensions, {-span:g}..{span:g})")


def save_manifold(path: str | Path, decode: Decode, image_shape: tuple[int, int, int], steps: int = 15,
                  device: torch.device | str = "cpu") -> None:
    """2-D latents: decode a grid of z at the standard-normal quantiles 0.05..0.95."""
    q = torch.special.ndtri(torch.linspace(0.05, 0.95, steps, dtype=torch.float64)).float().to(device)
    zy, zx = torch.meshgrid(q.flip(0), q, indexing="ij")
    z = torch.stack([zx.reshape(-1), zy.reshape(-1)], dim=1)
    _save_grid(path, tile(decode(z), image_shape, steps), "the learned 2-D manifold")


def save_latent_scatter(path: str | Path, means: torch.Tensor, labels: torch.Tensor | None) -> None:
    """Posterior means of the test set, coloured by label; PCA to 2-D when L > 2."""
    m = means.detach().double().cpu()
    axes_label = ("z1", "z2")
    if m.shape[1] > 2:
        m = m - m.mean(0)
        _, s, v = torch.linalg.svd(m, full_matrices=False)
        explained = (s[:2] ** 2 / (s**2).sum()).tolist()
        m = m @ v[:2].T
        axes_label = (f"PC1 ({explained[0]:.0%})", f"PC2 ({explained[1]:.0%})")
    elif m.shape[1] == 1:
        m = torch.cat([m, torch.zeros_like(m)], 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    colour: dict[str, Any] = {} if labels is None else {"c": labels.cpu().numpy(), "cmap": "tab10"}
    sc = ax.scatter(m[:, 0], m[:, 1], s=4, alpha=0.7, **colour)
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel(axes_label[0])
    ax.set_ylabel(axes_label[1])
    ax.set_title("test set: posterior means E_q[z|x]")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
