"""Shared plumbing of the discrete estimators: the logits of a Bernoulli / one-hot latent."""

from __future__ import annotations

import torch
from torch import distributions as td
from torch.distributions import Distribution

from ..noise import NoiseSource, resolve


def _unwrap(dist: Distribution) -> tuple[Distribution, int]:
    """The base distribution and the number of reinterpreted batch dims around it."""
    ndims = 0
    while isinstance(dist, td.Independent):
        ndims += dist.reinterpreted_batch_ndims
        dist = dist.base_dist
    return dist, ndims


def bernoulli_logits(dist: Distribution, who: str) -> torch.Tensor:
    """The logits (attached, shape ``(*batch, *event)``) of a factorized Bernoulli ``dist``
    (``torch.distributions.Bernoulli`` or ``Independent`` of one)."""
    base, _ = _unwrap(dist)
    if not isinstance(base, td.Bernoulli):
        raise ValueError(f"{who} needs a Bernoulli latent (or Independent of one), got "
                         f"{type(base).__name__}")
    return base.logits


def one_hot_logits(dist: Distribution, who: str) -> torch.Tensor:
    """The normalised logits ``log theta`` (attached, ``(*batch, K)``) of a one-hot categorical."""
    base, _ = _unwrap(dist)
    if isinstance(base, td.OneHotCategorical):
        return base.logits
    if isinstance(base, td.Categorical):
        raise ValueError(f"{who} relaxes one-hot samples: use OneHotCategorical, not "
                         "Categorical (index samples have no continuous relaxation)")
    raise ValueError(f"{who} needs a Bernoulli or OneHotCategorical latent, got "
                     f"{type(base).__name__}")


def uniforms(noise: NoiseSource | None, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Standard uniforms of ``shape`` from ``noise`` (default Monte Carlo)."""
    return resolve(noise).uniform(torch.Size(shape), like.dtype, like.device)


def sample(dist: Distribution, num_samples: int, noise: NoiseSource | None) -> torch.Tensor:
    """``num_samples`` detached draws; ``noise`` reaches a noise-aware family inside
    ``Independent`` (whose own ``sample`` takes no noise source)."""
    if noise is None:
        return dist.sample((num_samples,))
    base, _ = _unwrap(dist)
    try:
        return base.sample((num_samples,), noise=noise)
    except TypeError:
        raise ValueError(f"noise= needs a family that takes a noise source; "
                         f"{type(base).__name__} does not") from None
