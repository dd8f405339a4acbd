"""Binarization of grayscale splits in [0, 1]: none, threshold, or dynamic (Bernoulli).

Dynamic binarization draws ``x_bin ~ Bernoulli(x)`` per pixel; its test NLLs are *not*
comparable with the static binarization of Larochelle & Murray (``binarized-mnist``):
they come out lower (the model sees fresh draws every epoch, and a stochastic test draw),
so every table must say which one it used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("none", "threshold", "dynamic")


@dataclass
class Binarized:
    train: torch.Tensor
    valid: torch.Tensor | None
    test: torch.Tensor
    binary: bool
    mode: str
    train_probs: torch.Tensor | None = None


def _threshold(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (x >= 0.5).to(x.dtype)


def _draw(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.bernoulli(x, generator=generator)


def _is_binary(*xs: torch.Tensor | None) -> bool:
    return all(bool(((x == 0) | (x == 1)).all()) for x in xs if x is not None)


def check_mode(binarize: str | bool | None) -> str:
    """Normalise ``binarize``: ``None``/``False`` -> "none", ``True`` -> "threshold"."""
    mode = {None: "none", False: "none", True: "threshold"}.get(binarize, binarize)
    if mode not in MODES:
        raise ValueError(f"binarize must be one of {MODES} (or a bool), got {binarize!r}")
    return mode


def binarize_splits(
    train: torch.Tensor,
    valid: torch.Tensor | None,
    test: torch.Tensor,
    binarize: str | bool | None,
    seed: int = 0,
) -> Binarized:
    """Apply one binarization to all splits; dynamic draws use ``torch.Generator(seed)``."""
    mode = check_mode(binarize)
    if mode == "none":
        return Binarized(train, valid, test, _is_binary(train, valid, test), mode)
    op = {"threshold": _threshold, "dynamic": _draw}[mode]
    gen = torch.Generator().manual_seed(seed)
    out = Binarized(
        op(train, gen), None if valid is None else op(valid, gen), op(test, gen), True, mode
    )
    if mode == "dynamic":
        out.train_probs = train
    return out
